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
    #[arg(long)]
    pub check: bool,
}

/// Print one line per strategy: name, kind, primitives, description (and deviation).
pub fn run(args: &StrategiesArgs) -> Result<()> {
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
                Ok(s) => println!("{:<width$}      check: {s}", ""),
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
            let len = rng.random_range(6..16);
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
/// iteration of 4) with a `FakeHost`; the answer must validate and repeat exactly.
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
    let b = run_compiled(&engine, &script, ctx, &host, &limits)?;
    if a.ids != b.ids {
        bail!(
            "strategy {} is not deterministic: same seed gave {:?} then {:?}",
            script.name,
            a.ids,
            b.ids
        );
    }
    Ok(format!(
        "ok: {} ({}) chose {:?} from 60 synthetic items in {ms:.1} ms",
        script.name, script.kind, a.ids
    ))
}
