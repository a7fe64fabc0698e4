//! `lab strategies` and the script check `lab check` runs on each strategy.
use crate::data::Example;
use crate::strategy::engine::{build_engine, compile, lib_dir_for, run_compiled};
use crate::strategy::fake_host::FakeHost;
use crate::strategy::registry;
use crate::strategy::sandbox::SandboxLimits;
use crate::strategy::SelectionContext;
use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct StrategiesArgs {
    /// Folder holding the strategy scripts.
    #[arg(long, default_value = "strategies")]
    pub dir: PathBuf,
    /// Also run each script against a synthetic pool (as `lab check` does).
    #[arg(long, conflicts_with = "bench")]
    pub check: bool,
    /// Instead of listing, time each strategy on a synthetic pool of this many items (384-d
    /// fake embeddings, fixed fake generations) and print where the time goes.
    #[arg(long, value_name = "POOL_SIZE")]
    pub bench: Option<usize>,
    /// Query size for --bench.
    #[arg(long, default_value_t = 100, requires = "bench")]
    pub k: usize,
    /// Only these strategies (comma-separated) for --bench.
    #[arg(long, value_delimiter = ',', requires = "bench")]
    pub only: Vec<String>,
}

/// Print one line per strategy: name, kind, primitives, description (and deviation).
pub fn run(args: &StrategiesArgs) -> Result<()> {
    if let Some(n) = args.bench {
        return bench(args, n);
    }
    let infos = registry::list(&args.dir)?;
    if infos.is_empty() {
        bail!("no *.rhai strategies in {}", args.dir.display());
    }
    let width = infos.iter().map(|i| i.name.len()).max().unwrap_or(4);
    let mut broken = 0;
    for i in &infos {
        println!(
            "{:<width$}  {:<2}  {}",
            i.name,
            if i.kind.is_empty() { "??" } else { &i.kind },
            i.description
        );
        println!("{:<width$}      needs: {}", "", i.primitives.join(", "));
        if let Some(d) = &i.deviation {
            println!("{:<width$}      deviation: {d}", "");
        }
        if let Some(p) = &i.problem {
            broken += 1;
            println!("{:<width$}      PROBLEM: {p}", "");
        } else if args.check {
            match check_script(&i.path) {
                Ok(s) => println!("{:<width$}      check ok: {s}", ""),
                Err(e) => {
                    broken += 1;
                    println!("{:<width$}      CHECK FAILED: {e:#}", "");
                }
            }
        }
    }
    if broken > 0 {
        bail!(
            "{broken} of {} strategies have problems (see above)",
            infos.len()
        );
    }
    Ok(())
}

const VOCAB: &[&str] = &[
    "meeting", "budget", "report", "schedule", "quarter", "team", "review", "draft", "client",
    "contract", "invoice", "deadline", "travel", "policy", "update", "project", "launch", "sales",
    "forecast", "hiring", "office", "agenda", "notes", "summary", "market", "price", "risk",
    "plan", "call", "email",
];

/// A small deterministic pool of email-like examples with ids 1000.. (so positions and ids
/// differ, catching scripts that return positions).
pub fn synthetic_examples(n: usize, first_id: u64, seed: u64) -> Vec<Example> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            // Lengths spread wide enough that the few shortest (or longest) items differ: with
            // 6..16 words the six shortest of 60 all had 6, so a length-ranking strategy
            // (README's short_first) returned equal scores and `lab check` warned.
            let len = rng.random_range(6..30);
            let input: Vec<&str> = (0..len)
                .map(|_| VOCAB[rng.random_range(0..VOCAB.len())])
                .collect();
            let output: Vec<&str> = input.iter().take(4).copied().collect();
            let output = output.join(" ");
            Example {
                id: first_id + i as u64,
                input: input.join(" "),
                output: output.clone(),
                references: vec![output],
            }
        })
        .collect()
}

/// Compile `path` and run it twice on a synthetic pool (60 items, 8 labeled, k = 6, second
/// iteration of 4) with a `FakeHost`; the answer must validate and repeat exactly. Then once
/// more with no labeled examples, as when the strategy chooses the initial set. Returns a
/// summary, with warnings for what works but is probably not meant (see `script_warnings`).
pub fn check_script(path: &Path) -> Result<String> {
    let limits = SandboxLimits::default();
    let engine = build_engine(&limits, &lib_dir_for(path));
    let script = compile(&engine, path)?;
    let host = FakeHost::new(16);
    let ctx = SelectionContext {
        pool: synthetic_examples(60, 1000, 7),
        labeled: synthetic_examples(8, 5000, 8),
        k: 6,
        iteration: 1,
        planned_iterations: 4,
        seed: 42,
        max_new_tokens: 32,
        ..SelectionContext::default()
    };
    let t = std::time::Instant::now();
    let a = run_compiled(&engine, &script, ctx.clone(), &host, &limits)
        .with_context(|| format!("checking {} on a synthetic pool", path.display()))?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    show_logs(&script.name, &a.logs);
    let b = run_compiled(&engine, &script, ctx.clone(), &host, &limits)?;
    if a.ids != b.ids {
        bail!(
            "strategy {} is not deterministic: same seed gave {:?} then {:?}",
            script.name,
            a.ids,
            b.ids
        );
    }
    // The runner calls the script with nothing labeled when it chooses the initial set.
    let mut params = toml::Table::new();
    params.insert("initial".into(), toml::Value::String("strategy".into()));
    let initial = SelectionContext {
        labeled: Vec::new(),
        iteration: 0,
        params,
        ..ctx
    };
    let c = run_compiled(&engine, &script, initial, &host, &limits).with_context(|| {
        format!(
            "checking {} on a synthetic pool with an empty labeled set (initial = \"strategy\")",
            path.display()
        )
    })?;
    let mut summary = format!(
        "{} ({}) chose {:?} from 60 synthetic items in {ms:.1} ms, same again with the same \
         seed, and {} with nothing labeled",
        script.name,
        script.kind,
        a.ids,
        c.ids.len()
    );
    for w in script_warnings(path, &[&a, &c]) {
        summary.push_str("; warning: ");
        summary.push_str(&w);
    }
    Ok(summary)
}

/// `ctx.log` lines go to stderr as they are written under `--verbose`; otherwise `lab check`
/// shows those of its first run here, since checking a script is when they are wanted.
fn show_logs(name: &str, logs: &[String]) {
    if std::env::var_os("LAB_VERBOSE").is_none() {
        for line in logs {
            eprintln!("[strategy {name}] {line}");
        }
    }
}

/// What works but is probably not meant: returned scores that cannot rank in any of `runs` (all
/// NaN or all equal, so the ranking falls back to the lowest ids), and a header without the description
/// and deviation lines `lab strategies` prints.
pub fn script_warnings(path: &Path, runs: &[&crate::strategy::Selection]) -> Vec<String> {
    let mut out = Vec::new();
    // Warn only when no run ranks: a script may legitimately tie everything in one situation
    // (LDCAL's certainty gain is 0 while the fake host's model equals its base model).
    let problems: Vec<Option<&str>> = runs
        .iter()
        .map(|s| match s.scores.as_deref() {
            Some(v) if v.len() > 1 && v.iter().all(|x| x.is_nan()) => Some("are all NaN"),
            Some(v) if v.len() > 1 && v.iter().all(|x| *x == v[0]) => Some("are all equal"),
            _ => None,
        })
        .collect();
    if !problems.is_empty() && problems.iter().all(Option::is_some) {
        out.push(format!(
            "the returned scores {} on the synthetic pool (with and without labeled examples), \
             so they do not rank anything (ties go to the lowest ids); check the computation \
             before `top`/`topk`",
            problems[0].unwrap_or_default()
        ));
    }
    match registry::describe(path) {
        Ok(info) if info.description.is_empty() || info.deviation.is_none() => out.push(
            "the script does not open with the two comment lines `// what it selects and why; \
             the source paper` and `// Deviation: ...` (see strategies/README.md); `lab \
             strategies` shows them"
                .to_string(),
        ),
        _ => {}
    }
    out
}

/// Time every strategy (or `--only`) on one synthetic pool: total, model host, kernels, and
/// the script's own share (interpretation and vector glue), which should stay under 5%.
fn bench(args: &StrategiesArgs, n: usize) -> Result<()> {
    if n == 0 || args.k == 0 {
        let flag = if n == 0 { "--bench" } else { "--k" };
        bail!("{flag} 0 leaves nothing to time: pass a pool size and a --k of 1 or more");
    }
    let mut infos = registry::list(&args.dir)?;
    if !args.only.is_empty() {
        let names: Vec<String> = infos.iter().map(|i| i.name.clone()).collect();
        if let Some(unknown) = args.only.iter().find(|o| !names.contains(o)) {
            let hint = crate::config::diagnose::did_you_mean(unknown, &names);
            bail!(
                "--only {unknown}: no such strategy in {}; {hint}they are {}",
                args.dir.display(),
                names.join(", ")
            );
        }
        infos.retain(|i| args.only.contains(&i.name));
    }
    let limits = SandboxLimits::default();
    let host = FakeHost::new(384);
    let ctx = SelectionContext {
        pool: synthetic_examples(n, 0, 11),
        labeled: synthetic_examples(n.div_ceil(100), 10_000_000, 12),
        k: args.k,
        iteration: 1,
        planned_iterations: 4,
        seed: 1,
        max_new_tokens: 32,
        ..SelectionContext::default()
    };
    println!(
        "pool {n}, k {}, fake host with 384-d embeddings{}",
        args.k,
        if cfg!(debug_assertions) {
            " (debug build: use --release for figures)"
        } else {
            ""
        }
    );
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "strategy", "total s", "host s", "kernel s", "script s", "script%"
    );
    let pb = crate::util::progress::bar(infos.len() as u64, "bench");
    for i in &infos {
        pb.set_message(i.name.clone());
        let engine = build_engine(&limits, &lib_dir_for(&i.path));
        let script = compile(&engine, &i.path)?;
        let s = run_compiled(&engine, &script, ctx.clone(), &host, &limits)
            .with_context(|| format!("benchmarking {}", i.name))?;
        let t = s.timing;
        pb.suspend(|| {
            println!(
                "{:<18} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>6.1}%",
                i.name,
                t.total_s,
                t.host_s,
                t.kernel_s,
                t.script_s(),
                100.0 * t.script_s() / t.total_s.max(1e-12)
            )
        });
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> std::result::Result<StrategiesArgs, String> {
        let mut all = vec!["lab", "strategies"];
        all.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(all) {
            Ok(cli) => match cli.command {
                crate::cli::Command::Strategies(a) => Ok(a),
                other => panic!("parsed as {other:?}"),
            },
            Err(e) => Err(e.to_string()),
        }
    }

    /// --k and --only only shape --bench, and --check does not run under --bench: given alone
    /// they were silently ignored and the plain list printed.
    #[test]
    fn bench_flags_without_bench_are_refused() {
        for flags in [
            &["--k", "5"][..],
            &["--only", "random"],
            &["--check", "--bench", "10"],
        ] {
            let err = parse(flags).expect_err("must not parse");
            assert!(err.contains("--bench"), "{flags:?}: {err}");
        }
        assert!(parse(&["--bench", "10", "--k", "5", "--only", "random"]).is_ok());
        assert!(parse(&["--check"]).is_ok());
    }

    #[test]
    fn an_empty_bench_is_refused_naming_the_flag() {
        let mut args = parse(&["--bench", "0"]).unwrap();
        let err = run(&args).unwrap_err().to_string();
        assert!(err.starts_with("--bench 0 leaves nothing to time"), "{err}");
        args.bench = Some(10);
        args.k = 0;
        let err = run(&args).unwrap_err().to_string();
        assert!(err.starts_with("--k 0 leaves nothing to time"), "{err}");
    }
}
