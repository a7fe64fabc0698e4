//! The table `lab bench` prints: where each (experiment, strategy, seed) cell stands.
use crate::runner::curve::Curve;
use crate::runner::persist::{load_state, CellPaths};
use std::path::Path;

/// What a batch plans to run for one experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedExperiment {
    pub name: String,
    pub strategies: Vec<String>,
    pub seeds: Vec<u64>,
    /// Evaluated iterations per cell when bounded by an iteration count
    /// (`StoppingCriteria::planned_iterations`).
    pub planned_iterations: Option<usize>,
}

impl From<&crate::config::Experiment> for PlannedExperiment {
    fn from(exp: &crate::config::Experiment) -> Self {
        PlannedExperiment {
            name: exp.name.clone(),
            strategies: exp.strategies.iter().map(|s| s.key().to_string()).collect(),
            seeds: exp.seeds.clone(),
            planned_iterations: exp.al.iterations.map(|n| n + 1),
        }
    }
}

/// One aligned text table, a row per cell: iterations done / planned, labeled count, the
/// first metric of the last curve row, and the state (not started, resumable, finished and
/// why, or unreadable with the reason).
pub fn status_table(results_dir: &Path, experiments: &[PlannedExperiment]) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "experiment".into(),
        "strategy".into(),
        "seed".into(),
        "iterations".into(),
        "labeled".into(),
        "last metric".into(),
        "state".into(),
    ]];
    for exp in experiments {
        for strategy in &exp.strategies {
            for &seed in &exp.seeds {
                let paths = CellPaths::new(results_dir, &exp.name, strategy, seed);
                let [done, labeled, metric, state] = cell_status(&paths);
                let planned = exp
                    .planned_iterations
                    .map_or_else(|| "?".to_string(), |p| p.to_string());
                rows.push([
                    exp.name.clone(),
                    strategy.clone(),
                    seed.to_string(),
                    format!("{done}/{planned}"),
                    labeled,
                    metric,
                    state,
                ]);
            }
        }
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// [iterations done, labeled, last metric, state] of one cell.
fn cell_status(paths: &CellPaths) -> [String; 4] {
    let state = match load_state(paths) {
        Ok(s) => s,
        Err(e) => {
            let reason = format!("{e:#}");
            return [
                "?".into(),
                "?".into(),
                "".into(),
                format!("unreadable: {reason}"),
            ];
        }
    };
    let Some(state) = state else {
        return ["0".into(), "0".into(), "".into(), "not started".into()];
    };
    let metric = Curve::read(&paths.curve())
        .ok()
        .and_then(|c| {
            let row = c
                .rows
                .iter()
                .rfind(|r| r.iteration < state.iterations_done)?;
            let name = c.metrics.first()?;
            Some(format!("{name} {:.4}", row.metrics[0]))
        })
        .unwrap_or_default();
    let label = if state.finished {
        match &state.stop_reason {
            Some(r) => format!("finished: {r}"),
            None => "finished".into(),
        }
    } else {
        "resumable".into()
    };
    [
        state.iterations_done.to_string(),
        state.labeled_ids.len().to_string(),
        metric,
        label,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::curve::CurveRow;
    use crate::runner::persist::{append_iteration, write_state, IterationRecord, SelectedLine};
    use crate::runner::state::CellState;
    use crate::runner::stopping::StopReason;
    use rand::SeedableRng;

    fn run_cell(results: &Path, strategy: &str, seed: u64, iterations: usize, finish: bool) {
        let paths = CellPaths::new(results, "exp", strategy, seed);
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut st = CellState::new("exp", strategy, seed, &rng);
        let metrics = vec!["rouge1".to_string()];
        for t in 0..iterations {
            let ids: Vec<u64> = (0..10).map(|i| (t * 10 + i) as u64).collect();
            st.labeled_ids.extend(&ids);
            st.iterations_done = t + 1;
            let row = CurveRow {
                iteration: t,
                labeled: st.labeled_ids.len(),
                cost: 0.0,
                tokens: 0,
                seconds: 1.0,
                metrics: vec![0.1 + 0.05 * t as f64],
            };
            let sel = SelectedLine::new(t, ids, None);
            let rec = IterationRecord {
                curve_row: &row,
                selected: &sel,
                generations: &[],
            };
            append_iteration(&paths, &metrics, &rec, &st).unwrap();
        }
        if finish {
            st.finished = true;
            st.stop_reason = Some(StopReason::Iterations { done: iterations });
            write_state(&paths, &st).unwrap();
        }
    }

    #[test]
    fn lists_every_cell_with_its_state() {
        let tmp = tempfile::tempdir().unwrap();
        run_cell(tmp.path(), "random", 0, 3, true);
        run_cell(tmp.path(), "huds", 0, 2, false);
        let damaged = CellPaths::new(tmp.path(), "exp", "huds", 1);
        std::fs::create_dir_all(&damaged.dir).unwrap();
        std::fs::write(damaged.state(), "{").unwrap();
        let plan = [PlannedExperiment {
            name: "exp".into(),
            strategies: vec!["random".into(), "huds".into()],
            seeds: vec![0, 1],
            planned_iterations: Some(3),
        }];
        let table = status_table(tmp.path(), &plan);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[0].starts_with("experiment  strategy  seed  iterations"));
        let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            cols(lines[1])[..8],
            [
                "exp",
                "random",
                "0",
                "3/3",
                "30",
                "rouge1",
                "0.2000",
                "finished:"
            ]
        );
        assert_eq!(cols(lines[2])[..3], ["exp", "random", "1"]);
        assert!(lines[2].contains("0/3") && lines[2].ends_with("not started"));
        assert_eq!(
            cols(lines[3]),
            [
                "exp",
                "huds",
                "0",
                "2/3",
                "20",
                "rouge1",
                "0.1500",
                "resumable"
            ]
        );
        assert!(
            lines[4].contains("unreadable") && lines[4].contains("--fresh"),
            "{table}"
        );
    }

    #[test]
    fn plan_and_cell_paths_come_from_the_experiment_file() {
        use crate::runner::stopping::StoppingCriteria;
        let exp = crate::config::load_experiment(Path::new("experiments/quickstart.toml")).unwrap();
        let plan = PlannedExperiment::from(&exp);
        assert_eq!(plan.name, "quickstart");
        assert_eq!(plan.seeds, exp.seeds);
        assert_eq!(plan.strategies.len(), exp.strategies.len());
        let stop = StoppingCriteria::from(&exp.al);
        assert_eq!(plan.planned_iterations, stop.planned_iterations());
        assert!(!stop.is_empty());

        let paths = CellPaths::for_cell(&exp, exp.strategies[1].key(), 1);
        assert!(paths
            .dir
            .ends_with(format!("quickstart/{}/seed-1", exp.strategies[1].key())));
    }
}
