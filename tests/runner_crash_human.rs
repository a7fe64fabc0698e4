//! Crash consistency of a cell labelled by hand (`labeller.kind = "human"`): the run asks
//! through `annotation/pending.json` and a person's saves land in `annotation/labels.jsonl`,
//! appended as `lab serve`'s page appends them. A run aborted at a crash point or killed
//! while it waits, and run again, must end with what an uninterrupted run writes, every
//! label the person saved kept and none asked for twice.
mod support;

use atgen_lab::labeller::human::{read_labels, read_pending, save_label, SavedLabel};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::crash_runs::{
    assert_each_point, crash, crash_experiment, differences, run, run_args, Snapshot,
};
use support::tiny_run::{spawn_lab, TinyExperiment};

/// One cell (random, three iterations of two labels) labelled by hand.
fn experiment(dir: &Path) -> PathBuf {
    TinyExperiment {
        tables: "[labeller]\nkind = \"human\"\n",
        ..crash_experiment()
    }
    .write(dir)
}

fn cell(dir: &Path) -> PathBuf {
    dir.join("results/crash/random/seed-0")
}

/// What the person types for item `id`.
fn typed(id: u64) -> String {
    format!("subject of {id}")
}

/// A person at the annotation page: labels each item of the waiting batch that has no label
/// yet, at most `budget` labels in all, and notes every label typed.
struct Person {
    stop: Arc<AtomicBool>,
    typed: Arc<Mutex<Vec<u64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Person {
    fn start(cell: PathBuf, budget: usize) -> Person {
        let stop = Arc::new(AtomicBool::new(false));
        let typed_ids = Arc::new(Mutex::new(Vec::new()));
        let (stop_here, typed_here) = (stop.clone(), typed_ids.clone());
        let thread = std::thread::spawn(move || {
            while !stop_here.load(Ordering::SeqCst) {
                if let Ok(Some(batch)) = read_pending(&cell) {
                    let saved = read_labels(&cell).unwrap();
                    for item in batch.items {
                        let mut typed_ids = typed_here.lock().unwrap();
                        if saved.contains_key(&item.id) || typed_ids.len() >= budget {
                            continue;
                        }
                        let label = SavedLabel {
                            id: item.id,
                            output: typed(item.id),
                            seconds: 2.0,
                        };
                        // Refused (nothing written) when the batch is gone meanwhile.
                        if save_label(&cell, &label, Some("none")).unwrap()
                            == atgen_lab::labeller::human::SaveOutcome::Saved
                        {
                            typed_ids.push(item.id);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Person {
            stop,
            typed: typed_ids,
            thread: Some(thread),
        }
    }

    fn typed(&self) -> Vec<u64> {
        self.typed.lock().unwrap().clone()
    }

    /// Stops typing; the labels typed, in order.
    fn leave(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        self.typed()
    }
}

/// `lab run` with a person labelling at the page; the labels typed.
fn run_with_person(exp: &Path, dir: &Path) -> Result<Vec<u64>, String> {
    let person = Person::start(cell(dir), usize::MAX);
    let result = run(&run_args(exp), &[]);
    let typed = person.leave();
    result.map(|()| typed)
}

/// The lines of labels.jsonl, sorted.
fn saved_lines(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(cell(dir).join("annotation/labels.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// The uninterrupted run, once for every test: its results and the labels typed.
fn uninterrupted() -> &'static (Snapshot, Vec<u64>, Vec<String>) {
    static WHOLE: OnceLock<(Snapshot, Vec<u64>, Vec<String>)> = OnceLock::new();
    WHOLE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let exp = experiment(dir.path());
        let typed = run_with_person(&exp, dir.path()).unwrap();
        assert_eq!(typed.len(), 6, "three batches of two: {typed:?}");
        (
            Snapshot::take(dir.path(), "crash"),
            typed,
            saved_lines(dir.path()),
        )
    })
}

/// How the results in `dir`, after the person typed `typed` over all runs, differ from the
/// uninterrupted run's.
fn problems(dir: &Path, typed: &[u64]) -> Vec<String> {
    let (whole, whole_typed, whole_lines) = uninterrupted();
    let mut problems = differences(whole, &Snapshot::take(dir, "crash"));
    let mut once = typed.to_vec();
    once.sort();
    once.dedup();
    if once.len() != typed.len() || typed.len() != whole_typed.len() {
        problems.push(format!(
            "the person typed {typed:?}; uninterrupted, {whole_typed:?}"
        ));
    }
    if saved_lines(dir) != *whole_lines {
        problems.push(format!(
            "labels.jsonl holds {:?} instead of {whole_lines:?}",
            saved_lines(dir)
        ));
    }
    problems
}

#[test]
fn a_hand_labelled_run_aborted_around_its_batches_resumes_without_asking_twice() {
    // The second batch's pending.json staged but not in place; its labels taken, nothing
    // trained; the iteration committed.
    let points = [
        "staged:pending.json:2",
        "labels-bought:2",
        "state-written:2",
    ];
    assert_each_point(&points, |point| {
        let dir = tempfile::tempdir().unwrap();
        let exp = experiment(dir.path());
        let person = Person::start(cell(dir.path()), usize::MAX);
        crash(&run_args(&exp), point, &[]);
        let mut typed = person.leave();
        match run_with_person(&exp, dir.path()) {
            Ok(more) => {
                typed.extend(more);
                problems(dir.path(), &typed)
            }
            Err(e) => vec![e],
        }
    });
}

/// Killed (SIGKILL) while the second batch waits with one of its two labels saved.
#[test]
fn a_hand_labelled_run_killed_while_a_batch_waits_keeps_the_labels_saved() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let person = Person::start(cell(dir.path()), 3);
    let mut child = spawn_lab(&run_args(&exp));
    let started = Instant::now();
    while person.typed().len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run never asked for a second batch (typed {:?})",
            person.typed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut typed = person.leave();
    assert!(
        cell(dir.path()).join("annotation/pending.json").exists(),
        "killed while the batch waited"
    );
    typed.extend(run_with_person(&exp, dir.path()).unwrap());
    let problems = problems(dir.path(), &typed);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
