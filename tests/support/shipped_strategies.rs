//! The shipped strategy scripts, run through the real engine against a `FakeHost`: what the
//! strategy tests share (a pool item, a selection context, running a script by name).
use atgen_lab::data::Example;
use atgen_lab::strategy::fake_host::FakeHost;
use atgen_lab::strategy::{select, SandboxLimits, Selection, SelectionContext};
use std::path::PathBuf;

pub fn strategy_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("strategies/{name}.rhai"))
}

/// Runs `strategies/{name}.rhai` with the default sandbox; a script error fails the test
/// with the engine's message.
pub fn run_strategy(name: &str, c: SelectionContext, host: &FakeHost) -> Selection {
    select(&strategy_script(name), c, host, &SandboxLimits::default())
        .unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

/// A pool item whose output and single reference are `{output_prefix} {input}`.
pub fn pool_item(id: u64, input: &str, output_prefix: &str) -> Example {
    let output = format!("{output_prefix} {input}");
    Example {
        id,
        input: input.into(),
        output: output.clone(),
        references: vec![output],
    }
}

/// Iteration 1 of 4, 16 new tokens; the tests change other fields with `..`.
pub fn selection_context(
    pool: Vec<Example>,
    labeled: Vec<Example>,
    k: usize,
    seed: u64,
) -> SelectionContext {
    SelectionContext {
        pool,
        labeled,
        k,
        iteration: 1,
        planned_iterations: 4,
        seed,
        max_new_tokens: 16,
        ..SelectionContext::default()
    }
}

/// Every script under strategies/, by name, sorted.
pub fn shipped_strategy_names() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("strategies");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "rhai").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    names
}
