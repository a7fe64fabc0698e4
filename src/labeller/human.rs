//! The human labeller: a person labels each queried batch in the web app (`lab serve`).
//!
//! The protocol is two files in `<cell dir>/annotation/`, so either process may crash without
//! losing a saved label:
//! - `pending.json` ([`PendingBatch`]), written atomically by the run when a batch needs labels;
//! - `labels.jsonl` ([`SavedLabel`] per line), appended and fsynced by the web app per label.
//!
//! The run polls `labels.jsonl` until every pending id has a non-empty label (the latest line
//! per id wins, so going back and relabelling works), then removes `pending.json`.
use crate::data::Example;
use crate::labeller::{Label, LabelOutcome, Labeller};
use crate::util::atomic_write_string;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const ANNOTATION_DIR: &str = "annotation";
pub const PENDING_FILE: &str = "pending.json";
pub const LABELS_FILE: &str = "labels.jsonl";

/// One item a person is asked to label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingItem {
    pub id: u64,
    /// The input as the model sees it (template applied).
    pub input: String,
    pub system_prompt: String,
    /// The model's current output for this input, a starting point; empty when unknown.
    pub guess: String,
}

/// The batch a run waits on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingBatch {
    pub items: Vec<PendingItem>,
}

/// One line of `labels.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedLabel {
    pub id: u64,
    pub output: String,
    /// Seconds the person spent on this item before saving.
    pub seconds: f64,
}

pub fn annotation_dir(cell_dir: &Path) -> PathBuf {
    cell_dir.join(ANNOTATION_DIR)
}

pub fn pending_path(cell_dir: &Path) -> PathBuf {
    annotation_dir(cell_dir).join(PENDING_FILE)
}

pub fn labels_path(cell_dir: &Path) -> PathBuf {
    annotation_dir(cell_dir).join(LABELS_FILE)
}

/// The batch waiting in `cell_dir`, if any.
pub fn read_pending(cell_dir: &Path) -> Result<Option<PendingBatch>> {
    let path = pending_path(cell_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let batch = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a pending annotation batch; delete it and rerun the cell",
            path.display()
        )
    })?;
    Ok(Some(batch))
}

/// Every saved label, the latest per id. A torn line (a crash mid-append) is ignored: only
/// that one label is lost and the page asks for it again. Any other unreadable line is an
/// error naming the file and line.
pub fn read_labels(cell_dir: &Path) -> Result<HashMap<u64, SavedLabel>> {
    let path = labels_path(cell_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut labels = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<SavedLabel>(line) {
            Ok(label) => {
                labels.insert(label.id, label);
            }
            // Cut short by a crash (later appends start on a fresh line, so it may not be
            // last): that label is asked for again.
            Err(_) if !line.ends_with('}') => {}
            // A whole line that does not read is an edit gone wrong: skipping it would lose
            // a person's work without a word.
            Err(e) => bail!(
                "{} line {}: not a saved label ({e}); fix the line (fields id, output) or \
                 delete it to label that example again",
                path.display(),
                n + 1
            ),
        }
    }
    Ok(labels)
}

/// Append one label durably (the web app calls this on every save).
pub fn append_label(cell_dir: &Path, label: &SavedLabel) -> Result<()> {
    let dir = annotation_dir(cell_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = labels_path(cell_dir);
    let mut line = serde_json::to_string(label).context("cannot encode a label as JSON")?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {} to append a label", path.display()))?;
    // A torn line from an earlier crash must not swallow this one: start on a fresh line.
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > 0 {
        let text = std::fs::read(&path).unwrap_or_default();
        if text.last() != Some(&b'\n') {
            line.insert(0, '\n');
        }
    }
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write a label to {}", path.display()))
}

pub struct HumanLabeller {
    cell_dir: PathBuf,
    poll: Duration,
    system_prompt: String,
    input_template: String,
    max_input_chars: Option<usize>,
}

impl HumanLabeller {
    /// A labeller that asks for labels in `cell_dir/annotation/` and checks for them every
    /// `poll`.
    pub fn new(cell_dir: PathBuf, poll: Duration) -> Self {
        HumanLabeller {
            cell_dir,
            poll,
            system_prompt: String::new(),
            input_template: "{input}".to_string(),
            max_input_chars: None,
        }
    }

    /// Show inputs as the model sees them: the data's template, system prompt and cut-off.
    pub fn with_prompt(mut self, data: &crate::config::DataConfig) -> Self {
        self.system_prompt = data.system_prompt.clone().unwrap_or_default();
        self.input_template = data.input_template.clone();
        self.max_input_chars = data.max_input_chars;
        self
    }

    pub fn cell_dir(&self) -> &Path {
        &self.cell_dir
    }

    fn pending_batch(&self, items: &[Example]) -> PendingBatch {
        PendingBatch {
            items: items
                .iter()
                .map(|e| PendingItem {
                    id: e.id,
                    input: crate::data::render_input(
                        &self.input_template,
                        &e.input,
                        self.max_input_chars,
                    ),
                    system_prompt: self.system_prompt.clone(),
                    guess: String::new(),
                })
                .collect(),
        }
    }
}

impl Labeller for HumanLabeller {
    fn name(&self) -> String {
        "human".to_string()
    }

    fn label(&mut self, items: &[Example], _few_shot: &[Example]) -> Result<LabelOutcome> {
        if items.is_empty() {
            return Ok(LabelOutcome::Complete(Vec::new()));
        }
        let batch = self.pending_batch(items);
        let text = serde_json::to_string_pretty(&batch).context("cannot encode the batch")?;
        atomic_write_string(&pending_path(&self.cell_dir), &text)?;
        let labels = loop {
            let saved = read_labels(&self.cell_dir)?;
            let done: Option<Vec<Label>> = items
                .iter()
                .map(|e| {
                    saved
                        .get(&e.id)
                        .filter(|l| !l.output.trim().is_empty())
                        .map(|l| Label {
                            id: e.id,
                            output: l.output.clone(),
                            cost: 0.0,
                            input_tokens: 0,
                            output_tokens: 0,
                            seconds: l.seconds,
                        })
                })
                .collect();
            if let Some(labels) = done {
                break labels;
            }
            std::thread::sleep(self.poll);
        };
        let pending = pending_path(&self.cell_dir);
        std::fs::remove_file(&pending)
            .with_context(|| format!("cannot remove {} after labelling", pending.display()))?;
        Ok(LabelOutcome::Complete(labels))
    }

    fn spent(&self) -> f64 {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(id: u64, input: &str) -> Example {
        Example {
            id,
            input: input.to_string(),
            output: "gold".to_string(),
            references: vec!["gold".to_string()],
        }
    }

    #[test]
    fn waits_for_every_label_written_by_another_thread() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path().to_path_buf();
        let data = crate::config::DataConfig {
            input_template: "Subject for: {input}".into(),
            system_prompt: Some("Be brief.".into()),
            ..Default::default()
        };
        let mut labeller =
            HumanLabeller::new(cell.clone(), Duration::from_millis(5)).with_prompt(&data);
        let writer_cell = cell.clone();
        let writer = std::thread::spawn(move || {
            // Wait for the batch, check it, then label out of order with a relabel and a blank.
            let batch = loop {
                if let Some(b) = read_pending(&writer_cell).unwrap() {
                    break b;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let save = |id, output: &str, seconds| {
                append_label(
                    &writer_cell,
                    &SavedLabel {
                        id,
                        output: output.to_string(),
                        seconds,
                    },
                )
                .unwrap();
                std::thread::sleep(Duration::from_millis(20));
            };
            save(9, "first try", 1.0);
            save(3, "  ", 0.5);
            save(9, "Lunch on Friday", 4.0);
            assert!(
                pending_path(&writer_cell).exists(),
                "the run must wait while id 3 has only a blank label"
            );
            save(3, "Budget review", 2.5);
            batch
        });
        let outcome = labeller
            .label(&[example(3, "q3 numbers"), example(9, "food")], &[])
            .unwrap();
        let batch = writer.join().unwrap();
        assert_eq!(batch.items.len(), 2);
        assert_eq!(batch.items[0].input, "Subject for: q3 numbers");
        assert_eq!(batch.items[0].system_prompt, "Be brief.");
        let LabelOutcome::Complete(labels) = outcome else {
            panic!("a person has no money budget");
        };
        let got: Vec<(u64, &str, f64)> = labels
            .iter()
            .map(|l| (l.id, l.output.as_str(), l.seconds))
            .collect();
        assert_eq!(
            got,
            [(3, "Budget review", 2.5), (9, "Lunch on Friday", 4.0)]
        );
        assert!(labels.iter().all(|l| l.cost == 0.0));
        assert!(!pending_path(&cell).exists(), "a finished batch is removed");
    }

    #[test]
    fn labels_saved_before_a_crash_count_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path();
        append_label(
            cell,
            &SavedLabel {
                id: 1,
                output: "kept".into(),
                seconds: 3.0,
            },
        )
        .unwrap();
        // A crash mid-append leaves half a line; the next save starts a fresh line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(labels_path(cell))
            .unwrap();
        f.write_all(b"{\"id\": 2, \"outp").unwrap();
        drop(f);
        append_label(
            cell,
            &SavedLabel {
                id: 2,
                output: "after crash".into(),
                seconds: 1.0,
            },
        )
        .unwrap();
        let mut labeller = HumanLabeller::new(cell.to_path_buf(), Duration::from_millis(1));
        let out = labeller
            .label(&[example(1, "a"), example(2, "b")], &[])
            .unwrap();
        let outputs: Vec<&str> = out.labels().iter().map(|l| l.output.as_str()).collect();
        assert_eq!(outputs, ["kept", "after crash"]);

        // A whole line that does not read (a hand edit) is named, not silently dropped.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(labels_path(cell))
            .unwrap();
        f.write_all(b"{\"id\": \"three\", \"output\": \"x\"}\n")
            .unwrap();
        drop(f);
        let err = format!("{:#}", read_labels(cell).unwrap_err());
        assert!(err.contains("labels.jsonl line 4"), "{err}");
    }
}
