//! `--profile`: wall-clock seconds per phase of the AL loop, one row per iteration of every
//! cell, and the totals. The query step is split into the host primitives it called (pool
//! generation, scoring, embeddings) and the rest (the script with its native kernels), so the
//! table says which of them to cut.
use crate::strategy::SelectTiming;
use std::sync::Mutex;

/// Where one iteration's time went, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IterationTimes {
    pub training: f64,
    pub generation: f64,
    pub scoring: f64,
    pub embeddings: f64,
    pub script: f64,
    pub evaluation: f64,
    pub labelling: f64,
    /// Model reload, adapter saving, writing results: the loop's own overhead.
    pub other: f64,
}

const PHASES: [&str; 8] = [
    "training",
    "generation",
    "scoring",
    "embeddings",
    "script",
    "evaluation",
    "labelling",
    "other",
];

impl IterationTimes {
    /// Splits a query step's wall time into host primitives and script; `wall` is the whole
    /// selection phase as the loop measured it (merging weights included).
    pub fn add_selection(&mut self, timing: &SelectTiming, wall: f64) {
        self.generation += timing.generation_s;
        self.scoring += timing.scoring_s;
        self.embeddings += timing.embedding_s;
        self.script += (wall - timing.host_s).max(0.0);
    }

    fn values(&self) -> [f64; 8] {
        [
            self.training,
            self.generation,
            self.scoring,
            self.embeddings,
            self.script,
            self.evaluation,
            self.labelling,
            self.other,
        ]
    }

    pub fn total(&self) -> f64 {
        self.values().iter().sum()
    }
}

struct Row {
    cell: String,
    iteration: usize,
    labeled: usize,
    times: IterationTimes,
}

#[derive(Default)]
pub struct Profile {
    rows: Mutex<Vec<Row>>,
}

impl Profile {
    /// Records one finished iteration and returns its line for the log.
    pub fn record(
        &self,
        cell: &str,
        iteration: usize,
        labeled: usize,
        times: IterationTimes,
    ) -> String {
        let line = format!(
            "profile {cell} iteration {iteration} ({labeled} labeled): {}",
            PHASES
                .iter()
                .zip(times.values())
                .filter(|(_, s)| *s >= 0.005)
                .map(|(p, s)| format!("{p} {s:.1}s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.rows.lock().expect("profile lock").push(Row {
            cell: cell.to_string(),
            iteration,
            labeled,
            times,
        });
        line
    }

    /// One row per iteration (seconds per phase), then the total of each phase and its share.
    pub fn table(&self) -> String {
        let rows = self.rows.lock().expect("profile lock");
        if rows.is_empty() {
            return "no iteration ran in this run (every cell was already finished; \
                    --fresh times them again)\n"
                .to_string();
        }
        let width = rows.iter().map(|r| r.cell.len()).max().unwrap_or(4).max(4);
        let mut out = format!("{:<width$} {:>4} {:>7}", "cell", "iter", "labeled");
        for p in PHASES {
            out.push_str(&format!(" {p:>10}"));
        }
        out.push_str(&format!(" {:>10}\n", "total"));
        let mut sums = [0.0; 8];
        for r in rows.iter() {
            out.push_str(&format!(
                "{:<width$} {:>4} {:>7}",
                r.cell, r.iteration, r.labeled
            ));
            for (i, v) in r.times.values().iter().enumerate() {
                sums[i] += v;
                out.push_str(&format!(" {v:>10.1}"));
            }
            out.push_str(&format!(" {:>10.1}\n", r.times.total()));
        }
        let all: f64 = sums.iter().sum();
        out.push_str(&format!("{:<width$} {:>4} {:>7}", "total", "", ""));
        for v in sums {
            out.push_str(&format!(" {v:>10.1}"));
        }
        out.push_str(&format!(" {all:>10.1}\n"));
        out.push_str(&format!("{:<width$} {:>4} {:>7}", "share", "", ""));
        for v in sums {
            out.push_str(&format!(" {:>9.1}%", 100.0 * v / all.max(1e-9)));
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_time_splits_into_primitives_and_script() {
        let mut t = IterationTimes::default();
        let timing = SelectTiming {
            total_s: 9.0,
            host_s: 7.0,
            generation_s: 5.0,
            scoring_s: 0.5,
            embedding_s: 1.5,
            kernel_s: 1.0,
        };
        t.add_selection(&timing, 10.0);
        assert_eq!((t.generation, t.scoring, t.embeddings), (5.0, 0.5, 1.5));
        assert!((t.script - 3.0).abs() < 1e-12);
        t.training = 20.0;
        assert!((t.total() - 30.0).abs() < 1e-12);
    }

    #[test]
    fn table_has_a_row_per_iteration_and_shares_summing_to_100() {
        let p = Profile::default();
        assert!(p.table().starts_with("no iteration ran"), "{}", p.table());
        let line = p.record(
            "q/random/seed-0",
            0,
            10,
            IterationTimes {
                training: 30.0,
                evaluation: 10.0,
                ..Default::default()
            },
        );
        assert_eq!(
            line,
            "profile q/random/seed-0 iteration 0 (10 labeled): training 30.0s, evaluation 10.0s"
        );
        p.record(
            "q/random/seed-0",
            1,
            20,
            IterationTimes {
                training: 50.0,
                evaluation: 10.0,
                ..Default::default()
            },
        );
        let table = p.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(
            lines[3].starts_with("total")
                && lines[3].contains("80.0")
                && lines[3].contains("100.0")
        );
        assert!(
            lines[4].contains("80.0%") && lines[4].contains("20.0%"),
            "{table}"
        );
    }
}
