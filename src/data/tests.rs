use super::*;
use crate::config::{DataConfig, DataFormat, OnBadRow};
use std::fs;
use std::path::Path;
use std::sync::Arc;

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A data config for folder `path` with fields `q` → `a`.
fn cfg(path: &Path) -> DataConfig {
    DataConfig {
        path: path.to_path_buf(),
        input_field: "q".into(),
        output_field: "a".into(),
        ..DataConfig::default()
    }
}

fn jsonl(rows: impl IntoIterator<Item = (String, String)>) -> String {
    rows.into_iter()
        .map(|(q, a)| serde_json::json!({"q": q, "a": a}).to_string() + "\n")
        .collect()
}

/// A dataset folder with `n` train rows and `m` test rows: q = "question i", a = "answer i".
fn numbered_dataset(dir: &Path, n: usize, m: usize) {
    write(
        dir,
        "train.jsonl",
        &jsonl((0..n).map(|i| (format!("question {i}"), format!("answer {i}")))),
    );
    write(
        dir,
        "test.jsonl",
        &jsonl((0..m).map(|i| (format!("test question {i}"), format!("test answer {i}")))),
    );
}

fn ids(examples: &[Example]) -> Vec<u64> {
    examples.iter().map(|e| e.id).collect()
}

#[test]
fn jsonl_folder_with_nested_fields_and_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.jsonl",
        "{\"q\": {\"text\": \"one\"}, \"a\": {\"value\": \"1\", \"aliases\": [\"uno\", \"\"]}}\n\n{\"q\": {\"text\": \"two\"}, \"a\": {\"value\": \"2\", \"aliases\": []}}\n",
    );
    write(
        dir.path(),
        "validation.jsonl",
        "{\"q\": {\"text\": \"v\"}, \"a\": {\"value\": \"3\"}}\n",
    );
    write(
        dir.path(),
        "test.jsonl",
        "{\"q\": {\"text\": \"t\"}, \"a\": {\"value\": \"4\", \"aliases\": [\"four\", \"IV\"]}}\n",
    );
    let mut c = cfg(dir.path());
    c.input_field = "q.text".into();
    c.output_field = "a.value".into();
    c.reference_fields = vec!["a.value".into(), "a.aliases".into()];
    let d = load_dataset(&c, Path::new("/")).unwrap();
    assert_eq!(d.train.len(), 2);
    assert_eq!(ids(&d.train), vec![0, 1], "ids count rows, not lines");
    assert_eq!(d.train[0].input, "one");
    assert_eq!(d.train[0].references, vec!["1", "uno"]);
    assert_eq!(d.dev[0].references, vec!["3"]);
    assert_eq!(d.test[0].references, vec!["4", "four", "IV"]);
    assert!(d.source.contains("dev=validation.jsonl"), "{}", d.source);
}

#[test]
fn json_layouts_array_wrapped_columnar_and_disguised_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let expected = vec![
        ("x".to_string(), "1".to_string()),
        ("y".to_string(), "2".to_string()),
    ];
    let array = r#"[{"q": "x", "a": "1"}, {"q": "y", "a": "2"}]"#;
    let layouts = [
        array.to_string(),
        format!("{{\"data\": {array}}}"),
        format!("{{\"rows\": {array}, \"version\": 2}}"),
        r#"{"q": ["x", "y"], "a": ["1", "2"]}"#.to_string(),
        "{\"q\": \"x\", \"a\": \"1\"}\n{\"q\": \"y\", \"a\": \"2\"}\n".to_string(),
    ];
    for layout in layouts {
        let rows = rows::read_rows(
            &{
                write(dir.path(), "d.json", &layout);
                dir.path().join("d.json")
            },
            DataFormat::Auto,
        )
        .unwrap();
        let got: Vec<(String, String)> = rows
            .into_iter()
            .map(|r| {
                let v = r.value.unwrap();
                (
                    v["q"].as_str().unwrap().to_string(),
                    v["a"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got, expected, "layout {layout}");
    }
    write(dir.path(), "d.json", r#"{"q": ["x", "y"], "a": ["1"]}"#);
    let err = rows::read_rows(&dir.path().join("d.json"), DataFormat::Auto).unwrap_err();
    assert!(
        err.to_string()
            .contains("column `a` has 1 values but `q` has 2"),
        "{err}"
    );
}

#[test]
fn csv_and_tsv_with_quoted_multiline_fields_report_true_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.csv",
        "q,a\n\"first,\nemail\",s1\nsecond,s2\nthird,\n",
    );
    write(dir.path(), "test.tsv", "q\ta\nt1\tr1\n");
    let mut c = cfg(dir.path());
    let err = load_dataset(&c, dir.path()).unwrap_err().to_string();
    // Row 3 starts on line 5 because row 1 spans lines 2-3.
    assert!(
        err.contains("train.csv line 5: output field `a` is empty"),
        "{err}"
    );
    c.on_bad_row = OnBadRow::Skip;
    let d = load_dataset(&c, dir.path()).unwrap();
    assert_eq!(d.train[0].input, "first,\nemail");
    assert_eq!(ids(&d.train), vec![0, 1]);
    assert_eq!(d.skipped_rows, 1);
    assert_eq!(d.test[0].output, "r1");
}

#[test]
fn bad_rows_fail_by_default_naming_file_and_line_or_are_skipped_keeping_ids() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.jsonl",
        "{\"q\": \"a\", \"a\": \"b\"}\n{\"q\": 7, \"a\": \"b\"}\nnot json\n{\"q\": \"c\", \"a\": \"d\"}\n",
    );
    write(dir.path(), "test.jsonl", "{\"q\": \"t\", \"a\": \"u\"}\n");
    let mut c = cfg(dir.path());
    let err = load_dataset(&c, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("train.jsonl line 2: input field `q` is a number, expected text"),
        "{err}"
    );
    assert!(err.contains("data.on_bad_row = \"skip\""), "{err}");
    c.on_bad_row = OnBadRow::Skip;
    let d = load_dataset(&c, dir.path()).unwrap();
    assert_eq!(ids(&d.train), vec![0, 3], "skipped rows keep their ids");
    assert_eq!(d.skipped_rows, 2);
}

#[test]
fn test_subset_and_pool_are_fixed_by_dataset_not_by_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("toy");
    numbered_dataset(&data, 200, 100);
    let mut c = cfg(&data);
    c.test_size = Some(10);
    let a = load_dataset(&c, dir.path()).unwrap();
    c.pool_size = Some(50);
    let b = load_dataset(&c, dir.path()).unwrap();
    assert_eq!(
        a.test, b.test,
        "the pool subsample must not move the test subset"
    );
    assert_eq!(a.test.len(), 10);
    assert!(
        ids(&a.test).windows(2).all(|w| w[0] < w[1]),
        "kept in id order"
    );
    assert_ne!(
        ids(&a.test),
        (0..10).collect::<Vec<_>>(),
        "a random subset, not the head"
    );
    assert_eq!(b.train.len(), 50);
    assert_eq!(b.train_rows, 200);
    assert_eq!(
        load_dataset(&c, dir.path()).unwrap().train,
        b.train,
        "deterministic"
    );
    // The subset is keyed by the dataset: another dataset picks other rows.
    let other = dir.path().join("toy2");
    numbered_dataset(&other, 200, 100);
    let mut c2 = c.clone();
    c2.path = other;
    assert_ne!(
        ids(&load_dataset(&c2, dir.path()).unwrap().test),
        ids(&a.test)
    );
    for e in &b.train {
        assert_eq!(e.input, format!("question {}", e.id), "ids are row indices");
    }
    c.test_size = Some(101);
    let err = load_dataset(&c, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("`data.test_size` = 101 but the test split has only 100 rows"),
        "{err}"
    );
}

#[test]
fn ratios_split_train_into_disjoint_parts_with_original_ids() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "all.jsonl",
        &jsonl((0..100).map(|i| (format!("q{i}"), format!("a{i}")))),
    );
    let mut c = cfg(&dir.path().join("all.jsonl"));
    c.test_ratio = Some(0.2);
    c.dev_ratio = Some(0.1);
    let d = load_dataset(&c, Path::new("/")).unwrap();
    assert_eq!((d.train.len(), d.dev.len(), d.test.len()), (70, 10, 20));
    let mut all: Vec<u64> = [ids(&d.train), ids(&d.dev), ids(&d.test)].concat();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    for e in d.test.iter().chain(&d.dev) {
        assert_eq!(e.input, format!("q{}", e.id));
    }
    assert_eq!(load_dataset(&c, Path::new("/")).unwrap().test, d.test);
    assert!(
        d.source.contains("test=split from train (0.2)"),
        "{}",
        d.source
    );
}

#[test]
fn missing_or_conflicting_splits_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.jsonl",
        &jsonl([("q".into(), "a".into())]),
    );
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has no test split") && err.contains("data.test_ratio"),
        "{err}"
    );
    write(dir.path(), "test.jsonl", &jsonl([("q".into(), "a".into())]));
    let mut c = cfg(dir.path());
    c.test_ratio = Some(0.5);
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(err.contains("`data.test_ratio` is set but"), "{err}");
    write(dir.path(), "test.csv", "q,a\nx,y\n");
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("several candidate test files") && err.contains("`data.test`"),
        "{err}"
    );
    let mut c = cfg(dir.path());
    c.test = Some("test.csv".into());
    assert_eq!(load_dataset(&c, Path::new("/")).unwrap().test[0].input, "x");
    c.path = dir.path().join("nope");
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("`data.path` =") && err.contains("does not exist"),
        "{err}"
    );
}

/// Write a parquet file shaped like a hub dataset: a string column, a struct column and a
/// list<string> column (3-level LIST encoding).
/// (question, answer.text, aliases) of one row.
type ParquetRow<'a> = (&'a str, Option<&'a str>, Option<Vec<&'a str>>);

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
        err.contains("train-00001-of-00002.parquet row 2: output field `answer.text` is missing"),
        "{err}"
    );
}

#[test]
fn shipped_aeslc_has_documented_counts_and_references() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let c = DataConfig {
        path: "data/aeslc".into(),
        input_field: "email".into(),
        output_field: "subject".into(),
        reference_fields: vec!["subject".into(), "annotations".into()],
        ..DataConfig::default()
    };
    let d = load_dataset(&c, root).unwrap();
    assert_eq!(
        (d.train.len(), d.dev.len(), d.test.len()),
        (14_436, 1_960, 1_906)
    );
    assert!(d.train.iter().all(|e| e.references.len() == 1));
    assert!(d
        .dev
        .iter()
        .all(|e| e.references[0] == e.output && e.references.len() >= 2));
    let quick = crate::config::load_experiment(&root.join("experiments/quickstart.toml")).unwrap();
    let q = load_dataset(&quick.data, root).unwrap();
    assert_eq!((q.train.len(), q.test.len()), (1000, 40));
    assert!(
        render_input(&quick.data.input_template, &q.train[0].input, None)
            .starts_with("Write a subject line for this email:\n")
    );
}

#[test]
fn shipped_gsm8k_loads_questions_and_reasoned_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let c = DataConfig {
        path: "data/gsm8k".into(),
        input_field: "question".into(),
        output_field: "answer".into(),
        ..DataConfig::default()
    };
    let d = load_dataset(&c, root).unwrap();
    assert_eq!(
        (d.train.len(), d.dev.len(), d.test.len()),
        (7_473, 0, 1_319)
    );
    assert!(d.train[0].input.starts_with("Natalia sold clips"));
    assert!(d.train[0].output.ends_with("#### 72"));
    assert!(d.test.iter().all(|e| e.output.contains("####")));
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

#[test]
fn a_file_serving_two_splits_or_data_train_beside_a_file_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    numbered_dataset(dir.path(), 10, 5);
    // The test split named as the train file: the pool would be the test set.
    let mut c = cfg(dir.path());
    c.test = Some("train.jsonl".into());
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("train.jsonl is in both the train split (`data.train`) and the test split (`data.test`)"),
        "{err}"
    );
    // Also through another spelling of the same file.
    let mut c = cfg(dir.path());
    c.dev = Some("./test.jsonl".into());
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("in both the dev split (`data.dev`) and the test split (`data.test`)"),
        "{err}"
    );
    // data.path a file and data.test the same file.
    let mut c = cfg(&dir.path().join("train.jsonl"));
    c.test = Some("train.jsonl".into());
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("in both the train split (`data.path`) and the test split (`data.test`)"),
        "{err}"
    );
    // data.path a file: data.train cannot name another train file.
    let mut c = cfg(&dir.path().join("test.jsonl"));
    c.train = Some("train.jsonl".into());
    c.test_ratio = Some(0.2);
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("`data.train` = \"train.jsonl\" is set but `data.path` =")
            && err.contains("is a file"),
        "{err}"
    );
}

#[test]
fn tsv_quotes_are_text_and_do_not_merge_rows() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.tsv",
        "q\ta\n\"quoted\" start\tone\nan \"open quote\tt\"wo\nthird\tthree\n",
    );
    write(dir.path(), "test.tsv", "q\ta\n\"t\"\t\"u\"\n");
    let d = load_dataset(&cfg(dir.path()), Path::new("/")).unwrap();
    let got: Vec<(&str, &str)> = d
        .train
        .iter()
        .map(|e| (e.input.as_str(), e.output.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("\"quoted\" start", "one"),
            ("an \"open quote", "t\"wo"),
            ("third", "three")
        ]
    );
    assert_eq!(
        (d.test[0].input.as_str(), d.test[0].output.as_str()),
        ("\"t\"", "\"u\"")
    );
}

#[test]
fn a_utf8_byte_order_mark_is_not_part_of_jsonl_or_json_data() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("train.jsonl"),
        "\u{feff}{\"q\": \"x\", \"a\": \"1\"}\n{\"q\": \"y\", \"a\": \"2\"}\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("test.json"),
        "\u{feff}[{\"q\": \"t\", \"a\": \"u\"}]",
    )
    .unwrap();
    let d = load_dataset(&cfg(dir.path()), Path::new("/")).unwrap();
    assert_eq!(ids(&d.train), vec![0, 1]);
    assert_eq!(d.train[0].input, "x");
    assert_eq!(d.test[0].output, "u");
}

#[test]
fn invalid_utf8_in_one_jsonl_line_is_a_bad_row_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"{\"q\": \"x\", \"a\": \"1\"}\r\n{\"q\": \"caf".to_vec();
    bytes.extend_from_slice(b"\xe9\", \"a\": \"2\"}\r\n{\"q\": \"z\", \"a\": \"3\"}\r\n");
    fs::write(dir.path().join("train.jsonl"), bytes).unwrap();
    write(dir.path(), "test.jsonl", &jsonl([("t".into(), "u".into())]));
    let mut c = cfg(dir.path());
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("train.jsonl line 2: invalid UTF-8 at byte 11 of the line"),
        "{err}"
    );
    c.on_bad_row = OnBadRow::Skip;
    let d = load_dataset(&c, Path::new("/")).unwrap();
    assert_eq!(ids(&d.train), vec![0, 2]);
    assert_eq!(d.train[1].output, "3");
    assert_eq!(d.skipped_rows, 1);
}

#[test]
fn crlf_csv_reports_true_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.csv",
        "q,a\r\n\"first,\r\nemail\",s1\r\nsecond,s2\r\nthird,\r\n",
    );
    write(dir.path(), "test.csv", "q,a\r\nt,u\r\n");
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.csv line 5: output field `a` is empty"),
        "{err}"
    );
}

#[test]
fn a_csv_header_naming_a_column_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "train.csv", "q,a,q\nx,1,y\n");
    write(dir.path(), "test.csv", "q,a\nt,u\n");
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.csv: the header names column `q` twice"),
        "{err}"
    );
}

#[test]
fn column_oriented_json_may_have_a_column_named_data_or_rows() {
    let dir = tempfile::tempdir().unwrap();
    for key in ["data", "rows"] {
        let path = dir.path().join("d.json");
        fs::write(
            &path,
            format!(r#"{{"q": ["x", "y"], "{key}": ["1", "2"]}}"#),
        )
        .unwrap();
        let rows = rows::read_rows(&path, DataFormat::Auto).unwrap();
        let got: Vec<serde_json::Value> = rows.into_iter().map(|r| r.value.unwrap()).collect();
        assert_eq!(
            got,
            vec![
                serde_json::json!({"q": "x", key: "1"}),
                serde_json::json!({"q": "y", key: "2"})
            ],
            "{key}"
        );
    }
}

#[test]
fn a_test_file_with_no_usable_rows_is_named_not_called_missing() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.jsonl",
        &jsonl([("q".into(), "a".into())]),
    );
    write(
        dir.path(),
        "test.jsonl",
        "{\"question\": \"t\", \"a\": \"u\"}\n{\"question\": \"v\", \"a\": \"w\"}\n",
    );
    let mut c = cfg(dir.path());
    c.on_bad_row = OnBadRow::Skip;
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("test.jsonl gave 0 usable rows (2 skipped)")
            && err.contains("data.input_field = `q`")
            && !err.contains("has no test split"),
        "{err}"
    );
}

#[test]
fn leftover_or_missing_hub_shards_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let rows = jsonl([("q".into(), "a".into())]);
    write(dir.path(), "data/test-00000-of-00001.jsonl", &rows);
    write(dir.path(), "data/train-00000-of-00002.jsonl", &rows);
    write(dir.path(), "data/train-00001-of-00002.jsonl", &rows);
    assert_eq!(
        load_dataset(&cfg(dir.path()), Path::new("/"))
            .unwrap()
            .files
            .train
            .len(),
        2
    );
    // A leftover shard of an earlier download (one shard in all).
    write(dir.path(), "data/train-00000-of-00001.jsonl", &rows);
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("more than one download") && err.contains("of 1: train-00000-of-00001.jsonl"),
        "{err}"
    );
    fs::remove_file(dir.path().join("data/train-00000-of-00001.jsonl")).unwrap();
    fs::remove_file(dir.path().join("data/train-00001-of-00002.jsonl")).unwrap();
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not one complete set of 2: missing [00001]"),
        "{err}"
    );
}

/// An empty file (or one with only blank lines or a CSV header) is named as having no rows,
/// not called a field mapping to fix or a missing split.
#[test]
fn an_empty_data_file_is_named_as_having_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let rows = jsonl([("q".into(), "a".into())]);
    for (name, text) in [
        ("train.jsonl", ""),
        ("train.jsonl", "\n \n\r\n"),
        ("train.csv", "q,a\n"),
        ("train.json", "  \n"),
        ("train.json", "[]"),
    ] {
        let _ = fs::remove_dir_all(dir.path());
        write(dir.path(), name, text);
        write(dir.path(), "test.jsonl", &rows);
        let err = load_dataset(&cfg(dir.path()), Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "the train split {} has no rows",
                dir.path().join(name).display()
            )) && err.contains("point data.path"),
            "{name} {text:?}: {err}"
        );
    }
    let _ = fs::remove_dir_all(dir.path());
    write(dir.path(), "train.jsonl", &rows);
    write(dir.path(), "test.jsonl", "");
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the test split")
            && err.contains("test.jsonl has no rows")
            && err.contains("data.test_ratio")
            && !err.contains("field mapping"),
        "{err}"
    );
    // Every train row skipped as bad is named too.
    write(
        dir.path(),
        "train.jsonl",
        "{\"x\": \"1\"}\n{\"x\": \"2\"}\n",
    );
    write(dir.path(), "test.jsonl", &rows);
    let mut c = cfg(dir.path());
    c.on_bad_row = OnBadRow::Skip;
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("train.jsonl gave 0 usable rows (all 2 skipped as bad)")
            && err.contains("data.input_field = `q`"),
        "{err}"
    );
}

/// serde_json counts lines within the one line it was given; the message gives the column, so
/// it does not read "line 3: ... at line 1".
#[test]
fn a_bad_jsonl_line_names_its_column_not_a_line_within_the_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.jsonl",
        "{\"q\": \"x\", \"a\": \"1\"}\n\n{\"q\": \"y\", \"a\": \"2\",}\n",
    );
    write(dir.path(), "test.jsonl", &jsonl([("t".into(), "u".into())]));
    let err = load_dataset(&cfg(dir.path()), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.jsonl line 3: invalid JSON at column 21: trailing comma.")
            && !err.contains("at line 1"),
        "{err}"
    );
}

#[test]
fn invalid_utf8_in_a_csv_row_names_the_column_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("train.csv"), b"q,a\nok,1\ncaf\xe9,2\n").unwrap();
    write(dir.path(), "test.csv", "q,a\nt,u\n");
    let mut c = cfg(dir.path());
    let err = load_dataset(&c, Path::new("/")).unwrap_err().to_string();
    assert!(
        err.contains("train.csv line 3: invalid UTF-8 in column `q` (the file must be UTF-8 text: save it as UTF-8)"),
        "{err}"
    );
    c.on_bad_row = OnBadRow::Skip;
    assert_eq!(
        ids(&load_dataset(&c, Path::new("/")).unwrap().train),
        vec![0]
    );
}
