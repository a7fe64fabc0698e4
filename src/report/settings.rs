//! Whether the cells of one experiment folder were run with the same settings. Each cell keeps
//! its configuration in `config.toml`; a folder can still mix settings when the experiment
//! file was edited between runs of different strategies or seeds (a new seed added after the
//! model changed, a strategy rerun alone with other params). Averaging or comparing such
//! cells is misleading, so the report names them. Cells without a readable config.toml
//! (hand-made folders) are left out of the comparison.
use crate::report::load::{ExperimentCurves, StateFile};
use crate::runner::reconcile::{shared_settings, strategy_entry, table_differences};
use toml::Table;

/// One line per group of cells whose settings differ from the most common ones; empty when
/// every cell agrees.
pub fn mixed_settings(curves: &ExperimentCurves) -> Vec<String> {
    let mut shared: Vec<(Table, Vec<String>)> = Vec::new();
    let mut lines = Vec::new();
    for s in &curves.strategies {
        let mut own: Vec<(Option<Table>, Vec<String>)> = Vec::new();
        for seed in &s.seeds {
            let Ok(Some(text)) = &seed.config else {
                continue;
            };
            let Ok(settings) = shared_settings(text) else {
                continue;
            };
            let cell = format!("{}/seed-{}", s.strategy, seed.seed);
            add_to_group(&mut shared, settings, cell);
            add_to_group(
                &mut own,
                strategy_entry(text, &s.strategy),
                format!("seed-{}", seed.seed),
            );
        }
        if own.len() > 1 {
            own.sort_by_key(|(_, cells)| std::cmp::Reverse(cells.len()));
            let empty = Table::new();
            let common = own[0].0.as_ref().unwrap_or(&empty);
            for (entry, cells) in &own[1..] {
                let keys = table_differences(common, entry.as_ref().unwrap_or(&empty));
                lines.push(format!(
                    "`{}` {} ran with other `[[strategy]]` settings than {} in: {} (its mean \
                     curve averages both)",
                    s.strategy,
                    names(cells),
                    names(&own[0].1),
                    keys.join(", ")
                ));
            }
        }
    }
    if shared.len() > 1 {
        shared.sort_by_key(|(_, cells)| std::cmp::Reverse(cells.len()));
        for (settings, cells) in &shared[1..] {
            lines.push(format!(
                "{} ran with other settings than {} in: {}",
                names(cells),
                names(&shared[0].1),
                table_differences(&shared[0].0, settings).join(", ")
            ));
        }
    }
    lines
}

fn add_to_group<T: PartialEq>(groups: &mut Vec<(T, Vec<String>)>, key: T, cell: String) {
    match groups.iter_mut().find(|(k, _)| *k == key) {
        Some((_, cells)) => cells.push(cell),
        None => groups.push((key, vec![cell])),
    }
}

/// Cell names, the first few only for a long list.
fn names(cells: &[String]) -> String {
    const SHOWN: usize = 6;
    if cells.len() <= SHOWN {
        cells.join(", ")
    } else {
        format!(
            "{} and {} more",
            cells[..SHOWN].join(", "),
            cells.len() - SHOWN
        )
    }
}

/// One line per cell whose config.toml or state.json exists but cannot be read or parsed
/// (edited or damaged: the runner writes both atomically), with what the report could not
/// do for it and what to do. Missing files (hand-made folders) are not named.
pub fn damaged_files(curves: &ExperimentCurves) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &curves.strategies {
        for seed in &s.seeds {
            let Some(dir) = seed.path.parent() else {
                continue;
            };
            let cell = format!("{}/seed-{}", s.strategy, seed.seed);
            let config = dir.join("config.toml");
            let problem = match &seed.config {
                Ok(None) => None,
                Err(e) => Some(e.clone()),
                Ok(Some(text)) => text.parse::<Table>().err().map(|e| {
                    // One line: the error's own text draws the line with a caret.
                    // A span at the very end (an unclosed array) counts on the last line.
                    let end = text.trim_end().len();
                    let line = e
                        .span()
                        .map(|r| text[..r.start.min(end)].matches('\n').count() + 1);
                    format!(
                        "{}{} is not valid TOML: {}",
                        config.display(),
                        line.map(|l| format!(" line {l}")).unwrap_or_default(),
                        e.message().trim().replace('\n', "; ")
                    )
                }),
            };
            if let Some(problem) = problem {
                lines.push(format!(
                    "{cell}: {problem}, so its settings are not compared with the other \
                     cells'. Restore the file, or delete {} and rerun `lab run` on the \
                     experiment file to compute the cell again",
                    dir.display()
                ));
            }
            if let StateFile::Damaged(e) = &seed.state {
                lines.push(format!("{cell}: {e}; whether the cell finished is unknown"));
            }
        }
    }
    lines
}

/// One line per cell whose state.json says it has not finished: still running, or stopped
/// (interrupted, or failed — a script error, a refused resume) after some iterations. Its
/// curve is shorter for that, not because a budget ended it. Cells without a state.json
/// (hand-made folders) are left out.
pub fn unfinished_cells(curves: &ExperimentCurves) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &curves.strategies {
        for seed in &s.seeds {
            let Some(dir) = seed.path.parent() else {
                continue;
            };
            let StateFile::Read(state) = &seed.state else {
                continue;
            };
            if state.finished {
                continue;
            }
            let cell = format!("{}/seed-{}", s.strategy, seed.seed);
            let done = crate::runner::progress::iteration_span(state.iterations_done);
            lines.push(match crate::runner::persist::run_holds_cell(dir) {
                Some(true) => format!("{cell}: still running ({done} so far)"),
                _ => format!(
                    "{cell}: stopped after {done} — interrupted, or failed (the error is \
                         in the `lab run` output); `lab run` resumes it"
                ),
            });
        }
    }
    lines
}

/// A line when the strategies' curves end at different labeled counts (the cells stopped
/// under other stopping criteria, or ran out of money at other points): the reference's final
/// score, which the savings table targets, then lies where other curves have no points.
/// Stopping criteria are not a settings mix (a cell may be extended), so this is said apart.
/// Curves that start at different labeled counts are named too: AUC then covers only the
/// range all share. A strategy's end is the one every seed reaches (the smallest seed end) and
/// its start the largest seed start: where its mean curve ends and starts.
pub fn uneven_ends(curves: &ExperimentCurves) -> Option<String> {
    let mut ends: Vec<(usize, Vec<String>)> = Vec::new();
    let mut starts: Vec<(usize, Vec<String>)> = Vec::new();
    for s in &curves.strategies {
        let labeled = |seed: &crate::report::load::SeedCurve| {
            let counts = seed.curve.rows.iter().map(|r| r.labeled);
            Some((counts.clone().min()?, counts.max()?))
        };
        let spans: Vec<(usize, usize)> = s.seeds.iter().filter_map(labeled).collect();
        let (Some(start), Some(end)) = (
            spans.iter().map(|p| p.0).max(),
            spans.iter().map(|p| p.1).min(),
        ) else {
            continue;
        };
        add_to_group(&mut ends, end, s.strategy.clone());
        add_to_group(&mut starts, start, s.strategy.clone());
    }
    let list = |groups: &mut Vec<(usize, Vec<String>)>| {
        groups.sort_by_key(|(count, _)| std::cmp::Reverse(*count));
        groups
            .iter()
            .map(|(count, names)| format!("{} at {count}", names.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (uneven_ends, uneven_starts) = (ends.len() > 1, starts.len() > 1);
    let mut what = Vec::new();
    if uneven_ends {
        what.push(format!(
            "end at different labeled counts ({})",
            list(&mut ends)
        ));
    }
    if uneven_starts {
        what.push(format!(
            "start at different labeled counts ({})",
            list(&mut starts)
        ));
    }
    if what.is_empty() {
        return None;
    }
    let mut note = format!("The curves {}: ", what.join(" and "));
    if uneven_ends {
        note.push_str("final scores and label savings compare different budgets, and ");
    }
    note.push_str("AUC is computed only over the labeled range all curves share.");
    if uneven_ends {
        note.push_str(
            " Extend the shorter ones (resume unfinished cells with `lab run`, or raise the \
             stopping criterion and `lab run` again: finished cells resume) or compare at the \
             smallest count.",
        );
    }
    if uneven_starts {
        note.push_str(
            " A curve that starts later cannot show whether fewer labels would have sufficed.",
        );
    }
    Some(note)
}
