//! Parquet data as the hub caches it: sharded splits in a snapshot, struct and list columns,
//! and a corrupt page failing its file by name.
use super::*;
use std::sync::Arc;

/// (question, answer.text, aliases) of one row.
type ParquetRow<'a> = (&'a str, Option<&'a str>, Option<Vec<&'a str>>);

/// Write a parquet file shaped like a hub dataset: a string column, a struct column and a
/// list<string> column (3-level LIST encoding).
fn write_parquet(path: &Path, rows: &[ParquetRow]) {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let schema = parse_message_type(
        "message schema {
            REQUIRED BYTE_ARRAY question (UTF8);
            OPTIONAL group answer { REQUIRED BYTE_ARRAY text (UTF8); }
            OPTIONAL group aliases (LIST) { REPEATED group list { OPTIONAL BYTE_ARRAY element (UTF8); } }
        }",
    )
    .unwrap();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = fs::File::create(path).unwrap();
    let props = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let bytes = |s: &str| ByteArray::from(s);

    let questions: Vec<ByteArray> = rows.iter().map(|r| bytes(r.0)).collect();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<ByteArrayType>()
        .write_batch(&questions, None, None)
        .unwrap();
    column.close().unwrap();

    let answers: Vec<ByteArray> = rows.iter().filter_map(|r| r.1.map(bytes)).collect();
    let answer_def: Vec<i16> = rows.iter().map(|r| i16::from(r.1.is_some())).collect();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<ByteArrayType>()
        .write_batch(&answers, Some(&answer_def), None)
        .unwrap();
    column.close().unwrap();

    let (mut values, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        match &row.2 {
            None => {
                def.push(0);
                rep.push(0);
            }
            Some(items) if items.is_empty() => {
                def.push(1);
                rep.push(0);
            }
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    values.push(bytes(item));
                    def.push(3);
                    rep.push(i16::from(i > 0));
                }
            }
        }
    }
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<ByteArrayType>()
        .write_batch(&values, Some(&def), Some(&rep))
        .unwrap();
    column.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn hub_cache_snapshot_with_sharded_parquet_splits() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("datasets--org--toy");
    let snapshot = repo.join("snapshots").join("0123abc");
    write(&repo, "refs/main", "0123abc\n");
    write_parquet(
        &snapshot.join("data/train-00000-of-00002.parquet"),
        &[
            ("q0", Some("a0"), Some(vec!["alias0"])),
            ("q1", Some("a1"), None),
        ],
    );
    write_parquet(
        &snapshot.join("data/train-00001-of-00002.parquet"),
        &[("q2", Some("a2"), Some(vec![])), ("q3", None, None)],
    );
    write_parquet(
        &snapshot.join("data/test-00000-of-00001.parquet"),
        &[("t0", Some("b0"), Some(vec!["x", "y"]))],
    );
    let c = DataConfig {
        path: repo.clone(),
        input_field: "question".into(),
        output_field: "answer.text".into(),
        reference_fields: vec!["answer.text".into(), "aliases".into()],
        on_bad_row: OnBadRow::Skip,
        ..DataConfig::default()
    };
    let d = load_dataset(&c, Path::new("/")).unwrap();
    assert_eq!(d.name, "org/toy");
    assert_eq!(d.files.train.len(), 2);
    assert_eq!(
        ids(&d.train),
        vec![0, 1, 2],
        "ids run across shards; row 3 lacks its answer"
    );
    assert_eq!(d.train[2].input, "q2");
    assert_eq!(d.train[0].references, vec!["a0", "alias0"]);
    assert_eq!(d.test[0].references, vec!["b0", "x", "y"]);
    assert_eq!(d.skipped_rows, 1);
    // The snapshot folder itself works too, and a strict run names the shard and row.
    let strict = DataConfig {
        path: snapshot.clone(),
        on_bad_row: OnBadRow::Fail,
        ..c
    };
    let err = load_dataset(&strict, Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "train-00001-of-00002.parquet row 2: output field `answer.text`: `answer` is null"
        ),
        "{err}"
    );
}

#[test]
fn a_corrupt_parquet_page_fails_the_file_by_name_even_when_skipping_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.parquet");
    let rows: Vec<ParquetRow> = (0..50).map(|_| ("q", Some("a"), None)).collect();
    write_parquet(&train, &rows);
    // Garble the first page header (right after the `PAR1` magic); the footer stays intact,
    // so the file opens and fails only when its rows are read.
    let mut bytes = fs::read(&train).unwrap();
    for b in &mut bytes[4..24] {
        *b = 0xff;
    }
    fs::write(&train, &bytes).unwrap();
    write(dir.path(), "test.jsonl", &jsonl([("t".into(), "u".into())]));
    let mut c = cfg(dir.path());
    c.input_field = "question".into();
    c.output_field = "answer.text".into();
    for policy in [OnBadRow::Fail, OnBadRow::Skip] {
        c.on_bad_row = policy;
        // Before the fix this never returned: the row iterator repeats its error forever.
        let err = load_dataset(&c, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("train.parquet") && err.contains("corrupt or unreadable"),
            "{err}"
        );
    }
}
