//! One cell's results folder, `results/<experiment>/<strategy>/seed-<n>/`, written so that a
//! crash at any moment leaves a resumable state.
//!
//! Each iteration writes, every file atomically: `generations/iter-<t>.jsonl`, then
//! `curve.csv` and `selected.jsonl` (rewritten with the new row/line appended), then
//! `state.json` last. state.json is the commit point: on resume, curve rows, selection lines
//! and generation files beyond what it records are dropped, so half-written iterations vanish.
use crate::runner::crash_point;
use crate::runner::curve::{Curve, CurveRow};
use crate::runner::fresh::{remove_cell_trash, reset_cell};
use crate::runner::reconcile;
use crate::runner::state::CellState;
use crate::util::atomic_write_string;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The files of one (experiment, strategy, seed) cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellPaths {
    pub dir: PathBuf,
}

impl CellPaths {
    pub fn new(results_dir: &Path, experiment: &str, strategy: &str, seed: u64) -> Self {
        CellPaths {
            dir: results_dir
                .join(experiment)
                .join(strategy)
                .join(format!("seed-{seed}")),
        }
    }
    /// The cell of `strategy` (by its results key) and `seed` under the experiment's
    /// results folder.
    pub fn for_cell(exp: &crate::config::Experiment, strategy_key: &str, seed: u64) -> Self {
        CellPaths::new(&exp.results_dir, &exp.name, strategy_key, seed)
    }
    /// The strategy's results key: the name of the folder above `seed-<n>`.
    pub fn strategy_key(&self) -> String {
        self.dir
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    pub fn curve(&self) -> PathBuf {
        self.dir.join("curve.csv")
    }
    pub fn selected(&self) -> PathBuf {
        self.dir.join("selected.jsonl")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn generations_dir(&self) -> PathBuf {
        self.dir.join("generations")
    }
    pub fn generations(&self, iteration: usize) -> PathBuf {
        self.generations_dir()
            .join(format!("iter-{iteration}.jsonl"))
    }
}

/// One line of selected.jsonl: the ids added at an iteration (the initial set at 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectedLine {
    pub iteration: usize,
    pub ids: Vec<u64>,
    /// The strategy's score per id, when it has one (NaN is written as null).
    pub scores: Option<Vec<Option<f64>>>,
}

impl SelectedLine {
    pub fn new(iteration: usize, ids: Vec<u64>, scores: Option<Vec<f64>>) -> Self {
        let scores = scores.map(|s| s.into_iter().map(|v| v.is_finite().then_some(v)).collect());
        SelectedLine {
            iteration,
            ids,
            scores,
        }
    }
}

/// One line of `generations/iter-<t>.jsonl`: a test example's prediction and its scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationRecord {
    pub id: u64,
    pub prediction: String,
    pub references: Vec<String>,
    /// Per-example metric values in the configured metric order (null: not computable).
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

impl GenerationRecord {
    pub fn new(
        id: u64,
        prediction: String,
        references: Vec<String>,
        metrics: &[(&str, f64)],
    ) -> Self {
        let metrics = metrics
            .iter()
            .map(|(name, v)| {
                let value = serde_json::Number::from_f64(*v)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number);
                (name.to_string(), value)
            })
            .collect();
        GenerationRecord {
            id,
            prediction,
            references,
            metrics,
        }
    }
}

/// Everything one finished iteration adds to the cell's files.
pub struct IterationRecord<'a> {
    pub curve_row: &'a CurveRow,
    pub selected: &'a SelectedLine,
    pub generations: &'a [GenerationRecord],
}

/// Write one finished iteration and the state after it. `metrics` are the curve's metric
/// columns (the experiment's configured order); `state.iterations_done` must be the row's
/// iteration + 1.
pub fn append_iteration(
    paths: &CellPaths,
    metrics: &[String],
    record: &IterationRecord<'_>,
    state: &CellState,
) -> Result<()> {
    write_iteration_files(paths, metrics, record, state, usize::MAX)
}

/// The writes of `append_iteration` in order; `steps` limits how many happen, so tests can
/// stop between any two files as a crash would.
fn write_iteration_files(
    paths: &CellPaths,
    metrics: &[String],
    record: &IterationRecord<'_>,
    state: &CellState,
    steps: usize,
) -> Result<()> {
    let t = record.curve_row.iteration;
    if record.selected.iteration != t {
        bail!(
            "internal error: selection of iteration {} written with the curve row of iteration {t}",
            record.selected.iteration
        );
    }
    if state.iterations_done != t + 1 {
        bail!(
            "internal error: state records {} finished iterations after writing iteration {t}",
            state.iterations_done
        );
    }
    if steps == 0 {
        return Ok(());
    }
    let mut generations = String::new();
    for g in record.generations {
        generations.push_str(&serde_json::to_string(g).context("cannot serialise a generation")?);
        generations.push('\n');
    }
    atomic_write_string(&paths.generations(t), &generations)?;
    crash_point::reached("generations-written");
    if steps == 1 {
        return Ok(());
    }
    let mut curve = read_curve_or_new(paths, metrics)?;
    curve.rows.retain(|r| r.iteration < t);
    curve.push(record.curve_row.clone())?;
    atomic_write_string(&paths.curve(), &curve.to_csv_string())?;
    crash_point::reached("curve-written");
    if steps == 2 {
        return Ok(());
    }
    let mut lines = read_selected(paths)?;
    lines.retain(|l| l.iteration < t);
    lines.push(record.selected.clone());
    atomic_write_string(&paths.selected(), &selected_text(&lines)?)?;
    crash_point::reached("selected-written");
    if steps == 3 {
        return Ok(());
    }
    atomic_write_string(&paths.state(), &state.to_json()?)?;
    crash_point::reached("state-written");
    Ok(())
}

/// Write the final state of a cell (finished, stop reason) without a new iteration.
pub fn write_state(paths: &CellPaths, state: &CellState) -> Result<()> {
    atomic_write_string(&paths.state(), &state.to_json()?)
}

/// The cell's state.json, or `None` when the cell has not finished an iteration.
pub fn load_state(paths: &CellPaths) -> Result<Option<CellState>> {
    let path = paths.state();
    match std::fs::read_to_string(&path) {
        Ok(text) => CellState::parse(&text, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Load the state and bring the other files back to what it records: curve rows, selection
/// lines and generation files of unfinished iterations are removed. Without a state.json,
/// leftovers of a first iteration that never finished are removed and `None` is returned.
pub fn resume_cell(paths: &CellPaths) -> Result<Option<CellState>> {
    let state = load_state(paths)?;
    let done = state.as_ref().map_or(0, |s| s.iterations_done);
    if paths.curve().exists() {
        let mut curve = Curve::read(&paths.curve())?;
        if done == 0 {
            remove_file(&paths.curve())?;
        } else {
            let have = curve.rows.iter().filter(|r| r.iteration < done).count();
            if have != done {
                bail!(
                    "{} has {have} rows for the {done} iterations state.json records as \
                     finished; the results were edited or damaged: rerun with --fresh",
                    paths.curve().display()
                );
            }
            if curve.rows.len() != done {
                curve.rows.retain(|r| r.iteration < done);
                atomic_write_string(&paths.curve(), &curve.to_csv_string())?;
            }
        }
    } else if done > 0 {
        bail!(
            "{} is missing but state.json records {done} finished iterations: rerun with --fresh",
            paths.curve().display()
        );
    }
    if paths.selected().exists() {
        let mut lines = read_selected(paths)?;
        let before = lines.len();
        lines.retain(|l| l.iteration < done);
        if lines.is_empty() {
            remove_file(&paths.selected())?;
        } else if lines.len() != before {
            atomic_write_string(&paths.selected(), &selected_text(&lines)?)?;
        }
    }
    remove_generations_from(paths, done)?;
    remove_stale_temporaries(&paths.dir)?;
    remove_stale_temporaries(&paths.generations_dir())?;
    // A human labeller's pending.json is written there (the web app only appends labels).
    remove_stale_temporaries(&crate::labeller::human::annotation_dir(&paths.dir))?;
    crash_point::reached("resume-trimmed");
    Ok(state)
}

/// Held while a process runs a cell, so two runs of one experiment (a second terminal, the
/// web form, overlapping shards) never write the same cell at once.
#[derive(Debug)]
pub struct CellLock {
    _file: std::fs::File,
}

/// Take the cell's lock: `<strategy>/seed-<n>.lock`, beside the cell folder so `--fresh`
/// can remove the folder while holding it. The file stays; only the OS lock matters.
pub fn lock_cell(paths: &CellPaths) -> Result<CellLock> {
    let path = paths.dir.with_extension("lock");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create folder {}", parent.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    // `lab serve` probes the lock for a moment to tell a stopped run from a running one:
    // wait that out before calling the cell taken.
    let mut tries = 0;
    let taken = loop {
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other,
        }
    };
    match taken {
        Ok(()) => Ok(CellLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "{} is being run by another lab process right now (it holds {}); wait for it to \
             finish or stop it, then run again — two runs writing one cell would mix results",
            paths.dir.display(),
            path.display()
        ),
        // A file system without locks (some network mounts): run unguarded, as before.
        Err(std::fs::TryLockError::Error(_)) => Ok(CellLock { _file: file }),
    }
}

/// Whether a `lab run` holds the cell's lock right now: `Some(false)` for a cell no run
/// works on (a stopped run), `None` when unknown (no lock support). Probed with a shared lock
/// released at once; `lock_cell` waits such a probe out.
pub fn run_holds_cell(cell_dir: &Path) -> Option<bool> {
    let file = match std::fs::File::open(cell_dir.with_extension("lock")) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(false),
        Err(_) => return None,
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Some(false)
        }
        Err(std::fs::TryLockError::WouldBlock) => Some(true),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// Start or continue a cell: with `fresh` wipe it; otherwise refuse to mix results of a
/// different configuration, and, for a strategy that `plans_ahead` from the stopping
/// criteria, of different stopping criteria. Writes `config_toml` (the cell's resolved
/// configuration, no secrets) and returns the resumed state, if any.
pub fn prepare_cell(
    paths: &CellPaths,
    config_toml: &str,
    fresh: bool,
    plans_ahead: bool,
) -> Result<Option<CellState>> {
    // A --fresh killed after moving the cell aside: its old results, never to be read again.
    remove_cell_trash(paths)?;
    let mut previous = None;
    if fresh {
        reset_cell(paths)?;
    } else if !paths.config().exists() && paths.state().exists() {
        // reset_cell moves the whole folder aside at once, so this is damage, not an
        // interrupted --fresh.
        bail!(
            "{} has a state.json but no config.toml, so what it was run with is unknown: \
             rerun with --fresh to start this cell over",
            paths.dir.display()
        );
    } else if let Ok(old) = std::fs::read_to_string(paths.config()) {
        if old != config_toml && paths.state().exists() {
            let diffs = reconcile::result_differences(&old, config_toml, &paths.strategy_key())
                .with_context(|| format!("comparing with {}", paths.config().display()))?;
            if !diffs.is_empty() {
                // A change to this strategy's own entry leaves the other strategies' cells
                // valid: start over only its cells.
                let fresh = if diffs.iter().all(|d| d.starts_with("strategy[")) {
                    format!("--fresh --strategy {}", paths.strategy_key())
                } else {
                    "--fresh".to_string()
                };
                bail!(
                    "{} was written by a different configuration ({} changed); rerun with \
                     {fresh} to start over, or restore the experiment file",
                    paths.config().display(),
                    diffs.join(", "),
                );
            }
        }
        // Before config.toml is rewritten: a refused run must leave the cell as it was.
        if plans_ahead && paths.state().exists() && reconcile::stopping_changed(&old, config_toml) {
            bail!(
                "the [al] stopping criteria changed since {} was started, and its strategy \
                 plans its selections from them (it selects the whole budget at once, or reads \
                 ctx.planned_iterations), so continuing would not give what a fresh run gives: \
                 rerun with --fresh --strategy {} to redo it, or restore the stopping criteria",
                paths.dir.display(),
                paths.strategy_key()
            );
        }
        previous = Some(old);
    }
    let mut state = resume_cell(paths)?;
    if let (Some(st), Some(old)) = (state.as_mut(), previous) {
        if reconcile::stopping_changed(&old, config_toml)
            && reconcile::restop(paths, st, config_toml)?
        {
            write_state(paths, st)?;
            crash_point::reached("restop-written");
        }
    }
    // Last: until the new configuration is stored, a killed run compares against the old one
    // again next time and re-opens or closes the cell then.
    atomic_write_string(&paths.config(), config_toml)?;
    crash_point::reached("config-written");
    Ok(state)
}

/// The selection lines written so far.
pub fn read_selected(paths: &CellPaths) -> Result<Vec<SelectedLine>> {
    let path = paths.selected();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| {
                format!(
                    "{} line {} is not a selection record",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

/// The generations of one iteration.
pub fn read_generations(paths: &CellPaths, iteration: usize) -> Result<Vec<GenerationRecord>> {
    let path = paths.generations(iteration);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| {
                format!(
                    "{} line {} is not a generation record",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

fn read_curve_or_new(paths: &CellPaths, metrics: &[String]) -> Result<Curve> {
    if !paths.curve().exists() {
        return Ok(Curve::new(metrics.to_vec()));
    }
    let curve = Curve::read(&paths.curve())?;
    if curve.metrics != metrics {
        bail!(
            "{} has metric columns [{}] but the experiment evaluates [{}]: rerun with --fresh",
            paths.curve().display(),
            curve.metrics.join(", "),
            metrics.join(", ")
        );
    }
    Ok(curve)
}

fn selected_text(lines: &[SelectedLine]) -> Result<String> {
    let mut out = String::new();
    for l in lines {
        out.push_str(&serde_json::to_string(l).context("cannot serialise a selection")?);
        out.push('\n');
    }
    Ok(out)
}

fn remove_generations_from(paths: &CellPaths, first: usize) -> Result<()> {
    let dir = paths.generations_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        let iteration = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("iter-"))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<usize>().ok());
        if iteration.is_some_and(|t| t >= first) {
            remove_file(&path)?;
        }
    }
    Ok(())
}

/// Atomic writes go through `.tmp*` files beside the target; a kill mid-write leaves one.
/// In a cell folder (its lock held) every one is stale.
fn remove_stale_temporaries(dir: &Path) -> Result<()> {
    crate::util::atomic::remove_stale_temporaries(dir, std::time::Duration::ZERO)
}

fn remove_file(path: &Path) -> Result<()> {
    std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))
}

#[cfg(test)]
#[path = "persist_tests.rs"]
mod tests;
