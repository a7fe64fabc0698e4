//! Find and read every `<strategy>/seed-<n>/curve.csv` below an experiment folder.
use crate::runner::curve::Curve;
use crate::runner::state::CellState;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// One seed's curve.
#[derive(Clone, Debug)]
pub struct SeedCurve {
    pub seed: u64,
    pub path: PathBuf,
    pub curve: Curve,
    /// The cell's state.json, read once here for the curve and the report's notes.
    pub state: StateFile,
    /// The cell's config.toml as text: `Ok(None)` when there is none (a hand-made folder),
    /// `Err` with the reading error when it cannot be read. Read once here for the settings
    /// comparison and the damaged-files note.
    pub config: Result<Option<String>, String>,
}

/// What a cell's state.json holds.
#[derive(Clone, Debug)]
pub enum StateFile {
    /// No state.json (a hand-made folder).
    Missing,
    Read(Box<CellState>),
    /// It exists but cannot be read or parsed: the error, naming the file and what to do.
    Damaged(String),
}

/// Every seed of one strategy, sorted by seed.
#[derive(Clone, Debug)]
pub struct StrategyCurves {
    pub strategy: String,
    pub seeds: Vec<SeedCurve>,
}

/// A cell whose curve.csv exists but could not be read (edited or damaged: the runner
/// writes it atomically). The report leaves it out and says so.
#[derive(Clone, Debug)]
pub struct UnreadableCell {
    pub strategy: String,
    pub seed: u64,
    pub path: PathBuf,
    /// The reading error, naming the file (and line).
    pub error: String,
}

impl UnreadableCell {
    /// What report.md and stderr say about it: the error and what to do.
    pub fn describe(&self) -> String {
        let dir = self.path.parent().unwrap_or(&self.path);
        format!(
            "{}/seed-{} is left out: {}. Restore the file, or delete {} and rerun `lab run` \
             on the experiment file to compute the cell again",
            self.strategy,
            self.seed,
            self.error,
            dir.display()
        )
    }
}

/// All curves of one experiment.
#[derive(Clone, Debug)]
pub struct ExperimentCurves {
    pub name: String,
    pub dir: PathBuf,
    /// Sorted by strategy name.
    pub strategies: Vec<StrategyCurves>,
    /// Metric columns in the order of the first curve read, then any others in order seen.
    pub metrics: Vec<String>,
    /// Cells whose curve.csv could not be read, sorted by strategy then seed.
    pub unreadable: Vec<UnreadableCell>,
}

impl ExperimentCurves {
    /// `(strategy, seed)` of every cell whose curve was read, sorted.
    pub fn cells(&self) -> Vec<(String, u64)> {
        self.strategies
            .iter()
            .flat_map(|s| s.seeds.iter().map(|seed| (s.strategy.clone(), seed.seed)))
            .collect()
    }
}

/// The seed number of a folder named `seed-<n>`.
pub fn parse_seed_dir(name: &str) -> Option<u64> {
    name.strip_prefix("seed-")?.parse().ok()
}

/// True when `dir` directly holds strategy folders with seed folders (an experiment folder).
pub fn is_experiment_dir(dir: &Path) -> bool {
    sorted_subdirs(dir).is_ok_and(|subs| {
        subs.iter().any(|s| {
            sorted_subdirs(s).is_ok_and(|seeds| {
                seeds.iter().any(|d| {
                    d.file_name()
                        .and_then(|n| n.to_str())
                        .and_then(parse_seed_dir)
                        .is_some()
                })
            })
        })
    })
}

/// Read every curve below `dir`, each up to the iterations its state.json records as
/// finished. Seed folders without a curve.csv yet (a cell that has not finished its first
/// iteration) and curves with no rows are skipped; a curve.csv that
/// cannot be read or parsed is listed in `unreadable` and the others are still read. Fails
/// when no curve could be read.
pub fn load_experiment_curves(dir: &Path) -> Result<ExperimentCurves> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let mut strategies = Vec::new();
    let mut metrics: Vec<String> = Vec::new();
    let mut unreadable = Vec::new();
    for strategy_dir in sorted_subdirs(dir)? {
        let Some(strategy) = strategy_dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let mut seeds = Vec::new();
        for seed_dir in sorted_subdirs(&strategy_dir)? {
            let Some(seed) = seed_dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_seed_dir)
            else {
                continue;
            };
            let path = seed_dir.join("curve.csv");
            if !path.is_file() {
                continue;
            }
            let mut curve = match Curve::read(&path) {
                Ok(curve) => curve,
                Err(e) => {
                    unreadable.push(UnreadableCell {
                        strategy: strategy.to_string(),
                        seed,
                        path,
                        error: format!("{e:#}"),
                    });
                    continue;
                }
            };
            // state.json is the commit point: a row past its finished iterations (a run
            // killed between writing curve.csv and state.json) is not a finished iteration,
            // and resuming recomputes it. Without a readable state.json (hand-made folders,
            // or damaged: reported apart) every row counts.
            let paths = crate::runner::persist::CellPaths {
                dir: seed_dir.clone(),
            };
            let state = match crate::runner::persist::load_state(&paths) {
                Ok(None) => StateFile::Missing,
                Ok(Some(state)) => StateFile::Read(Box::new(state)),
                Err(e) => StateFile::Damaged(format!("{e:#}").replace('\n', " ")),
            };
            if let StateFile::Read(state) = &state {
                curve.rows.retain(|r| r.iteration < state.iterations_done);
            }
            if curve.rows.is_empty() {
                continue;
            }
            for m in &curve.metrics {
                if !metrics.contains(m) {
                    metrics.push(m.clone());
                }
            }
            let config_path = seed_dir.join("config.toml");
            let config = match std::fs::read_to_string(&config_path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {}: {e}", config_path.display())),
            };
            seeds.push(SeedCurve {
                seed,
                path,
                curve,
                state,
                config,
            });
        }
        if !seeds.is_empty() {
            seeds.sort_by_key(|s| s.seed);
            strategies.push(StrategyCurves {
                strategy: strategy.to_string(),
                seeds,
            });
        }
    }
    unreadable.sort_by(|a, b| (&a.strategy, a.seed).cmp(&(&b.strategy, b.seed)));
    if strategies.is_empty() && !unreadable.is_empty() {
        bail!(
            "no readable curves in {}: {}",
            dir.display(),
            unreadable
                .iter()
                .map(UnreadableCell::describe)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if strategies.is_empty() {
        bail!(
            "no curves found in {}: expected <strategy>/seed-<n>/curve.csv below it \
             (run `lab run EXPERIMENT.toml` first, or point at results/<experiment>)",
            dir.display()
        );
    }
    Ok(ExperimentCurves {
        name,
        dir: dir.to_path_buf(),
        strategies,
        metrics,
        unreadable,
    })
}

fn sorted_subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}
