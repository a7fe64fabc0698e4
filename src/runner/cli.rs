//! `lab run`, `lab bench` and `lab select`.
use crate::runner::experiment::{run_experiment, RunOptions};
use crate::runner::shard::Shard;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  lab run experiments/quickstart.toml                   every strategy x seed, resumable\n  lab run experiments/quickstart.toml --strategy idds   one strategy (by its results key)\n  lab run experiments/quickstart.toml --fresh --profile  start over; time each iteration's parts\n\nResults go to <results_dir>/<name>/<strategy>/seed-<n>/ (results_dir defaults to results/); a killed run resumes where it stopped when run again."
)]
pub struct RunArgs {
    /// The experiment file (see experiments/quickstart.toml).
    pub experiment: PathBuf,
    /// Start every cell over instead of resuming finished iterations.
    #[arg(long)]
    pub fresh: bool,
    /// Run only these strategies (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub strategy: Vec<String>,
    /// Print seconds per iteration and phase (training, pool generation, scoring, embeddings,
    /// strategy script, evaluation, labelling); with LAB_GEMM_TRACE=1 also every product
    /// shape's calls, seconds and GFLOP/s.
    #[arg(long)]
    pub profile: bool,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  lab bench experiments/*.toml                 check every file, then run them one after another\n  lab bench experiments/*.toml --shard 2/4     this machine's quarter of the cells (deterministic)\n\nEach experiment's report.md, summary.csv and figures are written when its cells are done. Any file with a problem stops the batch before it starts; a sound file this build cannot run (device = \"cuda\" without --features cuda) is skipped and named, the others run, and the exit status is non-zero."
)]
pub struct BenchArgs {
    /// Experiment files, e.g. experiments/*.toml.
    #[arg(required = true)]
    pub experiments: Vec<PathBuf>,
    /// Run a deterministic 1/N of the (experiment, strategy, seed) cells: `--shard 2/4`.
    #[arg(long, value_name = "I/N", allow_hyphen_values = true, value_parser = crate::runner::shard::parse_shard_flag)]
    pub shard: Option<Shard>,
    /// Start every cell over instead of resuming finished iterations.
    #[arg(long)]
    pub fresh: bool,
    /// Print seconds per iteration and phase (training, pool generation, scoring, embeddings,
    /// strategy script, evaluation, labelling); with LAB_GEMM_TRACE=1 also every product
    /// shape's calls, seconds and GFLOP/s.
    #[arg(long)]
    pub profile: bool,
}

pub fn run(args: &RunArgs) -> Result<()> {
    let opts = RunOptions {
        fresh: args.fresh,
        profile: args.profile,
        only_strategies: args.strategy.clone(),
        ..RunOptions::default()
    };
    let out = run_experiment(&args.experiment, &opts)?;
    for c in &out.cells {
        println!("{}", crate::runner::experiment::cell_line(c));
    }
    for (strategy, seed, _) in &out.failed {
        println!("{strategy:<20} seed {seed:<3} FAILED (the error is above)");
    }
    let cells = out.cells.len() + out.failed.len();
    println!(
        "{}: {cells} {}; results in {} (report.md, summary.csv, figures)",
        out.name,
        if cells == 1 { "cell" } else { "cells" },
        out.results_dir.display()
    );
    match out.failure() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let opts = RunOptions {
        fresh: args.fresh,
        shard: args.shard,
        profile: args.profile,
        ..RunOptions::default()
    };
    // Every file is checked before any runs: a typo in the last of many files must not
    // surface hours later, after the others ran. A sound file this build cannot run (a CUDA
    // experiment on a CPU build) is skipped, so `experiments/*.toml` runs what it can.
    let mut problems = Vec::new();
    let mut skipped = Vec::new();
    let mut runnable = Vec::new();
    for file in &args.experiments {
        match crate::config::check::check_experiment_for_bench(file, std::path::Path::new(".")) {
            Err(e) => problems.push(format!("{}: {e:#}", file.display())),
            Ok(Some(reason)) => skipped.push(format!("{}: {reason}", file.display())),
            Ok(None) => runnable.push(file),
        }
    }
    if !problems.is_empty() {
        anyhow::bail!(
            "{} of {} experiment files have problems, so nothing was run:\n\n{}",
            problems.len(),
            args.experiments.len(),
            problems.join("\n\n")
        );
    }
    if runnable.is_empty() {
        anyhow::bail!(
            "this build can run none of the {} experiment files:\n\n{}",
            args.experiments.len(),
            skipped.join("\n\n")
        );
    }
    for s in &skipped {
        eprintln!("skipping {s}");
    }
    let mut rows = Vec::new();
    let mut failures = 0;
    for file in runnable {
        match run_experiment(file, &opts) {
            Ok(out) => {
                for c in &out.cells {
                    rows.push(format!(
                        "{:<24} {}",
                        out.name,
                        crate::runner::experiment::cell_line(c)
                    ));
                }
                for (strategy, seed, e) in &out.failed {
                    rows.push(format!(
                        "{:<24} {strategy:<20} seed {seed:<3} FAILED: {e}",
                        out.name
                    ));
                }
                if !out.failed.is_empty() {
                    failures += 1;
                }
            }
            Err(e) => {
                failures += 1;
                rows.push(format!("{:<24} FAILED: {e:#}", file.display()));
            }
        }
    }
    println!("\n{}", rows.join("\n"));
    let mut unfinished = Vec::new();
    if failures > 0 {
        unfinished.push(format!(
            "{failures} of {} experiment files failed or had failed cells (see above)",
            args.experiments.len()
        ));
    }
    if !skipped.is_empty() {
        // Exit non-zero all the same: a batch script must not take skipped files as run.
        unfinished.push(format!(
            "{} of {} experiment files were skipped, as this build cannot run them:\n{}",
            skipped.len(),
            args.experiments.len(),
            skipped.join("\n")
        ));
    }
    if !unfinished.is_empty() {
        anyhow::bail!("{}", unfinished.join("\n"));
    }
    Ok(())
}
