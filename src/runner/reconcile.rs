//! What may change between two runs of the same cell. Settings that shape results (data,
//! model, training, metrics, this strategy's parameters) must match what the cell was started
//! with; the seed list, other strategies, the description and the stopping criteria may
//! change. Extending a stopping criterion re-opens a finished cell; tightening one closes it
//! when the cell stands on the new limit, and is refused when the cell already went past it.
use crate::config::AlConfig;
use crate::runner::curve::Curve;
use crate::runner::persist::CellPaths;
use crate::runner::state::CellState;
use crate::runner::stopping::{should_stop, Progress, StopReason, StoppingCriteria};
use anyhow::{Context, Result};
use toml::{Table, Value};

/// `[al]` keys that only decide when to stop.
const STOPPING_KEYS: [&str; 4] = [
    "iterations",
    "label_budget",
    "money_budget",
    "required_performance",
];

/// Dotted keys whose values differ between two cell configurations, ignoring what may change
/// freely. `strategy` is the cell's results key: only that `[[strategy]]` entry is compared.
pub fn result_differences(old: &str, new: &str, strategy: &str) -> Result<Vec<String>> {
    let old = comparable(old, strategy).context("the stored config.toml does not parse")?;
    let new = comparable(new, strategy).context("the new configuration does not parse")?;
    let mut diffs = Vec::new();
    differences("", &old, &new, &mut diffs);
    Ok(diffs)
}

/// True when the stopping criteria differ between two configurations.
pub fn stopping_changed(old: &str, new: &str) -> bool {
    let stopping = |text: &str| -> Option<Table> {
        let table: Table = text.parse().ok()?;
        let al = table
            .get("al")
            .and_then(Value::as_table)
            .cloned()
            .unwrap_or_default();
        Some(
            al.into_iter()
                .filter(|(k, _)| STOPPING_KEYS.contains(&k.as_str()))
                .collect(),
        )
    };
    stopping(old) != stopping(new)
}

/// Re-check a resumed cell against the stopping criteria of `config_toml`: re-open it when
/// they no longer stop it, close it when they now do. A pool that ran out stays finished, and
/// so does a cell whose labeller spent an unchanged money budget. A cell whose last query a
/// budget cut short is not re-opened (an error): a fresh run would differ there.
/// Returns whether the state changed.
pub fn restop(paths: &CellPaths, state: &mut CellState, config_toml: &str) -> Result<bool> {
    if matches!(state.stop_reason, Some(StopReason::PoolExhausted)) {
        return Ok(false);
    }
    let table: Table = config_toml
        .parse()
        .context("the cell configuration does not parse")?;
    let al: AlConfig = match table.get("al") {
        Some(v) => v
            .clone()
            .try_into()
            .context("the [al] table of the cell configuration is invalid")?,
        None => AlConfig::default(),
    };
    let criteria = StoppingCriteria::from(&al);
    let curve = Curve::read(&paths.curve()).ok();
    let last: Vec<(String, f64)> = match curve.as_ref().and_then(|c| c.rows.last()) {
        Some(row) => row_metrics(curve.as_ref().unwrap(), row),
        None => Vec::new(),
    };
    if state.iterations_done == 0 {
        return Ok(false);
    }
    if let Some(curve) = &curve {
        if let Some(why) = went_past(&criteria, curve) {
            anyhow::bail!(
                "{} went past the new stopping criteria: {why}. A fresh run would have \
                 stopped there, so its curve is not what the experiment file now describes: \
                 rerun with --fresh --strategy {} to redo it, or restore the stopping criteria",
                paths.dir.display(),
                paths.strategy_key()
            );
        }
    }
    let reason = should_stop(
        &criteria,
        &Progress {
            iterations_done: state.iterations_done,
            labeled: state.labeled_ids.len(),
            // Unknown here; an exhausted pool is caught by the loop itself.
            pool_remaining: usize::MAX,
            money_spent: state.money_spent,
            labeller_budget_reached: false,
            metrics: &last,
        },
    );
    let mut reason = reason;
    let reopening = state.finished && reason.is_none();
    if reopening {
        if let Some(StopReason::MoneyBudget { budget, .. }) = &state.stop_reason {
            // The labeller found the money spent (a request's worst case no longer fits);
            // the same budget cannot buy more, whatever else changed.
            if criteria.money_budget == Some(*budget) {
                reason = state.stop_reason.clone();
            }
        }
    }
    if state.finished && reason.is_none() && state.last_query_cut {
        anyhow::bail!(
            "{} stopped when its last query was cut short ({}); under the new stopping \
             criteria a fresh run would have labeled the whole query there, so continuing \
             would not give what a fresh run gives: rerun with --fresh --strategy {} to redo \
             it, or restore the stopping criteria",
            paths.dir.display(),
            state
                .stop_reason
                .as_ref()
                .map_or("budget reached".to_string(), |r| r.to_string()),
            paths.strategy_key()
        );
    }
    let finished = reason.is_some();
    if finished == state.finished && reason == state.stop_reason {
        return Ok(false);
    }
    state.finished = finished;
    state.stop_reason = reason;
    Ok(true)
}

fn row_metrics(curve: &Curve, row: &crate::runner::curve::CurveRow) -> Vec<(String, f64)> {
    curve
        .metrics
        .iter()
        .cloned()
        .zip(row.metrics.iter().copied())
        .collect()
}

/// Where a cell's curve goes beyond what a fresh run under `criteria` would do: a row before
/// the last at which it would have stopped, or a row with more labels or dollars than a
/// budget allows (a fresh run trims its last query to the budget).
fn went_past(criteria: &StoppingCriteria, curve: &Curve) -> Option<String> {
    let rows = &curve.rows;
    for (i, row) in rows.iter().enumerate() {
        if let Some(budget) = criteria.label_budget.filter(|b| row.labeled > *b) {
            return Some(format!(
                "iteration {} has {} labels, over al.label_budget = {budget}",
                row.iteration, row.labeled
            ));
        }
        if let Some(budget) = criteria.money_budget.filter(|b| row.cost > b + 1e-9) {
            return Some(format!(
                "iteration {} spent ${:.4}, over al.money_budget = {budget}",
                row.iteration, row.cost
            ));
        }
        if i + 1 == rows.len() {
            break;
        }
        let metrics = row_metrics(curve, row);
        let progress = Progress {
            iterations_done: i + 1,
            labeled: row.labeled,
            pool_remaining: usize::MAX,
            money_spent: row.cost,
            labeller_budget_reached: false,
            metrics: &metrics,
        };
        if let Some(reason) = should_stop(criteria, &progress) {
            return Some(format!(
                "after iteration {} ({reason}) it went on to iteration {}",
                row.iteration,
                rows.last().map_or(0, |r| r.iteration)
            ));
        }
    }
    None
}

/// The parsed configuration without what may change between runs of a cell.
fn comparable(text: &str, strategy: &str) -> Result<Table> {
    let mut table: Table = text.parse()?;
    table.remove("seeds");
    table.remove("description");
    // Where results go does not shape them: a moved or copied results folder resumes.
    table.remove("results_dir");
    if let Some(Value::Table(al)) = table.get_mut("al") {
        for key in STOPPING_KEYS {
            al.remove(key);
        }
    }
    if let Some(Value::Array(strategies)) = table.get_mut("strategy") {
        strategies.retain(|s| strategy_key(s).as_deref() == Some(strategy));
    }
    Ok(table)
}

/// The settings every cell of an experiment folder should share for its curves to be
/// compared: the configuration without the seeds, description, stopping criteria and
/// `[[strategy]]` entries.
pub fn shared_settings(text: &str) -> Result<Table> {
    let mut table = comparable(text, "")?;
    table.remove("strategy");
    Ok(table)
}

/// The `[[strategy]]` entry whose results key is `strategy`, if the configuration has one.
pub fn strategy_entry(text: &str, strategy: &str) -> Option<Table> {
    let table: Table = text.parse().ok()?;
    let entries = table.get("strategy")?.as_array()?;
    entries
        .iter()
        .find(|e| strategy_key(e).as_deref() == Some(strategy))
        .and_then(Value::as_table)
        .cloned()
}

/// Dotted keys whose values differ between two tables.
pub fn table_differences(a: &Table, b: &Table) -> Vec<String> {
    let mut diffs = Vec::new();
    differences("", a, b, &mut diffs);
    diffs
}

/// A `[[strategy]]` entry's results key: its label, or its name.
fn strategy_key(entry: &Value) -> Option<String> {
    let t = entry.as_table()?;
    t.get("label")
        .or_else(|| t.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn differences(prefix: &str, old: &Table, new: &Table, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (old.get(key), new.get(key)) {
            (Some(Value::Table(a)), Some(Value::Table(b))) => differences(&path, a, b, out),
            // The cell's own `[[strategy]]` entry (the others are dropped): name its key.
            (Some(Value::Array(a)), Some(Value::Array(b))) if path == "strategy" => {
                match (a.as_slice(), b.as_slice()) {
                    ([Value::Table(ta)], [Value::Table(tb)]) => {
                        let name = strategy_key(&a[0]).unwrap_or_default();
                        differences(&format!("strategy[{name}]"), ta, tb, out)
                    }
                    _ if a != b => out.push(path),
                    _ => {}
                }
            }
            (a, b) if a != b => out.push(path),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "exp"
seeds = [0, 1]
[train]
learning_rate = 0.0003
[al]
iterations = 2
[[strategy]]
name = "random"
[[strategy]]
name = "huds"
params = { lambda = 0.5 }
"#;

    #[test]
    fn free_changes_are_ignored_and_result_changes_named() {
        let more = BASE
            .replace("seeds = [0, 1]", "seeds = [0, 1, 2]")
            .replace("iterations = 2", "iterations = 5\nlabel_budget = 40")
            .replace("lambda = 0.5", "lambda = 0.9");
        // For `random`, only its own entry counts: the huds change and the new seed are free.
        assert!(result_differences(BASE, &more, "random")
            .unwrap()
            .is_empty());
        assert_eq!(
            result_differences(BASE, &more, "huds").unwrap(),
            ["strategy[huds].params.lambda"]
        );
        // Where results go is free too.
        let moved = BASE.replace(
            "seeds = [0, 1]",
            "seeds = [0, 1]\nresults_dir = \"elsewhere\"",
        );
        assert!(result_differences(BASE, &moved, "huds").unwrap().is_empty());
        let lr = BASE.replace("0.0003", "0.001");
        assert_eq!(
            result_differences(BASE, &lr, "random").unwrap(),
            ["train.learning_rate"]
        );
        assert!(stopping_changed(BASE, &more));
        assert!(!stopping_changed(BASE, &lr));
    }

    fn three_finished_iterations(paths: &CellPaths) {
        finished_after_three(paths, StopReason::Iterations { done: 3 }, false, 0.0);
    }

    /// Three iterations of 10 labels each, the last one stopped by `reason`.
    fn finished_after_three(paths: &CellPaths, reason: StopReason, cut: bool, spent: f64) {
        use crate::runner::curve::CurveRow;
        use crate::runner::persist::{append_iteration, IterationRecord, SelectedLine};
        use rand::SeedableRng;
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut st = CellState::new("exp", "random", 0, &rng);
        for t in 0..3 {
            st.labeled_ids.extend((0..10).map(|i| (t * 10 + i) as u64));
            st.iterations_done = t + 1;
            if t == 2 {
                st.finished = true;
                st.stop_reason = Some(reason.clone());
                st.last_query_cut = cut;
                st.money_spent = spent;
            }
            let row = CurveRow {
                iteration: t,
                labeled: st.labeled_ids.len(),
                cost: 0.0,
                tokens: 0,
                seconds: 1.0,
                metrics: vec![0.1 * (t + 1) as f64],
            };
            let sel = SelectedLine::new(t, st.labeled_ids[t * 10..].to_vec(), None);
            let rec = IterationRecord {
                curve_row: &row,
                selected: &sel,
                generations: &[],
            };
            append_iteration(paths, &["rouge1".to_string()], &rec, &st).unwrap();
        }
    }

    #[test]
    fn extending_a_criterion_reopens_and_tightening_closes_or_is_refused() {
        use crate::runner::persist::{load_state, prepare_cell};
        let tmp = tempfile::tempdir().unwrap();
        let paths = CellPaths::new(tmp.path(), "exp", "random", 0);
        assert!(prepare_cell(&paths, BASE, false, false).unwrap().is_none());
        three_finished_iterations(&paths);
        assert!(
            prepare_cell(&paths, BASE, false, false)
                .unwrap()
                .unwrap()
                .finished
        );

        // Two more iterations allowed: the cell continues from where it stopped.
        let longer = BASE.replace("iterations = 2", "iterations = 4");
        let st = prepare_cell(&paths, &longer, false, false)
            .unwrap()
            .unwrap();
        assert!(!st.finished && st.stop_reason.is_none());
        assert!(
            !load_state(&paths).unwrap().unwrap().finished,
            "written back"
        );

        // Back to the iterations done: closed again.
        let st = prepare_cell(&paths, BASE, false, false).unwrap().unwrap();
        assert_eq!(st.stop_reason, Some(StopReason::Iterations { done: 3 }));

        // Fewer iterations than done: a fresh run would have stopped earlier; refused, and
        // the cell is left as it was.
        let shorter = BASE.replace("iterations = 2", "iterations = 1");
        let err = format!(
            "{:#}",
            prepare_cell(&paths, &shorter, false, false).unwrap_err()
        );
        assert!(
            err.contains("after iteration 1 (al.iterations = 1 reached")
                && err.contains("went on to iteration 2")
                && err.contains("--fresh --strategy random"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(paths.config()).unwrap(), BASE);
        // So is a target an earlier row (rouge1 = 0.1, 0.2, 0.3) already met, and a label
        // budget the curve went over.
        for (criterion, says) in [
            (
                "iterations = 9\nrequired_performance = { rouge1 = 0.15 }",
                "after iteration 1 (required performance reached",
            ),
            (
                "label_budget = 25",
                "iteration 2 has 30 labels, over al.label_budget = 25",
            ),
        ] {
            let changed = BASE.replace("iterations = 2", criterion);
            let err = format!(
                "{:#}",
                prepare_cell(&paths, &changed, false, false).unwrap_err()
            );
            assert!(err.contains(says), "{err}");
        }

        // A performance target the last row (rouge1 = 0.3) meets, and no earlier one does,
        // closes it where a fresh run would stop.
        let target = BASE.replace(
            "iterations = 2",
            "iterations = 9\nrequired_performance = { rouge1 = 0.25 }",
        );
        let st = prepare_cell(&paths, &target, false, false)
            .unwrap()
            .unwrap();
        assert!(matches!(
            st.stop_reason,
            Some(StopReason::Performance { .. })
        ));

        // Results-shaping changes are still refused, naming the key.
        let lr = target.replace("0.0003", "0.001");
        let err = prepare_cell(&paths, &lr, false, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.learning_rate changed"), "{err}");
    }

    #[test]
    fn a_cell_whose_last_query_a_budget_cut_is_not_extended_and_a_spent_budget_stays_spent() {
        use crate::runner::persist::{load_state, prepare_cell};
        let tmp = tempfile::tempdir().unwrap();
        // Label budget 25 with queries of 10: the last query was cut to 5. A fresh run with
        // 40 would label 10, 20, 30, 40; continuing would give 10, 20, 25, 35, 40.
        let cut = BASE.replace("iterations = 2", "label_budget = 25");
        let paths = CellPaths::new(tmp.path(), "exp", "random", 0);
        prepare_cell(&paths, &cut, false, false).unwrap();
        let reason = StopReason::LabelBudget {
            labeled: 25,
            budget: 25,
        };
        finished_after_three(&paths, reason.clone(), true, 0.0);
        let more = BASE.replace("iterations = 2", "label_budget = 40");
        let err = format!(
            "{:#}",
            prepare_cell(&paths, &more, false, false).unwrap_err()
        );
        assert!(
            err.contains("cut short") && err.contains("--fresh --strategy random"),
            "{err}"
        );
        assert!(
            load_state(&paths).unwrap().unwrap().finished,
            "left as it was"
        );
        assert_eq!(std::fs::read_to_string(paths.config()).unwrap(), cut);
        // Had the budget fallen on a query boundary, extending it is what a fresh run does.
        let tmp = tempfile::tempdir().unwrap();
        let paths = CellPaths::new(tmp.path(), "exp", "random", 0);
        prepare_cell(&paths, &cut, false, false).unwrap();
        finished_after_three(&paths, reason, false, 0.0);
        assert!(
            !prepare_cell(&paths, &more, false, false)
                .unwrap()
                .unwrap()
                .finished
        );

        // The labeller's money ran out part-way ($0.95 of $1: the next request's worst case
        // did not fit). More iterations cannot buy more with the same budget.
        let money = BASE.replace("iterations = 2", "iterations = 2\nmoney_budget = 1.0");
        let tmp = tempfile::tempdir().unwrap();
        let paths = CellPaths::new(tmp.path(), "exp", "random", 0);
        prepare_cell(&paths, &money, false, false).unwrap();
        let spent = StopReason::MoneyBudget {
            spent: 0.95,
            budget: 1.0,
        };
        finished_after_three(&paths, spent.clone(), true, 0.95);
        let longer = money.replace("iterations = 2", "iterations = 6");
        let st = prepare_cell(&paths, &longer, false, false)
            .unwrap()
            .unwrap();
        assert!(st.finished, "same budget: stays stopped");
        assert_eq!(st.stop_reason, Some(spent));
        // A larger budget would have bought the rest of that query: refused, not continued.
        let richer = longer.replace("money_budget = 1.0", "money_budget = 2.0");
        let err = format!(
            "{:#}",
            prepare_cell(&paths, &richer, false, false).unwrap_err()
        );
        assert!(err.contains("cut short"), "{err}");
    }

    /// A change to the cell's own strategy entry names the key and advises starting over
    /// only that strategy; a change every cell shares advises --fresh for all.
    #[test]
    fn a_changed_setting_is_named_with_the_fresh_command_that_fits() {
        use crate::runner::persist::prepare_cell;
        let tmp = tempfile::tempdir().unwrap();
        let paths = CellPaths::new(tmp.path(), "exp", "huds", 0);
        prepare_cell(&paths, BASE, false, false).unwrap();
        three_finished_iterations(&paths);
        let own = BASE.replace("lambda = 0.5", "lambda = 0.9");
        let err = format!(
            "{:#}",
            prepare_cell(&paths, &own, false, false).unwrap_err()
        );
        assert!(
            err.contains("(strategy[huds].params.lambda changed)")
                && err.contains("rerun with --fresh --strategy huds to start over"),
            "{err}"
        );
        let shared = BASE.replace("0.0003", "0.001");
        let err = format!(
            "{:#}",
            prepare_cell(&paths, &shared, false, false).unwrap_err()
        );
        assert!(
            err.contains("(train.learning_rate changed)")
                && err.contains("rerun with --fresh to start over"),
            "{err}"
        );
    }

    #[test]
    fn a_strategy_that_plans_from_the_stopping_criteria_is_not_extended() {
        use crate::runner::persist::prepare_cell;
        let tmp = tempfile::tempdir().unwrap();
        let paths = CellPaths::new(tmp.path(), "exp", "idds", 0);
        assert!(prepare_cell(&paths, BASE, false, true).unwrap().is_none());
        three_finished_iterations(&paths);
        // Same criteria: resumes as usual.
        assert!(
            prepare_cell(&paths, BASE, false, true)
                .unwrap()
                .unwrap()
                .finished
        );
        let longer = BASE.replace("iterations = 2", "iterations = 4");
        let err = format!(
            "{:#}",
            prepare_cell(&paths, &longer, false, true).unwrap_err()
        );
        assert!(err.contains("stopping criteria changed"), "{err}");
        assert!(err.contains("--fresh --strategy idds"), "{err}");
        assert_eq!(
            std::fs::read_to_string(paths.config()).unwrap(),
            BASE,
            "a refused run leaves config.toml as it was"
        );
        // --fresh starts it over under the new criteria.
        assert!(prepare_cell(&paths, &longer, true, true).unwrap().is_none());
    }
}
