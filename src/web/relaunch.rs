//! A launch under the name of an experiment that already has results. As with `lab run`, the
//! seeds, the strategies and the stopping criteria may change and the run resumes; any other
//! setting that shapes results (data, model, training, labeller, metrics, a strategy's own
//! parameters) differing from what the earlier cells were made with refuses the launch, naming
//! each such setting with its old and new value. The launch form then offers to start over,
//! which deletes the earlier results first: old and new results are never mixed unseen.
use crate::config::Experiment;
use crate::runner::persist::{load_state, run_holds_cell, CellPaths};
use crate::runner::reconcile::{
    restop, result_differences, shared_settings, stopping_changed, strategy_entry,
    table_differences,
};
use crate::web::launch::FieldErrors;
use crate::web::results::cells_of;
use crate::web::App;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;

/// What the folder of an experiment holds from earlier launches.
#[derive(Debug, Default, PartialEq)]
pub struct Earlier {
    /// Cells with results (a state.json).
    pub cells: usize,
    /// Labels typed by hand in those cells: lost when starting over.
    pub hand_labels: usize,
    /// Why the earlier results cannot be continued by the new settings, one line each.
    pub conflicts: Vec<String>,
}

/// The results in `exp_dir` set against `exp`, the experiment about to be launched.
pub fn compare(exp_dir: &Path, exp: &Experiment) -> Result<Earlier> {
    let new = exp.to_toml_string()?;
    let mut earlier = Earlier::default();
    // Setting -> (old value, new value, cells), so one change reads once, not once per cell.
    let mut changed: BTreeMap<String, (String, String, Vec<String>)> = BTreeMap::new();
    for cell in cells_of(exp_dir) {
        let paths = CellPaths {
            dir: cell.dir.clone(),
        };
        let Ok(Some(mut state)) = load_state(&paths) else {
            // No results yet (or unreadable, which the run itself reports): nothing to mix.
            continue;
        };
        earlier.cells += 1;
        earlier.hand_labels += crate::labeller::human::read_labels(&cell.dir)
            .map(|l| l.len())
            .unwrap_or(0);
        let name = format!("{}/seed-{}", cell.strategy, cell.seed);
        let Ok(old) = std::fs::read_to_string(paths.config()) else {
            earlier.conflicts.push(format!(
                "{name} has no readable config.toml, so what it was run with is unknown"
            ));
            continue;
        };
        let runs_again = exp.strategies.iter().any(|s| s.key() == cell.strategy);
        let keys = if runs_again {
            result_differences(&old, &new, &cell.strategy)
        } else {
            // A strategy left out stays in the folder and in the report beside the new
            // cells: it must share their settings.
            shared_differences(&old, &new)
        }
        .with_context(|| format!("comparing with {}", paths.config().display()))?;
        for key in &keys {
            let entry = changed
                .entry(key.clone())
                .or_insert_with(|| (value_at(&old, key), value_at(&new, key), Vec::new()));
            entry.2.push(name.clone());
        }
        if runs_again && keys.is_empty() && stopping_changed(&old, &new) {
            if plans_ahead(exp, &cell.strategy) {
                earlier.conflicts.push(format!(
                    "{name}: the [al] stopping criteria changed, and its strategy plans its \
                     selections from them (it selects the whole budget at once, or reads \
                     ctx.planned_iterations), so continuing would not give what a fresh run \
                     gives"
                ));
                continue;
            }
            // New stopping criteria the cell already went past: resuming cannot undo that.
            // (`restop` only changes the state given; nothing is written here.)
            if let Err(e) = restop(&paths, &mut state, &new) {
                earlier.conflicts.push(format!("{name}: {e:#}"));
            }
        }
    }
    let mut lines: Vec<String> = changed
        .into_iter()
        .map(|(key, (old, new, cells))| {
            format!("`{key}` was {old}, now {new} (in {})", cells.join(", "))
        })
        .collect();
    lines.append(&mut earlier.conflicts);
    earlier.conflicts = lines;
    Ok(earlier)
}

/// Whether the strategy `key` of `exp` selects from the stopping criteria, as `lab run`
/// decides it (an `ed` script, or one reading `ctx.planned_iterations`).
fn plans_ahead(exp: &Experiment, key: &str) -> bool {
    let Some(strategy) = exp.strategies.iter().find(|s| s.key() == key) else {
        return false;
    };
    let script = strategy.script_path();
    crate::strategy::registry::describe(&script)
        .is_ok_and(|info| crate::runner::script_identity::plans_from_stopping(&script, &info.kind))
}

/// The settings every cell of an experiment shares that differ between two configurations.
fn shared_differences(old: &str, new: &str) -> Result<Vec<String>> {
    Ok(table_differences(
        &shared_settings(old)?,
        &shared_settings(new)?,
    ))
}

/// The value of the dotted `key` (`strategy[name].…` for a strategy's own entry) in a
/// configuration, as TOML writes it.
fn value_at(text: &str, key: &str) -> String {
    let missing = || "not set".to_string();
    let (mut table, path) = match key
        .strip_prefix("strategy[")
        .and_then(|rest| rest.split_once(']'))
    {
        Some((name, rest)) => match strategy_entry(text, name) {
            Some(entry) => (entry, rest.trim_start_matches('.').to_string()),
            None => return missing(),
        },
        None => match text.parse::<toml::Table>() {
            Ok(t) => (t, key.to_string()),
            Err(_) => return missing(),
        },
    };
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        match (table.remove(part), parts.peek()) {
            (Some(toml::Value::Table(inner)), Some(_)) => table = inner,
            (Some(value), None) => return value.to_string(),
            _ => return missing(),
        }
    }
    missing()
}

/// Delete the results of `exp_dir` to start the experiment over; refused while a `lab run`
/// (from this server or elsewhere) works on one of its cells. The folder is first renamed
/// aside, so a failure halfway leaves either all of it or none of it under the name.
pub fn start_over(exp_dir: &Path) -> Result<()> {
    if !exp_dir.exists() {
        return Ok(());
    }
    if let Some(busy) = cells_of(exp_dir)
        .into_iter()
        .find(|c| run_holds_cell(&c.dir) == Some(true))
    {
        anyhow::bail!(
            "a `lab run` is working on {}/seed-{}: stop it first, then start over",
            busy.strategy,
            busy.seed
        );
    }
    let name = exp_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Hidden (a leading dot), so the pages never list it as an experiment.
    let aside = exp_dir.with_file_name(format!(".{name}.replaced-{stamp}"));
    let moved = crate::util::atomic::move_folder_aside(exp_dir, &aside).with_context(|| {
        format!(
            "cannot move {} aside to start over; nothing was deleted",
            exp_dir.display()
        )
    })?;
    if !moved {
        return Ok(());
    }
    std::fs::remove_dir_all(&aside).with_context(|| {
        format!(
            "the earlier results were moved to {} but could not all be deleted; delete that \
             folder by hand",
            aside.display()
        )
    })
}

/// The key under which the refusal tells the start-over box what it would delete.
pub const START_OVER_DELETES: &str = "start_over_deletes";

/// Problems that keep `exp` from running on the results its name already has: settings that
/// differ from theirs, unless the form asks to start over, which deletes those results here.
pub fn refuse_mixing(
    app: &App,
    form: &HashMap<String, String>,
    exp: &Experiment,
    file: &Path,
) -> Option<FieldErrors> {
    let exp_dir = app.results.join(&exp.name);
    let shown = |m: &str| crate::web::within_results(m, &app.results);
    let mut errors = FieldErrors::new();
    if form.get("start_over").is_some_and(|v| !v.is_empty()) {
        let e = start_over(&exp_dir).err()?;
        errors.insert("start_over", vec![shown(&format!("{e:#}"))]);
        return Some(errors);
    }
    let earlier = match compare(&exp_dir, exp) {
        Ok(earlier) => earlier,
        Err(e) => Earlier {
            conflicts: vec![format!("cannot compare with the earlier results: {e:#}")],
            ..Default::default()
        },
    };
    if earlier.conflicts.is_empty() {
        return None;
    }
    let kept = if file.exists() {
        format!(
            "; the last launch from this form is still in {}, unchanged",
            file.display()
        )
    } else {
        String::new()
    };
    errors.insert(
        "name",
        vec![format!(
            "experiment `{}` has results made with other settings (below), which these would \
             not continue: launch under another name, restore those settings to resume{kept}, \
             or tick Start over",
            exp.name
        )],
    );
    let lines: Vec<String> = earlier.conflicts.iter().map(|c| shown(c)).collect();
    errors.insert("start_over", lines);
    // What ticking the box costs, in its label.
    let deletes = format!(
        "the results of {} cell{}{}",
        earlier.cells,
        if earlier.cells == 1 { "" } else { "s" },
        match earlier.hand_labels {
            0 => String::new(),
            n => format!(
                ", with the {n} label{} typed by hand",
                if n == 1 { "" } else { "s" }
            ),
        }
    );
    errors.insert(START_OVER_DELETES, vec![deletes]);
    Some(errors)
}

#[cfg(test)]
#[path = "relaunch_tests.rs"]
mod tests;
