//! Where one (strategy, seed) cell stands, read from its files, and how the pages say it.
use crate::labeller::human;
use crate::runner::curve::Curve;
use crate::runner::persist::{load_state, CellPaths};
use std::path::{Path, PathBuf};

/// Where one (strategy, seed) cell stands, read from its files.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CellProgress {
    pub strategy: String,
    pub seed: u64,
    pub dir: PathBuf,
    pub iterations_done: usize,
    /// Evaluations the configuration asks for (the initial set's, then one per iteration),
    /// when bounded by a count.
    pub planned: Option<usize>,
    pub labeled: usize,
    pub finished: bool,
    pub stop_reason: Option<String>,
    /// The last curve row's metrics.
    pub last_metrics: Vec<(String, f64)>,
    /// A batch waiting for a person: (items labeled so far, items in the batch), while some
    /// item has no label.
    pub waiting: Option<(usize, usize)>,
    /// Why the cell's files could not be read.
    pub problem: Option<String>,
    /// Unfinished, and no `lab run` works on it (the run was stopped or failed).
    pub stopped: bool,
}

impl CellProgress {
    pub fn read(dir: &Path, strategy: &str, seed: u64) -> Self {
        let mut p = CellProgress {
            strategy: strategy.to_string(),
            seed,
            dir: dir.to_path_buf(),
            ..Default::default()
        };
        let paths = CellPaths {
            dir: dir.to_path_buf(),
        };
        if let Ok(text) = std::fs::read_to_string(paths.config()) {
            if let Ok(exp) = crate::config::parse_experiment(&text, &paths.config()) {
                p.planned = exp.al.iterations.map(|n| n + 1);
            }
        }
        match load_state(&paths) {
            Ok(Some(state)) => {
                p.iterations_done = state.iterations_done;
                p.labeled = state.labeled_ids.len();
                p.finished = state.finished;
                p.stop_reason = state.stop_reason.map(|r| r.to_string());
                p.stopped =
                    !state.finished && crate::runner::persist::run_holds_cell(dir) == Some(false);
            }
            Ok(None) => {}
            Err(e) => p.problem = Some(format!("{e:#}")),
        }
        if let Ok(curve) = Curve::read(&paths.curve()) {
            if let Some(row) = curve.rows.last() {
                p.last_metrics = curve
                    .metrics
                    .iter()
                    .cloned()
                    .zip(row.metrics.clone())
                    .collect();
            }
        }
        if let Ok(Some(batch)) = human::read_pending(dir) {
            // A labels file that does not read would otherwise show as "0 labelled": say why.
            let saved = match human::read_labels(dir) {
                Ok(saved) => saved,
                Err(e) => {
                    p.problem = Some(format!("{e:#}"));
                    return p;
                }
            };
            let done = batch.labelled_count(&saved);
            // A fully labeled batch is the run's to pick up, not the person's.
            if done < batch.items.len() {
                p.waiting = Some((done, batch.items.len()));
            }
        }
        p
    }

    /// How far the cell got, in the launch form's words: "Iterations" counts the queries
    /// after the initial set, so `iterations = 1` is two evaluations, shown as
    /// `initial set + 1 of 1 iteration` when done (it read `2/2` under "iterations").
    pub fn progress_text(&self) -> String {
        let of = |n: usize| format!("{n} iteration{}", if n == 1 { "" } else { "s" });
        let queries = self.planned.map(|p| p.saturating_sub(1));
        match (self.iterations_done, queries) {
            (0, Some(n)) => format!("initial set pending; 0 of {}", of(n)),
            (0, None) => "initial set pending".into(),
            (done, Some(n)) => format!("initial set + {} of {}", done - 1, of(n)),
            (done, None) => format!("initial set + {}", of(done - 1)),
        }
    }

    pub fn state_text(&self) -> String {
        if let Some(problem) = &self.problem {
            return format!("unreadable: {problem}");
        }
        if let Some((done, total)) = self.waiting {
            return format!("waiting for labels ({done} / {total})");
        }
        match (&self.stop_reason, self.finished) {
            (Some(r), _) => format!("finished: {r}"),
            (None, true) => "finished".into(),
            (None, false) if self.stopped => format!(
                "stopped {}; `lab run` on its experiment file resumes it",
                match self.iterations_done {
                    0 => "before the initial set was evaluated".to_string(),
                    done => format!("after {}", evaluated(done)),
                }
            ),
            (None, false) if self.iterations_done == 0 => "starting".into(),
            (None, false) => "running".into(),
        }
    }
}

/// `done` evaluations as the initial set and the iterations after it.
fn evaluated(done: usize) -> String {
    match done {
        0 => "nothing".into(),
        1 => "the initial set".into(),
        2 => "the initial set and 1 iteration".into(),
        n => format!("the initial set and {} iterations", n - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::results::cells_of;

    #[test]
    fn cell_progress_reads_pending_batches() {
        let dir = tempfile::tempdir().unwrap();
        let cell = dir.path().join("exp/random/seed-3");
        std::fs::create_dir_all(human::annotation_dir(&cell)).unwrap();
        let batch = human::PendingBatch {
            items: (1..=4)
                .map(|id| human::PendingItem {
                    id,
                    input: format!("in {id}"),
                    system_prompt: String::new(),
                    guess: String::new(),
                })
                .collect(),
        };
        std::fs::write(
            human::pending_path(&cell),
            serde_json::to_string(&batch).unwrap(),
        )
        .unwrap();
        human::append_label(
            &cell,
            &human::SavedLabel {
                id: 2,
                output: "x".into(),
                seconds: 1.0,
            },
        )
        .unwrap();
        let cells = cells_of(&dir.path().join("exp"));
        assert_eq!(cells.len(), 1);
        assert_eq!((cells[0].strategy.as_str(), cells[0].seed), ("random", 3));
        assert_eq!(cells[0].waiting, Some((1, 4)));
        assert_eq!(cells[0].state_text(), "waiting for labels (1 / 4)");

        // A hand-edited line that no longer reads is shown, not counted as unlabelled.
        let labels = human::labels_path(&cell);
        let mut text = std::fs::read_to_string(&labels).unwrap();
        text.push_str("{\"id\": \"three\"}\n");
        std::fs::write(&labels, text).unwrap();
        let cells = cells_of(&dir.path().join("exp"));
        let shown = cells[0].state_text();
        assert!(shown.starts_with("unreadable: "), "{shown}");
        assert!(shown.contains("line 2"), "{shown}");
    }

    /// One stopped cell read "after 1 iteration(s)"; and a cell that had evaluated only its
    /// initial set read "stopped after 1 iteration", counting the initial set as one.
    #[test]
    fn a_stopped_cell_counts_the_initial_set_and_its_iterations_in_words() {
        let stopped_after = |done| {
            CellProgress {
                iterations_done: done,
                stopped: true,
                ..CellProgress::default()
            }
            .state_text()
        };
        let resumes = "; `lab run` on its experiment file resumes it";
        assert_eq!(
            stopped_after(0),
            format!("stopped before the initial set was evaluated{resumes}")
        );
        assert_eq!(
            stopped_after(1),
            format!("stopped after the initial set{resumes}")
        );
        assert_eq!(
            stopped_after(2),
            format!("stopped after the initial set and 1 iteration{resumes}")
        );
        assert_eq!(
            stopped_after(4),
            format!("stopped after the initial set and 3 iterations{resumes}")
        );
    }

    /// `iterations = 1` on the launch form showed `2/2` under "iterations": the initial set's
    /// evaluation counted as an iteration.
    #[test]
    fn progress_counts_iterations_as_the_launch_form_does() {
        let progress = |done, planned| {
            CellProgress {
                iterations_done: done,
                planned,
                ..CellProgress::default()
            }
            .progress_text()
        };
        // `al.iterations = 1`: two evaluations planned.
        assert_eq!(
            progress(0, Some(2)),
            "initial set pending; 0 of 1 iteration"
        );
        assert_eq!(progress(1, Some(2)), "initial set + 0 of 1 iteration");
        assert_eq!(progress(2, Some(2)), "initial set + 1 of 1 iteration");
        assert_eq!(progress(3, Some(4)), "initial set + 2 of 3 iterations");
        // Bounded by budgets only: no count to reach.
        assert_eq!(progress(0, None), "initial set pending");
        assert_eq!(progress(2, None), "initial set + 1 iteration");
        assert_eq!(progress(3, None), "initial set + 2 iterations");
    }

    /// An unfinished cell no run holds is shown as stopped; while `lab run` holds its lock,
    /// as running (and the probe does not make that run's lock fail).
    #[test]
    fn an_unfinished_cell_no_run_holds_is_stopped() {
        use crate::runner::persist::{lock_cell, write_state};
        use rand::SeedableRng;
        let dir = tempfile::tempdir().unwrap();
        let paths = CellPaths::new(dir.path(), "exp", "random", 0);
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut state = crate::runner::state::CellState::new("exp", "random", 0, &rng);
        state.iterations_done = 2;
        std::fs::create_dir_all(&paths.dir).unwrap();
        write_state(&paths, &state).unwrap();
        let shown = || cells_of(&dir.path().join("exp"))[0].state_text();
        assert_eq!(
            shown(),
            "stopped after the initial set and 1 iteration; `lab run` on its experiment file \
             resumes it"
        );
        let lock = lock_cell(&paths).unwrap();
        assert_eq!(shown(), "running");
        drop(lock);
        // A probe in flight while a run starts: the run waits it out.
        let probing = std::thread::spawn({
            let dir = paths.dir.clone();
            move || {
                for _ in 0..200 {
                    crate::runner::persist::run_holds_cell(&dir);
                }
            }
        });
        for _ in 0..20 {
            drop(lock_cell(&paths).expect("a probe must not refuse the run"));
        }
        probing.join().unwrap();
    }
}
