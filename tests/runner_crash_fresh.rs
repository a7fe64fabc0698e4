//! `--fresh` is all or nothing: aborted at any of its steps and then run again plainly, a
//! cell holds either its old results untouched or a wholly fresh run's, never a mix. The cell
//! is labelled by hand, where a mix shows most: labels a person typed for the old run, left
//! in `annotation/labels.jsonl`, would be taken by the rerun instead of asking again.
mod support;

use atgen_lab::labeller::human::{read_labels, read_pending, save_label, SaveOutcome, SavedLabel};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::crash_runs::{crash, crash_experiment, json_lines, run, run_args, Snapshot};
use support::tiny_run::TinyExperiment;

/// One cell (random, three iterations of two labels) labelled by hand.
fn experiment(dir: &Path) -> PathBuf {
    TinyExperiment {
        tables: "[labeller]\nkind = \"human\"\n",
        ..crash_experiment()
    }
    .write(dir)
}

const CELL: &str = "random/seed-0";

fn cell(dir: &Path) -> PathBuf {
    dir.join("results/crash").join(CELL)
}

/// A person at the annotation page who labels every waiting item that has no label yet,
/// typing `<word> subject of <id>`.
struct Person {
    stop: Arc<AtomicBool>,
    typed: Arc<Mutex<Vec<u64>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Person {
    fn start(cell: PathBuf, word: &'static str) -> Person {
        let stop = Arc::new(AtomicBool::new(false));
        let typed = Arc::new(Mutex::new(Vec::new()));
        let (stop_here, typed_here) = (stop.clone(), typed.clone());
        let thread = std::thread::spawn(move || {
            while !stop_here.load(Ordering::SeqCst) {
                if let Ok(Some(batch)) = read_pending(&cell) {
                    let saved = read_labels(&cell).unwrap_or_default();
                    for item in batch.items.iter().filter(|i| !saved.contains_key(&i.id)) {
                        let label = SavedLabel {
                            id: item.id,
                            output: format!("{word} subject of {}", item.id),
                            seconds: 1.0,
                        };
                        if matches!(
                            save_label(&cell, &label, Some("none")),
                            Ok(SaveOutcome::Saved)
                        ) {
                            typed_here.lock().unwrap().push(item.id);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Person {
            stop,
            typed,
            thread,
        }
    }

    /// Stops typing; how many labels were typed.
    fn leave(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        let typed = self.typed.lock().unwrap().len();
        typed
    }
}

/// `lab run` to its end with a person typing `word` labels; how many they typed.
fn run_with_person(exp: &Path, dir: &Path, word: &'static str) -> usize {
    let person = Person::start(cell(dir), word);
    let result = run(&run_args(exp), &[]);
    let typed = person.leave();
    result.unwrap();
    typed
}

/// The cell's files, by path relative to the cell folder.
fn cell_files(results: &Snapshot) -> Vec<(String, Vec<u8>)> {
    let prefix = format!("{CELL}/");
    results
        .files
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_string(), v.clone())))
        .collect()
}

/// The label texts the cell's state.json records and its labels.jsonl holds.
fn label_texts(results: &Snapshot) -> Vec<String> {
    let state: serde_json::Value =
        serde_json::from_str(&results.text(&format!("{CELL}/state.json")).unwrap()).unwrap();
    let saved = results
        .text(&format!("{CELL}/annotation/labels.jsonl"))
        .unwrap_or_default();
    let mut texts: Vec<String> = state["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.to_string())
        .collect();
    texts.extend(json_lines(&saved).iter().map(|l| l.to_string()));
    texts
}

/// Empty when `now` is `old` untouched or a whole fresh run (the person typed all six labels
/// again, every label the cell records or holds is a new one, no trash is left); else what
/// is mixed.
fn mix(old: &Snapshot, now: &Snapshot, typed_again: usize, dir: &Path) -> Vec<String> {
    if cell_files(now) == cell_files(old) {
        return Vec::new();
    }
    let mut problems = Vec::new();
    if typed_again != 6 {
        problems.push(format!(
            "the rerun asked for {typed_again} labels, not the 6 of a fresh run"
        ));
    }
    let stale: Vec<String> = label_texts(now)
        .into_iter()
        .filter(|t| !t.contains("new subject of"))
        .collect();
    if !stale.is_empty() {
        problems.push(format!("labels of the old run kept: {stale:?}"));
    }
    let left: Vec<String> = std::fs::read_dir(cell(dir).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("trash"))
        .collect();
    if !left.is_empty() {
        problems.push(format!("trash left beside the cell: {left:?}"));
    }
    problems
}

#[test]
fn a_fresh_run_aborted_at_any_step_leaves_the_old_results_or_a_fresh_run() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    assert_eq!(run_with_person(&exp, dir.path(), "old"), 6);
    let old = Snapshot::take(dir.path(), "crash");
    let fresh = ["run", exp.to_str().unwrap(), "--fresh"];
    let mut failures = Vec::new();
    // The cell moved aside; the trash deleted (the resume that follows); the new
    // configuration written, nothing run.
    for point in ["fresh-cell-moved", "resume-trimmed", "config-written"] {
        std::fs::remove_dir_all(dir.path().join("results")).unwrap();
        old.restore(dir.path(), "crash");
        crash(&fresh, point, &[]);
        let typed_again = run_with_person(&exp, dir.path(), "new");
        let now = Snapshot::take(dir.path(), "crash");
        let problems = mix(&old, &now, typed_again, dir.path());
        if !problems.is_empty() {
            failures.push(format!("{point}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
