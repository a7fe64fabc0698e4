//! Experiment level: load the file and its data, make sure the models are there, run every
//! (strategy, seed) cell of this shard, then aggregate the results into the report.
use crate::config::{load_experiment, Experiment};
use crate::data::{load_dataset, Dataset};
use crate::runner::cell::{run_cell, CellOutcome, ExperimentContext};
use crate::runner::host::LazyEncoder;
use crate::runner::shard::{shard_cells, Cell, Shard};
use crate::runner::Profile;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub fresh: bool,
    pub shard: Option<Shard>,
    pub profile: bool,
    /// Run only these strategies (names), all when empty.
    pub only_strategies: Vec<String>,
    /// Skip the report at the end (bench writes it once per experiment itself).
    pub no_report: bool,
}

pub struct ExperimentOutcome {
    pub name: String,
    pub results_dir: PathBuf,
    pub cells: Vec<CellOutcome>,
    /// Cells that ended in an error, `(strategy, seed, error)`; the others still ran.
    pub failed: Vec<(String, u64, String)>,
}

impl ExperimentOutcome {
    /// The error to exit with when a cell failed.
    pub fn failure(&self) -> Option<anyhow::Error> {
        (!self.failed.is_empty()).then(|| {
            anyhow::anyhow!(
                "{} of {} {} of {} failed (their finished iterations are kept; rerun to \
                 resume them once fixed): {}",
                self.failed.len(),
                self.failed.len() + self.cells.len(),
                if self.failed.len() + self.cells.len() == 1 {
                    "cell"
                } else {
                    "cells"
                },
                self.name,
                self.failed
                    .iter()
                    .map(|(s, seed, _)| format!("{s}/seed-{seed}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }
}

/// The dataset as the experiment sees it (paths relative to the current directory first,
/// then to the experiment file's folder).
pub fn load_experiment_data(exp: &Experiment, file: &Path) -> Result<Dataset> {
    let base = crate::data::layout::find_experiment_data_base(&exp.data.path, file)?;
    load_dataset(&exp.data, &base)
        .with_context(|| format!("loading the data of {}", file.display()))
}

/// `model.name` and `encoder.name` name models this build knows (a default model, or a tiny
/// in-process family), when no path or hub id replaces them. Checked without loading
/// anything, by `lab check` too.
pub fn check_model_names(exp: &Experiment) -> Result<()> {
    use crate::models::decoder_config::Family;
    use crate::models::encoder::DEFAULT_ENCODER;
    let prefix = crate::runner::TINY_MODEL_PREFIX;
    let tiny_names: Vec<String> = ["llama", "qwen2", "qwen3", "gemma3"]
        .iter()
        .map(|family| format!("{prefix}{family}"))
        .collect();
    let known: Vec<String> = crate::models::setup::known_models()
        .into_iter()
        .map(|m| m.name)
        .collect();
    let (encoders, mut decoders): (Vec<String>, Vec<String>) =
        known.into_iter().partition(|n| n == DEFAULT_ENCODER);
    let default_decoders = decoders.join(", ");
    decoders.extend(tiny_names.iter().cloned());
    let source = exp.source.as_ref();
    let mut problems = Vec::new();
    let m = &exp.model;
    if m.path.is_none() && m.hub_id.is_none() {
        let tiny_known = m
            .name
            .strip_prefix(prefix)
            .is_some_and(|family| Family::parse(family).is_some());
        if !tiny_known && !decoders.contains(&m.name) {
            let place = crate::config::diagnose::location(source, "model.name");
            let hint = crate::config::diagnose::did_you_mean(&m.name, &decoders);
            problems.push(format!(
                "`model.name` = {:?} in {place} is not a language model this lab knows; \
                 {hint}the default models are {default_decoders}, and the tiny in-process ones \
                 {} (set model.path to a folder or .gguf file, or model.hub_id, for any other)",
                m.name,
                tiny_names.join(", ")
            ));
        }
    }
    let e = &exp.encoder;
    if e.path.is_none() && e.hub_id.is_none() && !encoders.contains(&e.name) {
        let place = crate::config::diagnose::location(source, "encoder.name");
        let hint = crate::config::diagnose::did_you_mean(&e.name, &encoders);
        problems.push(format!(
            "`encoder.name` = {:?} in {place} is not an encoder this lab knows; {hint}the \
             default encoder is {} (set encoder.path to a folder holding model.safetensors, \
             config.json and tokenizer.json, or encoder.hub_id, for any other)",
            e.name,
            encoders.join(", ")
        ));
    }
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// The default models an experiment needs, fetched by `lab setup` when missing.
pub fn ensure_models(exp: &Experiment) -> Result<()> {
    let mut names: Vec<&str> = Vec::new();
    let tiny = exp.model.name.starts_with(crate::runner::TINY_MODEL_PREFIX);
    if exp.model.path.is_none() && exp.model.hub_id.is_none() && !tiny {
        names.push(exp.model.name.as_str());
    }
    if exp.encoder.path.is_none() && exp.encoder.hub_id.is_none() {
        names.push(exp.encoder.name.as_str());
    }
    crate::models::setup::ensure_default_models(&names)
}

/// Everything that can be found wrong before any data or model is loaded: the whole
/// validation (metric names included), strategy names asked for on the command line, and
/// that every strategy script exists and compiles. Found later, a typo would surface only
/// when its cell is reached, after the cells before it had run.
fn preflight(exp: &Experiment, file: &Path, opts: &RunOptions) -> Result<()> {
    crate::config::validate_with(exp, crate::metrics::registry::names())?;
    check_model_names(exp)?;
    // `lab bench` has checked these already; `lab run` had not, so a wrong encoder folder
    // surfaced only when a strategy first embedded, after the first training.
    let path_problems = crate::config::model_path_problems(exp, Path::new("."));
    if !path_problems.is_empty() {
        anyhow::bail!("{}", path_problems.join("\n"));
    }
    let keys: Vec<&str> = exp.strategies.iter().map(|s| s.key()).collect();
    for wanted in &opts.only_strategies {
        if !keys.contains(&wanted.as_str()) {
            let hint = crate::config::diagnose::did_you_mean(wanted, &keys);
            anyhow::bail!(
                "--strategy {wanted}: {} has no strategy `{wanted}`; {hint}its strategies are {}",
                file.display(),
                keys.join(", ")
            );
        }
    }
    crate::strategy::experiment_scripts::check_experiment_scripts(exp, file, Path::new("."))
}

pub fn run_experiment(file: &Path, opts: &RunOptions) -> Result<ExperimentOutcome> {
    let exp = load_experiment(file)?;
    preflight(&exp, file, opts)?;
    let dataset = load_experiment_data(&exp, file)?;
    let warnings = crate::metrics::registry::check_references(
        &exp.eval.metrics,
        &dataset.test,
        &dataset.source,
    )
    .with_context(|| format!("checking the data of {}", file.display()))?;
    for warning in warnings {
        eprintln!("warning: {}: {warning}", file.display());
    }
    // Sizes that cannot work on this pool are refused before any cell trains.
    let pool = dataset.train.len();
    let mut refusals: Vec<String> = crate::config::check::init_size_problem(&exp, pool)
        .into_iter()
        .collect();
    refusals.extend(crate::config::check::ed_subsample_problems(
        &exp,
        pool,
        Path::new("."),
    ));
    if !refusals.is_empty() {
        anyhow::bail!(
            "{} ({}):\n{}",
            file.display(),
            dataset.source,
            refusals.join("\n")
        );
    }
    ensure_models(&exp)?;
    crate::runner::remove_stale_embedding_temporaries()?;
    let base = crate::runner::load_model(&exp)?;
    check_fits_context(&exp, &base, file)?;
    let encoder = LazyEncoder::of(&exp);
    let profile = opts.profile.then(Profile::default);
    let judge = crate::labeller::factory::make_judge(&exp)?;
    let first_iterations = crate::runner::first_iteration::FirstIterations::default();
    let ctx = ExperimentContext {
        judge: judge.as_ref(),
        first_iterations: &first_iterations,
        exp: &exp,
        dataset: &dataset,
        base: &base,
        encoder: &encoder,
        profile: profile.as_ref(),
        data_fingerprint: dataset.fingerprint(),
    };
    let mut cells = Vec::new();
    for s in &exp.strategies {
        if !opts.only_strategies.is_empty() && !opts.only_strategies.iter().any(|n| n == s.key()) {
            continue;
        }
        for &seed in &exp.seeds {
            cells.push(Cell::new(&exp.name, s.key(), seed));
        }
    }
    if let Some(shard) = opts.shard {
        cells = shard_cells(&cells, shard);
    }
    let mut outcomes = Vec::new();
    let mut failed = Vec::new();
    for cell in &cells {
        let strategy = exp
            .strategies
            .iter()
            .find(|s| s.key() == cell.strategy)
            .expect("cells are built from the experiment's strategies");
        // One cell's failure (a script error at some iteration, a refused resume) must not
        // cost an overnight sweep every cell after it.
        match run_cell(&ctx, strategy, cell.seed, opts.fresh) {
            Ok(out) => outcomes.push(out),
            Err(e) => {
                let e = format!("{e:#}");
                eprintln!(
                    "error: {}/{}/seed-{} failed: {e}",
                    exp.name, cell.strategy, cell.seed
                );
                failed.push((cell.strategy.clone(), cell.seed, e));
            }
        }
    }
    if let Some(p) = &profile {
        println!(
            "seconds per iteration and phase ({}):\n{}",
            exp.name,
            p.table()
        );
        if crate::models::cpu_gemm::trace::enabled() {
            eprint!("{}", crate::models::cpu_gemm::trace::report());
        }
    }
    let results_dir = exp.results_dir.join(&exp.name);
    if !opts.no_report && results_dir.exists() {
        crate::runner::crash_point::reached("report-started");
        let report = crate::report::write_report(&results_dir, "random")
            .with_context(|| format!("writing the report of {}", results_dir.display()))?;
        crate::runner::crash_point::reached("report-written");
        for line in &report.mixed_settings {
            eprintln!("warning: {}: {line}", results_dir.display());
        }
        if let Some(note) = &report.uneven_ends {
            eprintln!("note: {}: {note}", results_dir.display());
        }
        for line in &report.unreadable {
            eprintln!("warning: {}: {line}", results_dir.display());
        }
        // The cells the report read: listing the folders again would read them twice.
        let strays = cells_not_in(&report.cells, &exp);
        if !strays.is_empty() {
            eprintln!(
                "note: {}: report.md also averages cells the experiment file no longer lists \
                 ({}); delete their folders to leave them out",
                results_dir.display(),
                strays.join(", ")
            );
        }
    }
    Ok(ExperimentOutcome {
        name: exp.name.clone(),
        results_dir,
        cells: outcomes,
        failed,
    })
}

/// A prompt of `model.max_input_tokens` plus `model.max_new_tokens` generated tokens must fit
/// in the model's context; found at the first generation it would end a run after training.
fn check_fits_context(
    exp: &Experiment,
    lm: &crate::models::lm::LanguageModel,
    file: &Path,
) -> Result<()> {
    let (input, new) = (exp.model.max_input_tokens, exp.model.max_new_tokens);
    let context = lm.decoder().max_positions();
    if input + new > context {
        anyhow::bail!(
            "{}: model.max_input_tokens = {input} plus model.max_new_tokens = {new} is {} \
             tokens, beyond {}; lower either so they sum to {context} or less",
            file.display(),
            input + new,
            lm.decoder().describe_context()
        );
    }
    Ok(())
}

/// Cells the report read (`(strategy, seed)`) whose strategy or seed the experiment no
/// longer has (the report reads every cell on disk).
fn cells_not_in(cells: &[(String, u64)], exp: &Experiment) -> Vec<String> {
    let mut strays: Vec<String> = cells
        .iter()
        .filter(|(name, seed)| {
            !(exp.strategies.iter().any(|s| s.key() == name) && exp.seeds.contains(seed))
        })
        .map(|(name, seed)| format!("{name}/seed-{seed}"))
        .collect();
    strays.sort();
    strays
}

/// The final line per cell: its last scores, labels and time.
pub fn cell_line(out: &CellOutcome) -> String {
    let scores: Vec<String> = out
        .final_scores
        .iter()
        .map(|(m, v)| format!("{m}={v:.4}"))
        .collect();
    let state = if out.skipped {
        " (already finished)"
    } else {
        ""
    };
    let reason = out
        .stop_reason
        .as_ref()
        .map(|r| format!(", stopped: {r}"))
        .unwrap_or_default();
    let iterations = crate::runner::progress::iteration_span(out.iterations);
    format!(
        "{:<20} seed {:<3} {}, {} labeled, {}{}{} [{:.0}s]",
        out.strategy,
        out.seed,
        iterations,
        out.labeled,
        scores.join(" "),
        reason,
        state,
        out.seconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_not_in_names_cells_of_strategies_or_seeds_no_longer_listed() {
        let text = "name = \"x\"\nseeds = [0, 1]\n[data]\npath = \"d\"\n\
                    [[strategy]]\nname = \"random\"\n\
                    [[strategy]]\nname = \"huds\"\nlabel = \"huds-b\"\n";
        let exp = crate::config::parse_experiment(text, Path::new("x.toml")).unwrap();
        let cells: Vec<(String, u64)> = [
            ("huds", 0),
            ("huds-b", 1),
            ("mnlp", 0),
            ("random", 0),
            ("random", 1),
            ("random", 2),
        ]
        .iter()
        .map(|(s, n)| (s.to_string(), *n))
        .collect();
        // `huds` runs under its label `huds-b`; seed 2 was dropped from the file.
        assert_eq!(
            cells_not_in(&cells, &exp),
            ["huds/seed-0", "mnlp/seed-0", "random/seed-2"]
        );
    }
}
