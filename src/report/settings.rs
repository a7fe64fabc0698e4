//! Whether the cells of one experiment folder were run with the same settings. Each cell keeps
//! its configuration in `config.toml`; a folder can still mix settings when the experiment
//! file was edited between runs of different strategies or seeds (a new seed added after the
//! model changed, a strategy rerun alone with other params). Averaging or comparing such
//! cells is misleading, so the report names them. Cells without a readable config.toml
//! (hand-made folders) are left out of the comparison.
use crate::report::load::ExperimentCurves;
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
            let Some(text) = seed
                .path
                .parent()
                .and_then(|d| std::fs::read_to_string(d.join("config.toml")).ok())
            else {
                continue;
            };
            let Ok(settings) = shared_settings(&text) else {
                continue;
            };
            let cell = format!("{}/seed-{}", s.strategy, seed.seed);
            add_to_group(&mut shared, settings, cell);
            add_to_group(
                &mut own,
                strategy_entry(&text, &s.strategy),
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

/// A line when the strategies' curves end at different labeled counts (the cells stopped
/// under other stopping criteria, or ran out of money at other points): the reference's final
/// score, which the savings table targets, then lies where other curves have no points.
/// Stopping criteria are not a settings mix (a cell may be extended), so this is said apart.
/// A strategy's end is the one every seed reaches (the smallest seed end), where its mean
/// curve ends.
pub fn uneven_ends(curves: &ExperimentCurves) -> Option<String> {
    let mut ends: Vec<(usize, Vec<&str>)> = Vec::new();
    for s in &curves.strategies {
        let Some(end) = s
            .seeds
            .iter()
            .filter_map(|seed| seed.curve.rows.iter().map(|r| r.labeled).max())
            .min()
        else {
            continue;
        };
        match ends.iter_mut().find(|(e, _)| *e == end) {
            Some((_, names)) => names.push(&s.strategy),
            None => ends.push((end, vec![&s.strategy])),
        }
    }
    if ends.len() < 2 {
        return None;
    }
    ends.sort_by_key(|(end, _)| std::cmp::Reverse(*end));
    let parts: Vec<String> = ends
        .iter()
        .map(|(end, names)| format!("{} at {end}", names.join(", ")))
        .collect();
    Some(format!(
        "The curves end at different labeled counts ({}): final scores and label savings \
         compare different budgets. Extend the shorter ones (raise the stopping criterion and \
         `lab run` again: finished cells resume) or compare at the smallest count.",
        parts.join("; ")
    ))
}
