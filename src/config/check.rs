//! `lab check FILE...`: validate files without running anything. The dispatch on file
//! extension lives in `check_file` alone, so other file kinds plug in there.
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

use super::{find_problems, Experiment};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  lab check experiments/quickstart.toml               keys, metrics, scripts, params, data, paths\n  lab check experiments/*.toml strategies/huds.rhai\n\nEvery problem found is reported, not only the first. The data is read (every row, as `lab run` reads it); no model is loaded and nothing is trained; a script is run on a synthetic pool (more than once, to check it is deterministic). The exit status is non-zero if any file has a problem."
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
    let extension = path.extension().and_then(|e| e.to_str());
    // A file of a kind not checked is told so below, unless its name is a typo of a file's.
    let checked_kind = matches!(extension, None | Some("toml" | "rhai"));
    if !path.exists() && (checked_kind || super::file_text::nearest_file(path).is_some()) {
        let (what, otherwise) = match extension {
            Some("toml") => (
                "experiment file",
                ": pass the path of an experiment .toml file",
            ),
            Some("rhai") => (
                "strategy script",
                ": `lab strategies` lists those in strategies/",
            ),
            _ => ("file", ""),
        };
        bail!("{}", super::missing_file(what, path, otherwise));
    }
    if path.is_dir() {
        let dir = path.display().to_string();
        let dir = dir.trim_end_matches('/');
        bail!("{dir} is a folder: pass the files in it, e.g. lab check {dir}/*.toml {dir}/*.rhai");
    }
    match extension {
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

/// What `lab bench` needs before it runs anything: `check_experiment`'s verdict (an error
/// when the file has problems) and, for a sound file, why this binary or machine cannot run
/// it (a `model.device` it lacks), or `None` when it can.
pub fn check_experiment_for_bench(path: &Path, base_dir: &Path) -> Result<Option<String>> {
    let (exp, _) = check_experiment_file(path, base_dir)?;
    Ok(crate::models::device::unusable_device(exp.model.device)
        .map(|problem| format!("`model.device`: {problem}")))
}

fn check_experiment_file(path: &Path, base_dir: &Path) -> Result<(Experiment, String)> {
    let text = super::read_experiment_text(path)?;
    // Every problem is gathered before reporting: the file's structural ones, the semantic
    // ones of the tables they leave alone, then the checks of models, data and scripts whose
    // tables are sound (a table with a problem is checked further once it is fixed).
    let found = find_problems(&text, path, Some(crate::metrics::registry::names()))?;
    let mut problems = found.lines;
    let troubled = found.keys;
    let sound = |sections: &[&str]| {
        !troubled.iter().any(|key| {
            let section = key.split(['.', '[']).next().unwrap_or(key);
            sections.contains(&section)
        })
    };
    let exp = found.experiment;
    if sound(&["model", "encoder"]) {
        if let Err(e) = crate::runner::experiment::check_model_names(&exp) {
            problems.push(format!("{e:#}"));
        }
        problems.extend(super::model_paths::model_path_problems(&exp, base_dir));
    }
    let mut pool = None;
    if sound(&["data"]) {
        match check_files_and_rows(&exp, path, base_dir) {
            Ok(n) => {
                pool = Some(n);
                if let Some(problem) = init_size_problem(&exp, n).filter(|_| sound(&["al"])) {
                    problems.push(problem);
                }
            }
            Err(e) => problems.push(format!("checking the data of {}: {e:#}", path.display())),
        }
    }
    if sound(&["strategy", "sandbox"]) {
        if let Err(e) =
            crate::strategy::experiment_scripts::check_experiment_scripts(&exp, path, base_dir)
        {
            problems.push(format!("{e:#}"));
        }
        if let Some(pool) = pool.filter(|_| sound(&["al"])) {
            problems.extend(ed_subsample_problems(&exp, pool, base_dir));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    let summary = format!(
        "{} × {}",
        count(exp.strategies.len(), "strategy", "strategies"),
        count(exp.seeds.len(), "seed", "seeds")
    );
    Ok((exp, summary))
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The data files exist, and the data loads as `lab run` would load it: every row
/// maps to an example, `data.test_size` and `data.pool_size` fit the splits. Returns the
/// pool's size.
fn check_files_and_rows(exp: &Experiment, file: &Path, base_dir: &Path) -> Result<usize> {
    // Data is looked for where `lab run` looks: here, then beside the experiment file.
    let data_base = if base_dir == Path::new(".") {
        crate::data::layout::experiment_data_base(&exp.data.path, file)
    } else {
        base_dir.to_path_buf()
    };
    let data = resolve(&data_base, &exp.data.path);
    if !data.exists() {
        bail!(
            "`data.path` = {} does not exist{}",
            exp.data.path.display(),
            match super::nearest_entry(&data) {
                Some(near) => format!("; did you mean {near}?"),
                None => " (a relative path is read from the directory you run `lab` in, then \
                         from the experiment file's folder)"
                    .to_string(),
            }
        );
    }
    Ok(crate::data::load_dataset(&exp.data, &data_base)?
        .train
        .len())
}

/// An `al.init_size` count larger than the pool: the first iteration would label the whole
/// pool and stop (`lab run` refuses it after loading the data).
pub fn init_size_problem(exp: &Experiment, pool: usize) -> Option<String> {
    match exp.al.init_size {
        crate::config::Size::Count(init) if init > pool => Some(format!(
            "`al.init_size` in {}: is {init} but the pool has only {pool} items: the first \
             iteration would label the whole pool and stop; lower it (or use a fraction like 0.1)",
            crate::config::diagnose::location(exp.source.as_ref(), "al.init_size")
        )),
        _ => None,
    }
}

/// `ed` strategies whose `pool_subsample` is smaller than the labels they select at once
/// (`lab run` refuses them as their cells start). A script that cannot be read is left to
/// the scripts' own check.
pub fn ed_subsample_problems(exp: &Experiment, pool: usize, base_dir: &Path) -> Vec<String> {
    exp.strategies
        .iter()
        .enumerate()
        .filter(|(_, s)| s.pool_subsample.is_some())
        .filter(|(_, s)| {
            crate::strategy::registry::describe(&resolve(base_dir, &s.script_path()))
                .is_ok_and(|d| d.kind == "ed")
        })
        .filter_map(|(i, s)| {
            let problem = crate::runner::ed_order::ed_subsample_problem(exp, s, pool)?;
            let key = format!("strategy[{i}].pool_subsample");
            let place = crate::config::diagnose::location(exp.source.as_ref(), &key);
            Some(format!("`{key}` in {place}: {problem}"))
        })
        .collect()
}

/// `path` as read from `base_dir`; `.` is left out so messages show the path as written.
fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if base_dir == Path::new(".") {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}
