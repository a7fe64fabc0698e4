//! Aggregation over seeds, label-savings tables and figures for one experiment's results:
//! `summary.csv`, `<metric>.svg|png` and `report.md` in `results/<experiment>/`.
pub mod aggregate;
pub mod cli;
pub mod direction;
pub mod figure_text;
pub mod font;
pub mod legend;
pub mod load;
pub mod markdown;
pub mod marks;
pub mod plot;
pub mod savings;
pub mod series_style;
pub mod settings;
pub mod stats;
pub mod summary;
pub mod temporaries;

pub use aggregate::XAxis;

use crate::util::atomic_write_string;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// How to build a report.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// The strategy the others are compared with (normally `random`).
    pub reference: String,
    /// The x axis of the figures: by labeled count, which adds figures by cost when any
    /// labelling cost money, or by cost only. Tables and summary.csv are always by labeled
    /// count.
    pub x: XAxis,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            reference: "random".to_string(),
            x: XAxis::Labeled,
        }
    }
}

/// What `write_report` produced.
#[derive(Clone, Debug)]
pub struct ReportSummary {
    pub experiment: String,
    pub strategies: Vec<String>,
    pub metrics: Vec<String>,
    /// Every file written, summary.csv and report.md included.
    pub files: Vec<PathBuf>,
    /// One label-efficiency table per metric.
    pub tables: Vec<savings::SavingsTable>,
    /// Cells run with settings other than the rest (empty when all agree); also in report.md.
    pub mixed_settings: Vec<String>,
    /// Cells that have not finished (stopped, failed or still running); also in report.md.
    pub unfinished: Vec<String>,
    /// Said when the strategies' curves end at different labeled counts; also in report.md.
    pub uneven_ends: Option<String>,
    /// Strategies and metrics with values that are not finite, left out of the means; also in
    /// report.md.
    pub non_finite: Vec<String>,
    /// `(strategy, seed)` of every cell whose curve the report read, sorted: what it averages.
    pub cells: Vec<(String, u64)>,
    /// Files of cells that could not be read or parsed, each with the error, what the report
    /// could not do for want of it and what to do; also in report.md. A cell whose
    /// curve.csv is unreadable is left out; the report covers the others.
    pub unreadable: Vec<String>,
}

/// Write summary.csv, figures by labeled count (and by cost when any labelling cost money)
/// and report.md into `experiment_dir`, first removing the temporaries of a report write that
/// was killed there.
pub fn write_report(experiment_dir: &Path, reference_strategy: &str) -> Result<ReportSummary> {
    write_report_with(
        experiment_dir,
        &ReportOptions {
            reference: reference_strategy.to_string(),
            x: XAxis::Labeled,
        },
    )
}

pub fn write_report_with(experiment_dir: &Path, options: &ReportOptions) -> Result<ReportSummary> {
    temporaries::remove_stale_report_temporaries(experiment_dir)?;
    let curves = load::load_experiment_curves(experiment_dir)?;
    let any_cost = curves
        .strategies
        .iter()
        .flat_map(|s| &s.seeds)
        .flat_map(|s| &s.curve.rows)
        .any(|r| r.cost > 0.0);
    if options.x == XAxis::Cost && !any_cost {
        // The cells left out may be the paid ones: name them too.
        let unreadable: String = curves
            .unreadable
            .iter()
            .map(|u| format!("; {}", u.describe()))
            .collect();
        bail!(
            "every curve in {} has cost 0 (golden labels are free): plotting by cost needs \
             a labeller that charges; use `--x labeled`{unreadable}",
            experiment_dir.display()
        );
    }
    // By labeled count, the default, also by cost once any labelling cost money: a paid
    // labeller's curves are compared by what they spent as much as by what they labeled.
    let axes: &[XAxis] = match (options.x, any_cost) {
        (XAxis::Labeled, true) => &[XAxis::Labeled, XAxis::Cost],
        (XAxis::Labeled, false) => &[XAxis::Labeled],
        (XAxis::Cost, _) => &[XAxis::Cost],
    };
    let mut files = Vec::new();
    let mut by_labeled = Vec::new();
    let mut tables = Vec::new();
    let mut figures = Vec::new();
    let stems = figure_stems(&curves.metrics);
    for (metric, stem) in curves.metrics.iter().zip(&stems) {
        let mean = aggregate::mean_curves(&curves, metric, XAxis::Labeled);
        if mean.is_empty() {
            continue;
        }
        tables.push(savings::savings_table(metric, &mean, &options.reference));
        for &x in axes {
            let plotted = match x {
                XAxis::Labeled => mean.clone(),
                XAxis::Cost => aggregate::mean_curves(&curves, metric, XAxis::Cost),
            };
            let spec = plot::FigureSpec {
                experiment: &curves.name,
                metric,
                reference: &options.reference,
                x,
            };
            let stem = match x {
                XAxis::Labeled => stem.clone(),
                XAxis::Cost => format!("{stem}-by-cost"),
            };
            let svg_path = experiment_dir.join(format!("{stem}.svg"));
            atomic_write_string(&svg_path, &plot::render_svg(&plotted, &spec)?)?;
            let png_path = experiment_dir.join(format!("{stem}.png"));
            plot::write_png(&plotted, &spec, &png_path)?;
            figures.push(format!("{stem}.svg"));
            files.push(svg_path);
            files.push(png_path);
        }
        by_labeled.extend(mean);
    }
    // Stable sort: rows grouped by strategy, metrics in config order within each.
    by_labeled.sort_by(|a, b| a.strategy.cmp(&b.strategy));
    let summary_path = experiment_dir.join("summary.csv");
    atomic_write_string(&summary_path, &summary::summary_csv(&by_labeled)?)?;
    files.push(summary_path);

    let seeds: Vec<markdown::SeedCount<'_>> = curves
        .strategies
        .iter()
        .map(|s| markdown::SeedCount {
            strategy: &s.strategy,
            seeds: s.seeds.len(),
        })
        .collect();
    let mixed_settings = settings::mixed_settings(&curves);
    let unfinished = settings::unfinished_cells(&curves);
    let uneven_ends = settings::uneven_ends(&curves);
    let non_finite = aggregate::non_finite_values(&curves);
    let mut unreadable: Vec<String> = curves
        .unreadable
        .iter()
        .map(load::UnreadableCell::describe)
        .collect();
    unreadable.extend(settings::damaged_files(&curves));
    let report_path = experiment_dir.join("report.md");
    let notes = markdown::ReportNotes {
        unreadable: &unreadable,
        mixed_settings: &mixed_settings,
        unfinished: &unfinished,
        uneven_ends: uneven_ends.as_deref(),
        non_finite: &non_finite,
    };
    atomic_write_string(
        &report_path,
        &markdown::render_report(&curves.name, &seeds, &notes, &tables, &figures),
    )?;
    files.push(report_path);
    Ok(ReportSummary {
        experiment: curves.name.clone(),
        strategies: curves
            .strategies
            .iter()
            .map(|s| s.strategy.clone())
            .collect(),
        metrics: curves.metrics.clone(),
        files,
        tables,
        mixed_settings,
        unfinished,
        uneven_ends,
        non_finite,
        cells: curves.cells(),
        unreadable,
    })
}

/// One figure file stem per metric, each unique: two names that differ only in characters a
/// file name cannot hold (`bleu score`, `bleu_score`) or in case (one file on a case-insensitive
/// disk), or a name ending in `-by-cost`, would otherwise share a file, one figure silently
/// overwriting the other. A later metric whose stem is taken gets `-2`, `-3`, ….
fn figure_stems(metrics: &[String]) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    let mut stems = Vec::with_capacity(metrics.len());
    for metric in metrics {
        let base = file_stem(metric);
        let mut stem = base.clone();
        let clashes = |stem: &str, taken: &std::collections::HashSet<String>| {
            let stem = stem.to_lowercase();
            taken.contains(&stem) || taken.contains(&format!("{stem}-by-cost"))
        };
        let mut n = 2;
        while clashes(&stem, &taken) {
            stem = format!("{base}-{n}");
            n += 1;
        }
        taken.insert(stem.to_lowercase());
        taken.insert(format!("{}-by-cost", stem.to_lowercase()));
        stems.push(stem);
    }
    stems
}

/// A metric name made safe as a file name.
fn file_stem(metric: &str) -> String {
    metric
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
