//! Dataset loading: folders of small files written per test; each child module covers one
//! concern.
use super::*;
use std::fs;

mod file_formats;
mod parquet_files;
mod shipped_datasets;
mod splits;

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
