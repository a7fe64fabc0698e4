//! `lab report RESULTS_DIR`: re-aggregate and re-plot one experiment, or every experiment
//! below a results folder.
use crate::report::{load, write_report_with, ReportOptions, XAxis};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// An experiment's results folder (results/<experiment>) or a folder of them (results/).
    pub results_dir: PathBuf,
    /// X axis of the figures.
    #[arg(long, value_enum, default_value = "labeled")]
    pub x: XAxis,
    /// The strategy others are compared with [default: random]. Named explicitly, it must
    /// be a strategy of every experiment reported.
    #[arg(long)]
    pub reference: Option<String>,
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let options = ReportOptions {
        reference: args
            .reference
            .clone()
            .unwrap_or_else(|| ReportOptions::default().reference),
        x: args.x,
    };
    let dirs = experiment_dirs(&args.results_dir)?;
    // An explicit --reference that is not there is a typo or the wrong folder: refuse it
    // before writing anything. The default (`random`) may be absent; report.md says so.
    if let Some(wanted) = &args.reference {
        for dir in &dirs {
            check_reference(dir, wanted)?;
        }
    }
    let mut failed = Vec::new();
    // Reported, but with files of some cells that could not be read.
    let mut partial = Vec::new();
    for dir in &dirs {
        let summary = match write_report_with(dir, &options) {
            Ok(summary) => summary,
            Err(e) if dirs.len() == 1 => return Err(e),
            // One broken folder (a run that failed before its first row) must not keep the
            // others below results/ from being reported.
            Err(e) => {
                eprintln!("error: {}: {e:#}", dir.display());
                failed.push(dir.display().to_string());
                continue;
            }
        };
        for line in &summary.unreadable {
            eprintln!("error: {}: {line}", dir.display());
        }
        if !summary.unreadable.is_empty() {
            partial.push(format!(
                "{} ({})",
                dir.display(),
                counted(summary.unreadable.len(), "file", "files")
            ));
        }
        for line in &summary.mixed_settings {
            eprintln!("warning: {}: {line}", dir.display());
        }
        for line in &summary.unfinished {
            eprintln!("note: {}: {line}", dir.display());
        }
        if let Some(note) = &summary.uneven_ends {
            eprintln!("note: {}: {note}", dir.display());
        }
        for line in &summary.non_finite {
            eprintln!("note: {}: {line} (left out of the means)", dir.display());
        }
        println!(
            "report: {} ({}, {}) → {}",
            summary.experiment,
            counted(summary.strategies.len(), "strategy", "strategies"),
            counted(summary.metrics.len(), "metric", "metrics"),
            dir.join("report.md").display()
        );
    }
    let mut problems = Vec::new();
    if !failed.is_empty() {
        problems.push(format!(
            "{} of {} could not be reported (see above): {}",
            failed.len(),
            counted(dirs.len(), "experiment folder", "experiment folders"),
            failed.join(", ")
        ));
    }
    if !partial.is_empty() {
        problems.push(format!(
            "reported, but files of some cells could not be read (see above; report.md lists \
             them): {}",
            partial.join(", ")
        ));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// `n` and the noun that goes with it: `1 metric`, `2 metrics`.
fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Fail unless `wanted` is one of the strategies with curves in experiment folder `dir`.
fn check_reference(dir: &Path, wanted: &str) -> Result<()> {
    let curves = load::load_experiment_curves(dir)?;
    let present: Vec<&str> = curves
        .strategies
        .iter()
        .map(|s| s.strategy.as_str())
        .collect();
    if present.contains(&wanted) {
        return Ok(());
    }
    let hint = crate::config::diagnose::did_you_mean(wanted, &present);
    bail!(
        "--reference {wanted}: {} has no curves of strategy `{wanted}`; {hint}its strategies \
         are {}; pass one of them to --reference (or leave it out to compare with `random`)",
        dir.display(),
        present.join(", ")
    );
}

/// `dir` itself when it is an experiment folder, otherwise its experiment subfolders.
pub fn experiment_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        let advice = match crate::config::nearest_entry(dir) {
            Some(near) => format!("did you mean {near}?"),
            None => "pass results/<experiment> or results/".to_string(),
        };
        bail!("{} does not exist; {advice}", dir.display());
    }
    if !dir.is_dir() {
        bail!(
            "{} is not a folder: pass results/<experiment> or results/",
            dir.display()
        );
    }
    if load::is_experiment_dir(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.is_dir() && load::is_experiment_dir(&path) {
            found.push(path);
        }
    }
    found.sort();
    if found.is_empty() {
        bail!(
            "no experiment results in {}: expected <strategy>/seed-<n>/curve.csv below it or \
             below one of its folders",
            dir.display()
        );
    }
    Ok(found)
}
