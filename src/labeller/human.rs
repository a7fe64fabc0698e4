//! The human labeller: a person labels each queried batch in the web app (`lab serve`).
//!
//! The protocol is two files in `<cell dir>/annotation/`, so either process may crash without
//! losing a saved label:
//! - `pending.json` ([`PendingBatch`]), written atomically by the run when a batch needs labels;
//! - `labels.jsonl` ([`SavedLabel`] per line), appended and fsynced by the web app per label.
//!
//! The run polls `labels.jsonl` until every pending id has a non-empty label (the latest line
//! per id wins, so going back and relabelling works), then removes `pending.json`. Every line
//! stays: an item's annotation time is the sum over all its saves, and its edits are the saves
//! after the first ([`ItemLabel`]).
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

impl PendingBatch {
    /// How many of the batch's items have a label with text among `saved`.
    pub fn labelled_count(&self, saved: &HashMap<u64, ItemLabel>) -> usize {
        self.items
            .iter()
            .filter(|i| saved.get(&i.id).is_some_and(ItemLabel::has_text))
            .count()
    }
}

/// One line of `labels.jsonl`: one save of one item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedLabel {
    pub id: u64,
    pub output: String,
    /// Seconds the person spent on this item before this save (since the page showed it).
    pub seconds: f64,
}

/// An item's label after all its saves: the latest text, and what labelling it cost in all.
/// A researcher measuring annotation cost wants the time of the first label and of every
/// change to it, not only the last change's.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemLabel {
    pub id: u64,
    /// The latest save's text.
    pub output: String,
    /// Seconds summed over every save of the item.
    pub seconds: f64,
    /// Saves after the first: how many times the person changed the label.
    pub edits: u32,
}

impl ItemLabel {
    /// A blank save keeps an item waiting: only a label with text labels it.
    pub fn has_text(&self) -> bool {
        !self.output.trim().is_empty()
    }

    fn first(line: SavedLabel) -> Self {
        ItemLabel {
            id: line.id,
            output: line.output,
            seconds: line.seconds,
            edits: 0,
        }
    }

    fn add(&mut self, line: SavedLabel) {
        self.output = line.output;
        self.seconds += line.seconds;
        self.edits = self.edits.saturating_add(1);
    }
}

/// Fold one saved line into the labels read so far.
fn record(labels: &mut HashMap<u64, ItemLabel>, line: SavedLabel) {
    match labels.get_mut(&line.id) {
        Some(item) => item.add(line),
        None => {
            labels.insert(line.id, ItemLabel::first(line));
        }
    }
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

/// Every item's label: the latest text per id, with the time and edits of all its saves. The last line without its newline is an append
/// still being written (or cut short by a crash): it counts only once it reads in full, else
/// that one label is asked for again. Any complete line that does not read (not UTF-8, not a
/// label) is an error naming the file and line: skipping it would lose a person's work.
pub fn read_labels(cell_dir: &Path) -> Result<HashMap<u64, ItemLabel>> {
    let path = labels_path(cell_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    parse_labels(&bytes, &path)
}

fn parse_labels(bytes: &[u8], path: &Path) -> Result<HashMap<u64, ItemLabel>> {
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
            Ok(label) => record(&mut labels, label),
            Err(e) => bail!(
                "{} line {}: not a saved label ({e}); {fix}",
                path.display(),
                n + 1
            ),
        }
    }
    if let Some(label) = whole_label(tail) {
        record(&mut labels, label);
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
pub fn label_version(saved: Option<&ItemLabel>) -> String {
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
    Changed(Option<ItemLabel>),
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
        let complete = |saved: &HashMap<u64, ItemLabel>| -> Option<Vec<Label>> {
            items
                .iter()
                .map(|e| {
                    saved.get(&e.id).filter(|l| l.has_text()).map(|l| Label {
                        id: e.id,
                        output: l.output.clone(),
                        cost: 0.0,
                        input_tokens: 0,
                        output_tokens: 0,
                        seconds: l.seconds,
                        edits: l.edits,
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
#[path = "human_tests.rs"]
mod tests;
