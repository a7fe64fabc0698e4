//! `report.md`: per metric, a table of label efficiency against the reference strategy.
use crate::report::direction::Direction;
use crate::report::savings::{SavingBound, SavingsTable};
use std::fmt::Write;

/// Seeds per strategy, for the header of the report.
pub struct SeedCount<'a> {
    pub strategy: &'a str,
    pub seeds: usize,
}

/// What report.md warns about before its tables (each empty or `None` when all is well).
#[derive(Default)]
pub struct ReportNotes<'a> {
    pub unreadable: &'a [String],
    pub mixed_settings: &'a [String],
    pub unfinished: &'a [String],
    pub uneven_ends: Option<&'a str>,
    pub non_finite: &'a [String],
}

pub fn render_report(
    experiment: &str,
    seeds: &[SeedCount<'_>],
    notes: &ReportNotes<'_>,
    tables: &[SavingsTable],
    figures: &[String],
) -> String {
    let ReportNotes {
        unreadable,
        mixed_settings,
        unfinished,
        uneven_ends,
        non_finite,
    } = *notes;
    let mut md = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(md, "# {experiment}: active-learning report\n");
    let _ = writeln!(
        md,
        "Strategies (seeds): {}.\n",
        seeds
            .iter()
            .map(|s| format!("{} ({})", s.strategy, s.seeds))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !unreadable.is_empty() {
        let _ = writeln!(
            md,
            "**Warning: some files of the cells could not be read.** A cell whose curve.csv \
             cannot be read is left out of everything below (its seed is not counted above):\n"
        );
        for line in unreadable {
            let _ = writeln!(md, "- {line}");
        }
        md.push('\n');
    }
    if !mixed_settings.is_empty() {
        let _ = writeln!(
            md,
            "**Warning: these results mix settings.** Cells below were run with different \
             configurations (their `config.toml`), so the curves compare or average unlike \
             runs. Rerun the odd cells with the current file (`lab run FILE --fresh --strategy \
             NAME`) or move them out of this folder.\n"
        );
        for line in mixed_settings {
            let _ = writeln!(md, "- {line}");
        }
        md.push('\n');
    }
    if !unfinished.is_empty() {
        let _ = writeln!(
            md,
            "**Note: some cells have not finished**, so their curves end early and the means \
             past that point leave them out:\n"
        );
        for line in unfinished {
            let _ = writeln!(md, "- {line}");
        }
        md.push('\n');
    }
    if let Some(note) = uneven_ends {
        let _ = writeln!(md, "**Note:** {note}\n");
    }
    if !non_finite.is_empty() {
        let _ = writeln!(
            md,
            "**Note:** some metric values are not finite (NaN or ±inf: the metric could not be \
             computed, or overflowed); the means, tables and figures leave them out:\n"
        );
        for line in non_finite {
            let _ = writeln!(md, "- {line}");
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "Columns: **AUC** is the area under the mean curve (trapezoid over labeled examples) \
         over the labeled range that every strategy's curve covers (given under each metric; \
         the same range for all, so AUCs compare), divided by that range, i.e. the curve's \
         average height there; `–` when the curves share no range. **Final** is the mean \
         score at the largest labeled count. **Labels to reach** is the first labeled count \
         where the mean curve reaches the reference strategy's final mean score (linear \
         interpolation between iterations); `≤ n` means it was already reached at the first \
         evaluated point, so fewer labels may suffice. **Saving** is the reference's labels-to-reach \
         divided by the strategy's (above 1: fewer labels than the reference); `≥`: the strategy's \
         count is only a bound (`≤ n`), so the saving is at least this; `≤`: the reference's count \
         is a bound, so at most this; `–`: both are bounds, or one needs no labels at all. Per-point \
         means, standard deviations and 95% confidence intervals are in `summary.csv`.\n"
    );
    for t in tables {
        let _ = writeln!(md, "## {}\n", t.metric);
        let assumed = if t.direction_known {
            String::new()
        } else {
            format!(
                " (assumed from its name: `{}` is not a metric this lab computes)",
                t.metric
            )
        };
        match t.direction {
            Direction::Higher if t.direction_known => {}
            Direction::Higher => {
                let _ = writeln!(md, "Higher is better{assumed}.\n");
            }
            Direction::Lower => {
                let _ = writeln!(
                    md,
                    "Lower is better{assumed}: labels to reach is the first labeled count where \
                     the mean curve falls to the reference's final mean, and a lower AUC is \
                     better.\n"
                );
            }
            Direction::Neither => {
                let _ = writeln!(
                    md,
                    "`{}` describes the outputs; neither higher nor lower is better, so \
                     labels-to-reach and savings are not computed.\n",
                    t.metric
                );
            }
        }
        match (t.target, t.reference_labels) {
            (Some(target), Some(labels)) => {
                let _ = writeln!(
                    md,
                    "Reference `{}`: final mean {} reached with {}{} labels.\n",
                    t.reference,
                    fmt_score(target),
                    if t.reference_reached_at_first_point {
                        "≤ "
                    } else {
                        ""
                    },
                    fmt_labels(labels)
                );
            }
            _ if t.direction == Direction::Neither => {}
            _ => {
                let _ = writeln!(
                    md,
                    "No `{}` curve for this metric: labels-to-reach and savings are not computed.\n",
                    t.reference
                );
            }
        }
        match t.auc_range {
            Some((lo, hi)) if lo < hi => {
                let _ = writeln!(
                    md,
                    "AUC over labeled {}–{}, the range all strategies cover.\n",
                    fmt_labels(lo),
                    fmt_labels(hi)
                );
            }
            Some((lo, _)) => {
                let _ = writeln!(
                    md,
                    "The strategies' curves share only labeled {}: AUC is the value there.\n",
                    fmt_labels(lo)
                );
            }
            None => {
                let _ = writeln!(
                    md,
                    "The strategies' curves share no labeled range: AUC is not computed.\n"
                );
            }
        }
        let _ = writeln!(
            md,
            "| strategy | AUC | final labeled | final score | labels to reach | saving |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
        for r in &t.rows {
            let reach = match (t.target, r.labels_to_reach) {
                (None, _) => "–".to_string(),
                (Some(_), None) => "not reached".to_string(),
                (Some(_), Some(l)) if r.reached_at_first_point => format!("≤ {}", fmt_labels(l)),
                (Some(_), Some(l)) => fmt_labels(l),
            };
            let bound = match r.saving_bound {
                SavingBound::Exact => "",
                SavingBound::AtLeast => "≥ ",
                SavingBound::AtMost => "≤ ",
            };
            let saving = r
                .saving
                .map(|s| format!("{bound}{s:.2}×"))
                .unwrap_or_else(|| "–".to_string());
            let name = if r.strategy == t.reference {
                format!("{} (reference)", table_cell(&r.strategy))
            } else {
                table_cell(&r.strategy)
            };
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {reach} | {saving} |",
                r.auc.map_or_else(|| "–".to_string(), fmt_score),
                fmt_labels(r.final_labeled),
                fmt_score(r.final_score)
            );
        }
        md.push('\n');
    }
    if !figures.is_empty() {
        let _ = writeln!(md, "## Figures\n");
        let _ = writeln!(
            md,
            "Each line is a strategy's mean over its seeds, by labeled examples (by cumulative \
             labelling cost in dollars in `*-by-cost` figures); the reference is the black \
             dashed line. The shaded band is the Student-t 95% confidence interval of that \
             mean, not the seeds' standard deviation (which is in `summary.csv`): none with \
             one seed, and wide with few (t = 12.71 for two seeds, 4.30 for three). Bands are \
             cut at the metric's range (0–1 for ROUGE).\n"
        );
        for f in figures {
            let _ = writeln!(md, "![{f}]({f})\n");
        }
    }
    md
}

/// `text` as one cell of a markdown table: a `|` in a hand-made folder's name would end the
/// cell and shift the row's numbers into the wrong columns.
fn table_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn fmt_score(v: f64) -> String {
    format!("{v:.4}")
}

fn fmt_labels(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::aggregate::{MeanCurve, MeanPoint};
    use crate::report::savings::savings_table;
    use crate::report::stats::summarize;

    #[test]
    fn a_bar_in_a_strategy_name_stays_in_its_cell() {
        let curve = |name: &str, ys: [f64; 2]| MeanCurve {
            strategy: name.into(),
            metric: "rouge1".into(),
            points: [10.0, 20.0]
                .iter()
                .zip(ys)
                .map(|(&x, y)| MeanPoint {
                    x,
                    summary: summarize(&[y]),
                })
                .collect(),
        };
        let curves = [curve("random", [0.1, 0.2]), curve("a|b", [0.1, 0.3])];
        let table = savings_table("rouge1", &curves, "random");
        let md = render_report("e", &[], &ReportNotes::default(), &[table], &[]);
        let row = md.lines().find(|l| l.starts_with("| a")).unwrap();
        assert_eq!(row, "| a\\|b | 0.2000 | 20 | 0.3000 | 15 | 1.33× |");
    }
}
