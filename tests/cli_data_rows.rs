//! Rows `lab check` cannot use: the advice fits the cause (a null value is the row's, a row
//! that cannot be read is fixed in the file, a `data.format` against the extension misreads
//! every row), never "map other fields" where no mapping helps.
use std::path::Path;
use std::process::{Command, Output};

/// `<dir>/<name>.toml` over `<dir>/<name>/train.jsonl` holding `rows`, a fifth of them the
/// test split; `extra` lines go under `[data]`.
fn experiment(dir: &Path, name: &str, rows: &[&str], extra: &str) {
    std::fs::create_dir_all(dir.join(name)).unwrap();
    std::fs::write(dir.join(name).join("train.jsonl"), rows.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!(
            "seeds = [0]\n[data]\npath = \"{name}\"\ninput_field = \"text\"\n\
             output_field = \"label\"\ntest_ratio = 0.2\n{extra}\n[model]\n\
             name = \"tiny-random-llama\"\n[al]\ninit_size = 1\nquery_size = 1\niterations = 1\n\
             [[strategy]]\nname = \"random\"\nscript = \"{}\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("strategies/random.rhai")
                .display()
        ),
    )
    .unwrap();
}

fn check(dir: &Path, name: &str) -> String {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["check", &format!("{name}.toml")])
        .current_dir(dir)
        .env("LAB_QUIET", "1")
        .output()
        .expect("the lab binary runs");
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const GOOD: [&str; 4] = [
    r#"{"text": "c", "label": "d"}"#,
    r#"{"text": "e", "label": "f"}"#,
    r#"{"text": "g", "label": "h"}"#,
    r#"{"text": "i", "label": "j"}"#,
];

/// A null label in the first row was "output field `label` is missing. Set
/// data.input_field, data.output_field or data.reference_fields to fields the rows have",
/// though the field is there and every other row has it.
#[test]
fn a_null_value_is_the_row_s_to_fix_or_skip() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = vec![r#"{"text": "a", "label": null}"#];
    rows.extend(GOOD);
    experiment(dir.path(), "nulls", &rows, "");
    let err = check(dir.path(), "nulls");
    assert!(
        err.contains("nulls/train.jsonl line 1: output field `label` is null."),
        "{err}"
    );
    assert!(err.contains("data.on_bad_row = \"skip\""), "{err}");
    assert!(!err.contains("to fields the rows have"), "{err}");

    let mut rows = vec![r#"{"text": "a", "label": {"first": null}}"#];
    rows.extend(GOOD);
    experiment(dir.path(), "nested", &rows, "");
    std::fs::write(
        dir.path().join("nested.toml"),
        std::fs::read_to_string(dir.path().join("nested.toml"))
            .unwrap()
            .replace(
                "output_field = \"label\"",
                "output_field = \"label.first.text\"",
            ),
    )
    .unwrap();
    let err = check(dir.path(), "nested");
    assert!(
        err.contains("output field `label.first.text`: `label.first` is null, so it has no `text`"),
        "{err}"
    );
}

/// A line that is not JSON was told to "map other fields (data.input_field, …)"; a
/// `format = "csv"` over a .jsonl file blamed the row's width alone.
#[test]
fn a_row_that_cannot_be_read_is_fixed_in_the_file_or_by_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = vec![r#"{"text": "a", "label": "b"}"#, r#"{"text": "a", "label"#];
    rows.extend(GOOD);
    experiment(dir.path(), "broken", &rows, "");
    let err = check(dir.path(), "broken");
    assert!(
        err.contains("broken/train.jsonl line 2: invalid JSON"),
        "{err}"
    );
    assert!(
        err.contains("Fix the row, or set data.on_bad_row = \"skip\" to leave out the rows that cannot be read"),
        "{err}"
    );
    assert!(!err.contains("map other fields"), "{err}");

    let mut rows = vec![r#"{"text": "a", "label": "b", "id": 1}"#];
    rows.extend(GOOD);
    experiment(dir.path(), "csv", &rows, "format = \"csv\"");
    let err = check(dir.path(), "csv");
    assert!(
        err.contains(
            "data.format = \"csv\" reads this jsonl file as csv: remove data.format (or set it to \"jsonl\")"
        ),
        "{err}"
    );
}

/// "the test split has only 1 rows".
#[test]
fn a_size_larger_than_its_split_counts_rows_in_words() {
    let dir = tempfile::tempdir().unwrap();
    experiment(dir.path(), "small", &GOOD, "test_size = 2");
    let err = check(dir.path(), "small");
    assert!(
        err.contains("`data.test_size` = 2 but the test split has only 1 row; lower it"),
        "{err}"
    );
    experiment(dir.path(), "pool", &GOOD, "pool_size = 9");
    let err = check(dir.path(), "pool");
    assert!(
        err.contains("`data.pool_size` = 9 but the train split has only 3 rows; lower it"),
        "{err}"
    );
}
