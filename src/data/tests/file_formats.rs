//! Reading rows from each file format (JSONL, JSON layouts, CSV, TSV): nested fields, quoting,
//! byte-order marks, CRLF, invalid UTF-8, and bad rows named by file and true line number.
use super::*;
use crate::config::DataFormat;

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
