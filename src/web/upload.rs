//! Dataset uploads for the launch form: the raw file body (at most
//! [`MAX_UPLOAD_BYTES`](crate::web::safety::MAX_UPLOAD_BYTES)) is stored under
//! `<results>/uploads/` and parsed with the lab's own loaders before it is offered.
use crate::config::DataConfig;
use crate::web::http::Reply;
use crate::web::safety::check_name;
use crate::web::App;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const UPLOAD_DIR: &str = "uploads";

/// The data settings for an uploaded file: its fields, and a test split cut from it
/// (an upload is a single file).
pub fn upload_data_config(path: &Path, input_field: &str, output_field: &str) -> DataConfig {
    DataConfig {
        path: path.to_path_buf(),
        input_field: input_field.to_string(),
        output_field: output_field.to_string(),
        test_ratio: Some(0.2),
        ..Default::default()
    }
}

/// Store and check one upload; returns the stored path and its row count.
pub fn store_upload(
    results: &Path,
    filename: &str,
    input_field: &str,
    output_field: &str,
    body: &[u8],
) -> Result<(PathBuf, usize)> {
    check_name(filename, "upload file name")?;
    let lower = filename.to_ascii_lowercase();
    if ![".csv", ".jsonl", ".json"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        bail!("upload {filename:?}: only .csv, .jsonl and .json files are accepted");
    }
    if input_field.trim().is_empty() || output_field.trim().is_empty() {
        bail!("name the input and output fields of the file before uploading it");
    }
    let dir = results.join(UPLOAD_DIR);
    let path = dir.join(filename);
    // Checked under a hidden name first (same extension, so the same loader reads it): a bad
    // upload never replaces or deletes a good file of the same name. The name is unique to
    // this request, so two uploads at once never read or store each other's bytes.
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create folder {}", dir.display()))?;
    let mut staged =
        crate::util::atomic::shareable_temp_file(&dir, ".staged-", &format!("-{filename}"))?;
    staged
        .write_all(body)
        .and_then(|()| staged.as_file().sync_all())
        .with_context(|| format!("cannot write {}", staged.path().display()))?;
    let cfg = upload_data_config(staged.path(), input_field, output_field);
    let rows = match crate::data::load_dataset(&cfg, Path::new(".")) {
        Ok(d) => d.train.len() + d.dev.len() + d.test.len(),
        Err(e) => return Err(e.context(format!("upload {filename:?} cannot be used"))),
    };
    // Experiments written earlier point at the stored file: it is never changed under them.
    // `hard_link` fails if the name exists, so two uploads cannot both win. The staged name
    // goes when `staged` is dropped.
    match std::fs::hard_link(staged.path(), &path) {
        Ok(()) => {
            if let Ok(folder) = std::fs::File::open(&dir) {
                let _ = folder.sync_all();
            }
            Ok((path, rows))
        }
        Err(_) if std::fs::read(&path).is_ok_and(|held| held == body) => Ok((path, rows)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "an upload named {filename:?} already exists with other contents (experiments may \
             use it): rename your file and upload it again"
        ),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot store {}", path.display()))),
    }
}

/// Uploaded datasets, for the launch form's dataset list.
pub fn uploaded_files(results: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(results.join(UPLOAD_DIR))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Why an upload over `limit` was refused, and how a file that large is used instead: the
/// server reads data from its own disk, so a file there needs no upload.
pub fn too_large_message(limit: u64) -> String {
    format!(
        "This file is larger than {mb}, the most one upload may send, so it was not uploaded: \
         nothing was stored. A file on the machine that runs `lab serve` (copy it there, e.g. \
         into its data/ folder) needs no upload: in the launch form, name its input and output \
         fields and give its path in the Advanced TOML box:\n[data]\npath = \"/full/path/to/file.csv\"\n\
         Or write an experiment TOML file with that data.path and run `lab run FILE`.",
        mb = crate::web::safety::megabytes(limit)
    )
}

pub fn receive(app: &App, query: &HashMap<String, String>, body: &[u8]) -> Reply {
    let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
    match store_upload(
        &app.results,
        get("filename"),
        get("input_field"),
        get("output_field"),
        body,
    ) {
        Ok((path, rows)) => Reply::json(&json!({"path": path.display().to_string(), "rows": rows})),
        Err(e) => Reply::json(&json!({"error": format!("{e:#}")})).status(400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_parsed_with_the_lab_loaders() {
        let dir = tempfile::tempdir().unwrap();
        let csv: String = std::iter::once("question,answer\n".to_string())
            .chain((0..10).map(|i| format!("q{i},a{i}\n")))
            .collect();
        let (path, rows) =
            store_upload(dir.path(), "mine.csv", "question", "answer", csv.as_bytes()).unwrap();
        assert_eq!(rows, 10);
        assert_eq!(uploaded_files(dir.path()), std::slice::from_ref(&path));

        // A wrong field name is refused with the loader's message, and the file is dropped.
        let err =
            store_upload(dir.path(), "bad.csv", "prompt", "answer", csv.as_bytes()).unwrap_err();
        assert!(format!("{err:#}").contains("prompt"), "{err:#}");
        assert!(!dir.path().join(UPLOAD_DIR).join("bad.csv").exists());

        // The same name again: a bad file leaves the good one, other contents are refused,
        // the same contents are accepted as they are.
        let kept = std::fs::read(&path).unwrap();
        let err =
            store_upload(dir.path(), "mine.csv", "prompt", "answer", csv.as_bytes()).unwrap_err();
        assert!(format!("{err:#}").contains("prompt"), "{err:#}");
        let other = csv.replace("q9,a9", "q9,changed");
        let err = store_upload(
            dir.path(),
            "mine.csv",
            "question",
            "answer",
            other.as_bytes(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("already exists"), "{err:#}");
        assert_eq!(std::fs::read(&path).unwrap(), kept);
        store_upload(dir.path(), "mine.csv", "question", "answer", csv.as_bytes()).unwrap();
        assert_eq!(
            uploaded_files(dir.path()),
            std::slice::from_ref(&path),
            "no staged files left"
        );

        for (name, why) in [("../x.csv", "name"), ("x.exe", "extension")] {
            assert!(
                store_upload(dir.path(), name, "question", "answer", b"q,a\n").is_err(),
                "{why}"
            );
        }
    }

    #[test]
    fn two_uploads_of_one_name_at_once_store_exactly_the_winner() {
        let dir = tempfile::tempdir().unwrap();
        let csv = |rows: usize, tag: &str| -> String {
            std::iter::once("question,answer\n".to_string())
                .chain((0..rows).map(|i| format!("{tag}{i},a{i}\n")))
                .collect()
        };
        // Big enough that writing and parsing overlap between the two threads.
        let bodies = [csv(3000, "first"), csv(5000, "second")];
        for round in 0..20 {
            let name = format!("race{round}.csv");
            let barrier = std::sync::Barrier::new(2);
            let results: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = bodies
                    .iter()
                    .map(|body| {
                        let (barrier, name, root) = (&barrier, &name, dir.path());
                        s.spawn(move || {
                            barrier.wait();
                            store_upload(root, name, "question", "answer", body.as_bytes())
                                .map(|(_, rows)| rows)
                                .map_err(|e| format!("{e:#}"))
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let won: Vec<usize> = results
                .iter()
                .filter_map(|r| r.as_ref().ok().copied())
                .collect();
            assert_eq!(won.len(), 1, "round {round}: {results:?}");
            let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
            assert!(loser.contains("already exists"), "round {round}: {loser}");
            let stored = std::fs::read_to_string(dir.path().join(UPLOAD_DIR).join(&name)).unwrap();
            let winner = if won[0] == 3000 {
                &bodies[0]
            } else {
                &bodies[1]
            };
            assert_eq!(
                &stored, winner,
                "round {round}: the stored file is the winner's"
            );
        }
        let left: Vec<_> = std::fs::read_dir(dir.path().join(UPLOAD_DIR))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(left.is_empty(), "no staged files left: {left:?}");
    }
}
