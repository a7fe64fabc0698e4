//! Progress of one cell: a bar for its iterations and one for the current step (training
//! steps, generated rows) with ETA, then one final line with the score and the time taken.
//! Everything is hidden under `LAB_QUIET`.
use crate::runner::stopping::StopReason;
use crate::util::progress::bar;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use std::time::{Duration, Instant};

pub struct CellProgress {
    multi: MultiProgress,
    cell: ProgressBar,
    step: ProgressBar,
    name: String,
    started: Instant,
    quiet: bool,
}

impl CellProgress {
    /// `name` is the cell (`experiment/strategy/seed-n`); `planned` evaluated iterations when
    /// known; `done` those finished before (a resumed cell).
    pub fn new(name: &str, planned: Option<usize>, done: usize) -> Self {
        let quiet = std::env::var_os("LAB_QUIET").is_some();
        let multi = if quiet {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        } else {
            MultiProgress::new()
        };
        let cell = multi.add(bar(planned.unwrap_or(done + 1) as u64, "iterations"));
        cell.set_position(done as u64);
        cell.set_message(name.to_string());
        let step = multi.add(bar(0, "step"));
        CellProgress {
            multi,
            cell,
            step,
            name: name.to_string(),
            started: Instant::now(),
            quiet,
        }
    }

    /// Start a step of `len` units, e.g. `("train", steps)` or `("eval", rows)`.
    pub fn start_step(&self, what: &str, len: usize) {
        self.step.reset();
        self.step.set_length(len as u64);
        self.step.set_position(0);
        self.step.set_prefix(what.to_string());
        // The previous step's message (the training loss) would stay beside this one.
        self.step.set_message("");
    }

    /// The step bar, for loops that drive a bar themselves (the training loop).
    pub fn step_bar(&self) -> &ProgressBar {
        &self.step
    }

    pub fn advance_step(&self, units: usize) {
        self.step.inc(units as u64);
    }

    /// An iteration finished with `labeled` examples and, if evaluated, its headline score.
    pub fn finish_iteration(&self, labeled: usize, score: Option<(&str, f64)>) {
        if self
            .cell
            .length()
            .is_some_and(|len| self.cell.position() >= len)
        {
            // No planned count (budget or performance criteria only): grow as we go.
            self.cell.inc_length(1);
        }
        self.cell.inc(1);
        let mut msg = format!("{} · {labeled} labeled", self.name);
        if let Some((metric, value)) = score {
            msg.push_str(&format!(" · {metric} {value:.4}"));
        }
        self.cell.set_message(msg);
    }

    /// A line above the bars (asked-for output such as `--profile` rows: printed even when
    /// quiet).
    pub fn println(&self, line: &str) {
        if self.quiet || self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            self.multi.suspend(|| eprintln!("{line}"));
        }
    }

    /// Clear the bars and print the cell's final line (unless quiet); returns the line.
    pub fn finish(
        self,
        iterations: usize,
        labeled: usize,
        score: Option<(&str, f64)>,
        stop: Option<&StopReason>,
    ) -> String {
        self.step.finish_and_clear();
        self.cell.finish_and_clear();
        let _ = self.multi.clear();
        let line = final_line(
            &self.name,
            iterations,
            labeled,
            score,
            self.started.elapsed(),
            stop,
        );
        if !self.quiet {
            eprintln!("{line}");
        }
        line
    }
}

/// `exp/huds/seed-0: rouge1 0.3120 · iterations 0–4 · 50 labeled · 3m 12s · label budget reached (50/50)`
pub fn final_line(
    name: &str,
    iterations: usize,
    labeled: usize,
    score: Option<(&str, f64)>,
    elapsed: Duration,
    stop: Option<&StopReason>,
) -> String {
    let mut parts = Vec::new();
    if let Some((metric, value)) = score {
        parts.push(format!("{metric} {value:.4}"));
    }
    parts.push(iteration_span(iterations));
    parts.push(format!("{labeled} labeled"));
    parts.push(format_duration(elapsed));
    if let Some(reason) = stop {
        parts.push(reason.to_string());
    }
    format!("{name}: {}", parts.join(" · "))
}

/// The iterations a cell evaluated: iteration 0 trains on the initial set, and
/// `al.iterations` counts the queries after it, so `iterations = 3` shows `iterations 0–3`.
pub fn iteration_span(done: usize) -> String {
    match done {
        0 => "no iterations".to_string(),
        1 => "iteration 0".to_string(),
        n => format!("iterations 0–{}", n - 1),
    }
}

/// `45s`, `3m 12s`, `2h 05m`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_line_has_score_counts_time_and_reason() {
        let line = final_line(
            "exp/huds/seed-0",
            5,
            50,
            Some(("rouge1", 0.31204)),
            Duration::from_secs(192),
            Some(&StopReason::LabelBudget {
                labeled: 50,
                budget: 50,
            }),
        );
        assert_eq!(
            line,
            "exp/huds/seed-0: rouge1 0.3120 · iterations 0–4 · 50 labeled · 3m 12s · \
             label budget reached (50/50)"
        );
        let line = final_line("c", 1, 10, None, Duration::from_millis(2500), None);
        assert_eq!(line, "c: iteration 0 · 10 labeled · 2.5s");
        assert_eq!(format_duration(Duration::from_secs(7500)), "2h 05m");
    }

    #[test]
    fn bars_track_iterations_and_steps() {
        std::env::set_var("LAB_QUIET", "1");
        let p = CellProgress::new("exp/random/seed-1", Some(4), 1);
        assert_eq!(p.cell.position(), 1);
        p.start_step("train", 30);
        p.advance_step(10);
        p.advance_step(5);
        assert_eq!((p.step.position(), p.step.length()), (15, Some(30)));
        p.finish_iteration(20, Some(("rouge1", 0.2)));
        assert_eq!(p.cell.position(), 2);
        p.start_step("eval", 100);
        assert_eq!(p.step.position(), 0);

        // Without a planned count the bar grows with each iteration.
        let open = CellProgress::new("exp/random/seed-2", None, 0);
        for _ in 0..3 {
            open.finish_iteration(10, None);
        }
        assert_eq!(open.cell.position(), 3);
        assert!(open.cell.length().unwrap() >= 3);
        let line = open.finish(3, 30, None, Some(&StopReason::PoolExhausted));
        assert!(line.ends_with("pool exhausted"), "{line}");
    }
}
