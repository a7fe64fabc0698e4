//! `lab select`: one query of one strategy on the base model — the fast way to prototype a
//! script against real data without running the whole loop.
use crate::config::load_experiment;
use crate::runner::experiment::{ensure_models, load_experiment_data};
use crate::runner::host::{LazyEncoder, ModelHost};
use crate::runner::prompting::Prompter;
use crate::runner::{dataset_key, embedding_cache_dir, sandbox_limits};
use crate::strategy::context::SelectionContext;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct SelectArgs {
    /// The experiment file giving data, model and encoder.
    pub experiment: PathBuf,
    /// Strategy name (from the experiment's `[[strategy]]` list, or any strategies/NAME.rhai), or
    /// the path of a script (anything ending in .rhai or holding a path separator).
    #[arg(long)]
    pub strategy: String,
    /// How many ids to select (at least 1; more than the pool selects the whole pool).
    #[arg(long, default_value_t = 20)]
    pub k: usize,
    /// Score only a random subsample of the pool of this size (at least 1; faster prototyping).
    #[arg(long)]
    pub pool: Option<usize>,
    /// Seeds the pool subsample (`--pool`) and the strategy's own randomness (`ctx.seed`):
    /// the same seed gives the same ids
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(args: &SelectArgs) -> Result<()> {
    check_sizes(args.k, args.pool)?;
    let exp = load_experiment(&args.experiment)?;
    let (script, params) = resolve_strategy(&args.strategy, &exp, &args.experiment)?;
    let dataset = load_experiment_data(&exp, &args.experiment)?;
    ensure_models(&exp)?;
    crate::runner::remove_stale_embedding_temporaries()?;
    let mut pool = dataset.train.clone();
    if let Some(n) = args.pool {
        use rand::seq::index::sample;
        use rand::SeedableRng;
        if n > pool.len() {
            eprintln!(
                "note: --pool {n} is more than the {} examples in the pool; using all of them",
                pool.len()
            );
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
        let mut idx = sample(&mut rng, pool.len(), n.min(pool.len())).into_vec();
        idx.sort_unstable();
        pool = idx.into_iter().map(|i| pool[i].clone()).collect();
    }
    let k = if args.k > pool.len() {
        eprintln!(
            "note: --k {} is more than the {} examples in the pool; selecting all {}",
            args.k,
            pool.len(),
            pool.len()
        );
        pool.len()
    } else {
        args.k
    };
    let lm = crate::runner::load_model(&exp)?;
    let encoder = LazyEncoder::of(&exp);
    let host = ModelHost {
        model: &lm,
        base: &lm,
        encoder: &encoder,
        prompter: Prompter::new(&exp),
        batch_size: exp.model.batch_size,
        state_key: "base".into(),
    };
    let ctx = SelectionContext {
        pool: pool.clone(),
        labeled: Vec::new(),
        k,
        iteration: 0,
        planned_iterations: crate::runner::criteria_of(&exp)
            .planned_iterations()
            .unwrap_or(10),
        seed: args.seed,
        params,
        max_new_tokens: exp.model.max_new_tokens,
        memory: Default::default(),
        embedding_cache_dir: Some(embedding_cache_dir()),
        dataset_key: dataset_key(&exp, &dataset, &encoder),
    };
    let started = std::time::Instant::now();
    let sel = crate::strategy::engine::select(&script, ctx, &host, &sandbox_limits(&exp))
        .with_context(|| format!("strategy `{}` ({})", args.strategy, script.display()))?;
    let by_id: HashMap<u64, &crate::data::Example> = pool.iter().map(|e| (e.id, e)).collect();
    println!("{:>4} {:>8} {:>10}  input", "rank", "id", "score");
    for (rank, id) in sel.ids.iter().enumerate() {
        let score = sel
            .scores
            .as_ref()
            .and_then(|s| s.get(rank))
            .map_or("-".to_string(), |v| format!("{v:.4}"));
        let input: String = by_id
            .get(id)
            .map(|e| {
                e.input
                    .chars()
                    .take(70)
                    .collect::<String>()
                    .replace('\n', " ")
            })
            .unwrap_or_default();
        println!("{:>4} {:>8} {:>10}  {}", rank + 1, id, score, input);
    }
    println!(
        "{} ids from a pool of {} in {:.1}s",
        sel.ids.len(),
        pool.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The script and `[strategy.params]` that `--strategy` names. An argument ending in `.rhai` or
/// holding a path separator is a script path (with the params of the experiment's strategy
/// that runs that script, if any); otherwise a `[[strategy]]` key of the experiment, else
/// `strategies/NAME.rhai`. Error messages show the argument as given, never a path built from
/// a path.
fn resolve_strategy(
    arg: &str,
    exp: &crate::config::Experiment,
    experiment: &Path,
) -> Result<(PathBuf, toml::Table)> {
    let is_path = arg.ends_with(".rhai") || arg.contains('/') || arg.contains('\\');
    if is_path {
        let script = PathBuf::from(arg);
        if script.is_dir() {
            let names = script_names(&script);
            let there = if names.is_empty() {
                "it holds no .rhai scripts".to_string()
            } else {
                format!("its scripts: {}", names.join(", "))
            };
            bail!("--strategy {arg} is a folder, not a script; pass a .rhai file ({there})");
        }
        let extension = script.extension().and_then(|e| e.to_str());
        if script.is_file() && extension.is_some_and(|e| e != "rhai") {
            bail!(
                "--strategy {arg} is not a strategy script (a .rhai file); pass a script's \
                 name (see `lab strategies`) or the path of a .rhai file"
            );
        }
        if !script.is_file() {
            let folder = match script.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let names = script_names(&folder);
            let stem = script.file_stem().and_then(|s| s.to_str()).unwrap_or(arg);
            let hint = crate::config::diagnose::did_you_mean(stem, &names);
            let there = if names.is_empty() {
                format!("{} holds no .rhai scripts", folder.display())
            } else {
                format!("scripts in {}: {}", folder.display(), names.join(", "))
            };
            bail!("--strategy {arg}: script {arg} does not exist; {hint}{there} (see `lab strategies`)");
        }
        let same_file = |p: &Path| match (p.canonicalize(), script.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        let params = exp
            .strategies
            .iter()
            .find(|s| same_file(&s.script_path()))
            .map(|s| s.params.clone())
            .unwrap_or_default();
        return Ok((script, params));
    }
    if let Some(s) = exp.strategies.iter().find(|s| s.key() == arg) {
        return Ok((s.script_path(), s.params.clone()));
    }
    let script = PathBuf::from(format!("strategies/{arg}.rhai"));
    if !script.is_file() {
        let mut names: Vec<String> = exp.strategies.iter().map(|s| s.key().to_string()).collect();
        names.extend(script_names(Path::new("strategies")));
        names.sort();
        names.dedup();
        let hint = crate::config::diagnose::did_you_mean(arg, &names);
        bail!(
            "--strategy {arg}: no strategy `{arg}` in {} and no script {}; {hint}pass one of {} \
             (see `lab strategies`), or the path of a .rhai script",
            experiment.display(),
            script.display(),
            names.join(", ")
        );
    }
    Ok((script, toml::Table::new()))
}

/// `--k 0` or `--pool 0` would select nothing and print an empty table.
fn check_sizes(k: usize, pool: Option<usize>) -> Result<()> {
    if k == 0 {
        bail!("--k 0 selects nothing: pass how many ids to select, 1 or more (default 20)");
    }
    if pool == Some(0) {
        bail!(
            "--pool 0 leaves nothing to select from: pass a subsample size of 1 or more, or \
             leave --pool out to use the whole pool"
        );
    }
    Ok(())
}

/// The names of the `*.rhai` scripts in `dir` (none when it cannot be read), sorted.
pub(crate) fn script_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rhai"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_path_is_taken_as_a_path() {
        let exp = crate::config::Experiment::default();
        let (script, params) =
            resolve_strategy("strategies/random.rhai", &exp, Path::new("e.toml")).unwrap();
        assert_eq!(script, PathBuf::from("strategies/random.rhai"));
        assert!(params.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("mine.rhai");
        std::fs::write(&outside, "const KIND = \"al\";").unwrap();
        let arg = outside.display().to_string();
        assert_eq!(
            resolve_strategy(&arg, &exp, Path::new("e.toml")).unwrap().0,
            outside
        );
        let (by_name, _) = resolve_strategy("random", &exp, Path::new("e.toml")).unwrap();
        assert_eq!(by_name, PathBuf::from("strategies/random.rhai"));
    }

    /// A data file or a folder given as --strategy was compiled as Rhai ('syntax error at
    /// train.jsonl:1:6') or called missing.
    #[test]
    fn a_file_or_folder_that_is_no_script_is_named_as_such() {
        let exp = crate::config::Experiment::default();
        let e = resolve_strategy("data/aeslc/train.jsonl", &exp, Path::new("e.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--strategy data/aeslc/train.jsonl is not a strategy script"),
            "{e}"
        );
        let e = resolve_strategy("strategies/lib", &exp, Path::new("e.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--strategy strategies/lib is a folder, not a script"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_script_path_is_named_as_given_with_its_neighbours() {
        let exp = crate::config::Experiment::default();
        let e = resolve_strategy("strategies/randon.rhai", &exp, Path::new("e.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("script strategies/randon.rhai does not exist"),
            "{e}"
        );
        assert!(e.contains("did you mean `random`?"), "{e}");
        assert!(
            !e.contains("strategies/strategies") && !e.contains(".rhai.rhai"),
            "{e}"
        );
        let e = resolve_strategy("randon", &exp, Path::new("e.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no script strategies/randon.rhai"), "{e}");
    }
}
