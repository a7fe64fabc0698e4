//! Find and read every `<strategy>/seed-<n>/curve.csv` below an experiment folder.
use crate::runner::curve::Curve;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// One seed's curve.
#[derive(Clone, Debug)]
pub struct SeedCurve {
    pub seed: u64,
    pub path: PathBuf,
    pub curve: Curve,
}

/// Every seed of one strategy, sorted by seed.
#[derive(Clone, Debug)]
pub struct StrategyCurves {
    pub strategy: String,
    pub seeds: Vec<SeedCurve>,
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

/// Read every curve below `dir`. Seed folders without a curve.csv yet (a cell that has not
/// finished its first iteration) and curves with no rows are skipped.
pub fn load_experiment_curves(dir: &Path) -> Result<ExperimentCurves> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let mut strategies = Vec::new();
    let mut metrics: Vec<String> = Vec::new();
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
            let curve = Curve::read(&path)?;
            if curve.rows.is_empty() {
                continue;
            }
            for m in &curve.metrics {
                if !metrics.contains(m) {
                    metrics.push(m.clone());
                }
            }
            seeds.push(SeedCurve { seed, path, curve });
        }
        if !seeds.is_empty() {
            seeds.sort_by_key(|s| s.seed);
            strategies.push(StrategyCurves {
                strategy: strategy.to_string(),
                seeds,
            });
        }
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
