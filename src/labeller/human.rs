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

/// Every saved label, the latest per id. The last line without its newline is an append
/// still being written (or cut short by a crash): it counts only once it reads in full, else
/// that one label is asked for again. Any complete line that does not read (not UTF-8, not a
/// label) is an error naming the file and line: skipping it would lose a person's work.
pub fn read_labels(cell_dir: &Path) -> Result<HashMap<u64, SavedLabel>> {
    let path = labels_path(cell_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    parse_labels(&bytes, &path)
}

fn parse_labels(bytes: &[u8], path: &Path) -> Result<HashMap<u64, SavedLabel>> {
    let mut labels = HashMap::new();
    let mut segments: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // After the last newline: empty for a whole file, else an unfinished append.
    let tail = segments.pop().unwrap_or_default();
    for (n, line) in segments.iter().enumerate() {
        let fix =
            "fix the line (fields id, output, seconds) or delete it to label that example again";
        let text = std::str::from_utf8(line).map_err(|e| {
            anyhow::anyhow!(
                "{} line {}: not UTF-8 text ({e}); {fix}",
                path.display(),
                n + 1
            )
        })?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<SavedLabel>(text) {
            Ok(label) => {
                labels.insert(label.id, label);
            }
            Err(e) => bail!(
                "{} line {}: not a saved label ({e}); {fix}",
                path.display(),
                n + 1
            ),
        }
    }
    if let Some(label) = whole_label(tail) {
        labels.insert(label.id, label);
    }
    Ok(labels)
}

/// `tail` (an unterminated last line) as a label, when it was written in full.
fn whole_label(tail: &[u8]) -> Option<SavedLabel> {
    let text = std::str::from_utf8(tail).ok()?.trim();
    if text.is_empty() {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// A stamp of the label saved for one item (`"none"` when there is none), so a page can tell
/// whether the label changed since it was shown (another tab saved meanwhile).
pub fn label_version(saved: Option<&SavedLabel>) -> String {
    match saved {
        None => "none".to_string(),
        Some(l) => {
            // FNV-1a: stable across processes and builds, unlike the std hasher.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in l.output.as_bytes() {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            format!("{h:016x}")
        }
    }
}

/// What became of a label handed to [`save_label`].
#[derive(Debug, PartialEq)]
pub enum SaveOutcome {
    /// On disk: appended, or the item already had exactly this text (nothing written).
    Saved,
    /// No batch is waiting (`pending.json` is gone: the run took the batch, or `--fresh`
    /// reset the cell): nothing was written.
    BatchGone,
    /// The item's label is not the version the caller expected: nothing was written. Holds
    /// the label saved now.
    Changed(Option<SavedLabel>),
}

/// The exclusive lock on `labels.jsonl` that orders saves against each other and against
/// the run taking the batch. A file system without locks runs unguarded.
fn lock_labels(file: &std::fs::File) {
    let _ = file.lock();
}

/// Append one label durably (the web app calls this on every save) while the batch waits,
/// and, when `expected` is given, only if the item's saved label still has that
/// [`label_version`]. Never creates the cell or annotation folder: a save landing after a
/// `--fresh` reset must not bring old labels back.
pub fn save_label(
    cell_dir: &Path,
    label: &SavedLabel,
    expected: Option<&str>,
) -> Result<SaveOutcome> {
    let dir = annotation_dir(cell_dir);
    let pending = pending_path(cell_dir);
    if !pending.exists() {
        return Ok(SaveOutcome::BatchGone);
    }
    let path = labels_path(cell_dir);
    let open = |new: bool| {
        std::fs::OpenOptions::new()
            .create_new(new)
            .read(true)
            .append(true)
            .open(&path)
    };
    let (mut file, created) = match open(true) {
        Ok(f) => (f, true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match open(false) {
            Ok(f) => (f, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SaveOutcome::BatchGone)
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot open {} to append a label", path.display()))
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SaveOutcome::BatchGone),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot open {} to append a label", path.display()))
        }
    };
    if created {
        // The new file's name must survive a crash too, not only its contents.
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync folder {}", dir.display()))?;
    }
    lock_labels(&file);
    // Checked again under the lock: the run removes pending.json while holding it.
    if !pending.exists() {
        return Ok(SaveOutcome::BatchGone);
    }
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    // An append cut short by a crash was never confirmed to anyone: cut it off, so every
    // line in the file is whole. One written in full but for its newline is kept.
    let mut separator = "";
    if text.last().is_some_and(|&b| b != b'\n') {
        let start = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole_label(&text[start..]).is_some() {
            separator = "\n";
        } else {
            file.set_len(start as u64)
                .with_context(|| format!("cannot cut a torn line off {}", path.display()))?;
            text.truncate(start);
        }
    }
    let saved = parse_labels(&text, &path)?.remove(&label.id);
    // The same text again (a double click on Save, a second tab typing the same label, a
    // browser resending the form) is saved already: nothing to refuse, nothing to add.
    if saved.as_ref().is_some_and(|s| s.output == label.output) {
        return Ok(SaveOutcome::Saved);
    }
    if let Some(expected) = expected {
        if label_version(saved.as_ref()) != expected {
            return Ok(SaveOutcome::Changed(saved));
        }
    }
    let line = format!(
        "{separator}{}\n",
        serde_json::to_string(label).context("cannot encode a label as JSON")?
    );
    // One write: a reader never sees this label's line mixed with another.
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write a label to {}", path.display()))?;
    Ok(SaveOutcome::Saved)
}

/// Append one label durably while its batch waits; an error when no batch is waiting.
pub fn append_label(cell_dir: &Path, label: &SavedLabel) -> Result<()> {
    match save_label(cell_dir, label, None)? {
        SaveOutcome::Saved => Ok(()),
        _ => bail!(
            "{} is gone: the run already took this batch (or the cell was reset), so the \
             label for example {} was not saved",
            pending_path(cell_dir).display(),
            label.id
        ),
    }
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
        let complete = |saved: &HashMap<u64, SavedLabel>| -> Option<Vec<Label>> {
            items
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
                .collect()
        };
        let pending = pending_path(&self.cell_dir);
        loop {
            if complete(&read_labels(&self.cell_dir)?).is_some() {
                // Take the batch under the labels lock: a save either lands before (and is
                // read here) or finds pending.json gone and says it was not saved.
                let path = labels_path(&self.cell_dir);
                let file = std::fs::File::open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                lock_labels(&file);
                if let Some(labels) = complete(&read_labels(&self.cell_dir)?) {
                    std::fs::remove_file(&pending).with_context(|| {
                        format!("cannot remove {} after labelling", pending.display())
                    })?;
                    return Ok(LabelOutcome::Complete(labels));
                }
            }
            std::thread::sleep(self.poll);
        }
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

    fn pending_one(cell: &Path, ids: &[u64]) {
        std::fs::create_dir_all(annotation_dir(cell)).unwrap();
        let batch = PendingBatch {
            items: ids
                .iter()
                .map(|&id| PendingItem {
                    id,
                    input: format!("in {id}"),
                    system_prompt: String::new(),
                    guess: String::new(),
                })
                .collect(),
        };
        atomic_write_string(&pending_path(cell), &serde_json::to_string(&batch).unwrap()).unwrap();
    }

    fn label(id: u64, output: &str) -> SavedLabel {
        SavedLabel {
            id,
            output: output.into(),
            seconds: 1.0,
        }
    }

    fn append_raw(cell: &Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(labels_path(cell))
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn labels_saved_before_a_crash_count_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path();
        pending_one(cell, &[1, 2]);
        append_label(cell, &label(1, "kept")).unwrap();
        // A crash mid-append leaves half a line; the next save cuts it off.
        append_raw(cell, b"{\"id\": 2, \"outp");
        append_label(cell, &label(2, "after crash")).unwrap();
        let mut labeller = HumanLabeller::new(cell.to_path_buf(), Duration::from_millis(1));
        let out = labeller
            .label(&[example(1, "a"), example(2, "b")], &[])
            .unwrap();
        let outputs: Vec<&str> = out.labels().iter().map(|l| l.output.as_str()).collect();
        assert_eq!(outputs, ["kept", "after crash"]);

        // A whole line that does not read (a hand edit) is named, not silently dropped.
        append_raw(cell, b"{\"id\": \"three\", \"output\": \"x\"}\n");
        let err = format!("{:#}", read_labels(cell).unwrap_err());
        assert!(err.contains("labels.jsonl line 3"), "{err}");
    }

    #[test]
    fn a_torn_last_line_never_stops_labelling_whatever_it_ends_with() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path();
        pending_one(cell, &[1, 2, 3]);
        append_label(cell, &label(1, "café")).unwrap();
        // Cut inside a multi-byte character (not UTF-8), and cut right after a `}` inside
        // the text: both are unfinished appends, asked for again.
        for torn in [
            &b"{\"id\":2,\"output\":\"caf\xc3"[..],
            b"{\"id\":2,\"output\":\"a}",
        ] {
            let before = std::fs::read(labels_path(cell)).unwrap();
            let known = read_labels(cell).unwrap();
            append_raw(cell, torn);
            assert_eq!(read_labels(cell).unwrap(), known, "{torn:?}");
            append_label(cell, &label(2, "b}")).unwrap();
            let saved = read_labels(cell).unwrap();
            assert_eq!(saved[&2].output, "b}");
            let after = std::fs::read(labels_path(cell)).unwrap();
            assert!(after.starts_with(&before) && after.ends_with(b"\n"));
            assert!(!after.windows(torn.len()).any(|w| w == torn), "cut off");
        }
        // A label written in full but for its newline counts, and is kept by the next save.
        append_raw(cell, b"{\"id\":3,\"output\":\"whole\",\"seconds\":2.0}");
        assert_eq!(read_labels(cell).unwrap()[&3].output, "whole");
        append_label(cell, &label(1, "again")).unwrap();
        let saved = read_labels(cell).unwrap();
        assert_eq!(
            (saved[&3].output.as_str(), saved[&1].output.as_str()),
            ("whole", "again")
        );

        // A complete line that is not UTF-8 is an error with the file and line (line 5: the
        // second save of "b}" above found that text saved already and added no line).
        append_raw(cell, b"{\"id\":4,\"output\":\"\xff\"}\n");
        let err = format!("{:#}", read_labels(cell).unwrap_err());
        assert!(
            err.contains("labels.jsonl line 5") && err.contains("UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn saves_need_a_waiting_batch_and_the_version_shown() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path().join("seed-0");
        pending_one(&cell, &[1]);
        let v0 = label_version(None);
        assert_eq!(
            save_label(&cell, &label(1, "a"), Some(&v0)).unwrap(),
            SaveOutcome::Saved
        );
        // A second tab still showing "none" is told what is saved now.
        assert_eq!(
            save_label(&cell, &label(1, "b"), Some(&v0)).unwrap(),
            SaveOutcome::Changed(Some(label(1, "a")))
        );
        let v1 = label_version(Some(&label(1, "a")));
        assert_ne!(v1, v0);
        assert_eq!(
            save_label(&cell, &label(1, "c"), Some(&v1)).unwrap(),
            SaveOutcome::Saved
        );
        assert_eq!(read_labels(&cell).unwrap()[&1].output, "c");

        // The same text again from a page that still shows an older version (a double
        // click on Save, a second tab typing the same label) is saved already: no conflict,
        // and no second line.
        let lines = std::fs::read_to_string(labels_path(&cell)).unwrap();
        for stale in [&v0, &v1] {
            assert_eq!(
                save_label(&cell, &label(1, "c"), Some(stale)).unwrap(),
                SaveOutcome::Saved
            );
        }
        assert_eq!(std::fs::read_to_string(labels_path(&cell)).unwrap(), lines);

        // The run took the batch: nothing is written.
        std::fs::remove_file(pending_path(&cell)).unwrap();
        let before = std::fs::read(labels_path(&cell)).unwrap();
        assert_eq!(
            save_label(&cell, &label(1, "d"), None).unwrap(),
            SaveOutcome::BatchGone
        );
        let err = format!("{:#}", append_label(&cell, &label(1, "d")).unwrap_err());
        assert!(err.contains("was not saved"), "{err}");
        assert_eq!(std::fs::read(labels_path(&cell)).unwrap(), before);

        // `--fresh` removed the cell: a late save does not bring its folder back.
        std::fs::remove_dir_all(&cell).unwrap();
        assert_eq!(
            save_label(&cell, &label(1, "e"), None).unwrap(),
            SaveOutcome::BatchGone
        );
        assert!(!cell.exists());
    }
}
