//! `lab check FILE...`: validate files without running anything. The dispatch on file
//! extension lives in `check_file` alone, so other file kinds plug in there.
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

use super::{parse_experiment, validate_with, Experiment};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  lab check experiments/quickstart.toml          every key, metric, script and param; data and model paths\n  lab check experiments/*.toml strategies/huds.rhai\n\nNo model or data is loaded and nothing is trained; a script is run once on a synthetic pool (twice, to check it is deterministic). The exit status is non-zero if any file has a problem."
)]
pub struct CheckArgs {
    /// Experiment files (.toml) and strategy scripts (.rhai) to validate.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: &CheckArgs) -> Result<()> {
    let mut failed = 0;
    for file in &args.files {
        match check_file(file) {
            Ok(summary) => println!("ok: {} ({summary})", file.display()),
            Err(e) => {
                failed += 1;
                eprintln!("FAILED: {}", file.display());
                for line in format!("{e:#}").lines() {
                    eprintln!("  {line}");
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} file(s) failed the check", args.files.len());
    }
    Ok(())
}

/// Check one file by its kind; returns a one-line summary.
pub fn check_file(path: &Path) -> Result<String> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => check_experiment(path, Path::new(".")),
        Some("rhai") => crate::strategy::cli::check_script(path),
        other => bail!(
            "{}: cannot check {} files; supported: .toml (experiment files) and .rhai (strategy scripts)",
            path.display(),
            other.map_or("extension-less".to_string(), |e| format!("`.{e}`"))
        ),
    }
}

/// Validate an experiment file completely, including that the files it names exist
/// (relative paths resolve against `base_dir`, the directory `lab` runs in).
pub fn check_experiment(path: &Path, base_dir: &Path) -> Result<String> {
    let (exp, summary) = check_experiment_file(path, base_dir)?;
    // The file is fine; whether this binary can run it on this machine is worth a word.
    Ok(
        match crate::models::device::unusable_device(exp.model.device) {
            Some(problem) => format!("{summary}; note: `model.device`: {problem}"),
            None => summary,
        },
    )
}

/// `check_experiment`, and also refuse a `model.device` this binary or machine cannot use:
/// what `lab bench` needs before it runs anything.
pub fn check_experiment_runnable(path: &Path, base_dir: &Path) -> Result<String> {
    let (exp, summary) = check_experiment_file(path, base_dir)?;
    if let Some(problem) = crate::models::device::unusable_device(exp.model.device) {
        bail!("`model.device`: {problem}");
    }
    Ok(summary)
}

fn check_experiment_file(path: &Path, base_dir: &Path) -> Result<(Experiment, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read experiment file {}", path.display()))?;
    // Parse, then validate once with the registry, so every problem is reported together.
    let exp = parse_experiment(&text, path)?;
    validate_with(&exp, crate::metrics::registry::names())?;
    crate::runner::experiment::check_model_names(&exp)
        .with_context(|| format!("in {}", path.display()))?;
    check_files_exist(&exp, path, base_dir)
        .with_context(|| format!("checking the data and model files of {}", path.display()))?;
    crate::strategy::experiment_scripts::check_experiment_scripts(&exp, path, base_dir)?;
    let summary = format!(
        "{} strategies × {} seeds",
        exp.strategies.len(),
        exp.seeds.len()
    );
    Ok((exp, summary))
}

fn check_files_exist(exp: &Experiment, file: &Path, base_dir: &Path) -> Result<()> {
    // Data is looked for where `lab run` looks: here, then beside the experiment file.
    let data_base = if base_dir == Path::new(".") {
        crate::data::layout::experiment_data_base(&exp.data.path, file)
    } else {
        base_dir.to_path_buf()
    };
    let data = resolve(&data_base, &exp.data.path);
    if !data.exists() {
        bail!(
            "`data.path` = {} does not exist (a relative path is read from the directory you \
             run `lab` in, then from the experiment file's folder)",
            exp.data.path.display()
        );
    }
    // The split files as `lab run` finds them (no rows read): a missing `data.test`, an
    // ambiguous folder or a file serving two splits fails here, not after `lab run` starts.
    crate::data::find_split_files(&exp.data, &data_base)?;
    if let Some(model) = &exp.model.path {
        let model = resolve(base_dir, model);
        if !model.exists() {
            bail!("`model.path` = {} does not exist", model.display());
        }
    }
    Ok(())
}

/// `path` as read from `base_dir`; `.` is left out so messages show the path as written.
fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if base_dir == Path::new(".") {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}
