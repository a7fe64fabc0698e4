//! Every shipped strategy on degenerate pools: texts all empty, all identical, whitespace only,
//! or non-ASCII (accents, CJK, emoji, a combining mark), with a pool of one, a pool smaller than
//! k and k = 0, with and without a labeled set of the same texts, and from a model whose every
//! generation is empty. Each must answer min(k, |U|)
//! distinct pool ids, and a script error or a panic fails the test with the strategy's name.
mod support;

use atgen_lab::data::Example;
use atgen_lab::strategy::fake_host::FakeHost;
use atgen_lab::strategy::{select, SandboxLimits, SelectionContext};
use std::collections::HashSet;
use support::shipped_strategies::{
    pool_item, selection_context, shipped_strategy_names, strategy_script,
};

/// The text of item `i` of a pool.
type ItemText = fn(u64) -> String;

/// Texts of a degenerate pool, by kind; item `i` gets `text(i)`.
const KINDS: [(&str, ItemText); 5] = [
    ("empty", |_| String::new()),
    ("identical", |_| "the same text".to_string()),
    ("whitespace", |i| " \t\n ".repeat(i as usize % 2 + 1)),
    ("emoji", |i| {
        format!("🎉🚀 {} ✨", "👍".repeat(i as usize + 1))
    }),
    ("non-ascii", |i| {
        [
            "Ünïcödé façade",
            "日本語のテキスト",
            "e\u{301}te\u{301}",
            "Привет мир",
        ][i as usize % 4]
            .to_string()
    }),
];

fn items(first_id: u64, n: u64, text: ItemText) -> Vec<Example> {
    (0..n)
        .map(|i| pool_item(first_id + i, &text(i), "out"))
        .collect()
}

/// A model that ends every generation at once: no tokens, an empty text, for every input of
/// the context (the fake host's own generations have 3 to 7 tokens).
fn silent_model(c: &SelectionContext) -> FakeHost {
    c.pool
        .iter()
        .chain(&c.labeled)
        .fold(FakeHost::new(6), |host, e| {
            host.with_greedy(&e.input, "", vec![], vec![])
                .with_base_greedy(&e.input, "", vec![])
                .with_samples(&e.input, &[""])
        })
}

/// Runs `name` and checks its answer, or returns what went wrong (a panic included).
fn check(name: &str, c: SelectionContext, host: &FakeHost, what: &str) -> Result<(), String> {
    let pool: HashSet<u64> = c.pool.iter().map(|e| e.id).collect();
    let want = c.k.min(pool.len());
    let script = strategy_script(name);
    let run = std::panic::catch_unwind(|| select(&script, c, host, &SandboxLimits::default()));
    let selection = match run {
        Err(_) => return Err(format!("{what}: panicked")),
        Ok(Err(e)) => return Err(format!("{what}: {e:#}")),
        Ok(Ok(s)) => s,
    };
    let ids: HashSet<u64> = selection.ids.iter().copied().collect();
    if selection.ids.len() != want || ids.len() != want || !ids.is_subset(&pool) {
        return Err(format!(
            "{what}: wanted {want} distinct pool ids, got {:?}",
            selection.ids
        ));
    }
    Ok(())
}

#[test]
fn every_strategy_answers_degenerate_pools_with_distinct_pool_ids() {
    let names = shipped_strategy_names();
    assert!(names.len() >= 16, "{names:?}");
    let mut failures = Vec::new();
    for name in &names {
        for (kind, text) in KINDS {
            // (pool size, k, labeled, iteration): a pool of one under a larger k, a pool smaller
            // than k, and a labeled set of the same degenerate texts.
            for (n, k, labeled, iteration) in [(1, 3, 0, 0), (4, 6, 0, 0), (4, 2, 3, 2)] {
                let c = SelectionContext {
                    iteration,
                    max_new_tokens: 8,
                    ..selection_context(items(10, n, text), items(500, labeled, text), k, 3)
                };
                let what = format!("{name}, {kind} texts, |U| = {n}, k = {k}, |L| = {labeled}");
                let hashed = FakeHost::new(6);
                if let Err(e) = check(name, c.clone(), &hashed, &what) {
                    failures.push(e);
                }
                let silent = silent_model(&c);
                if let Err(e) = check(name, c, &silent, &format!("{what}, empty generations")) {
                    failures.push(e);
                }
            }
        }
        let zero = selection_context(items(10, 4, KINDS[0].1), vec![], 0, 3);
        if let Err(e) = check(name, zero, &FakeHost::new(6), &format!("{name}, k = 0")) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
