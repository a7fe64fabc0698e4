//! Each built-in strategy on a tiny pool built so the right answer is known, through the real
//! engine with a `FakeHost` (fixed embeddings, log-probabilities, entropies and samples).
use atgen_lab::data::Example;
use atgen_lab::strategy::fake_host::FakeHost;
use atgen_lab::strategy::{select, SandboxLimits, Selection, SelectionContext};
use std::path::PathBuf;

fn ex(id: u64, input: &str) -> Example {
    Example {
        id,
        input: input.into(),
        output: format!("summary of {input}"),
        references: vec![format!("summary of {input}")],
    }
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("strategies/{name}.rhai"))
}

fn ctx(pool: Vec<Example>, labeled: Vec<Example>, k: usize) -> SelectionContext {
    SelectionContext {
        pool,
        labeled,
        k,
        iteration: 1,
        planned_iterations: 4,
        seed: 7,
        max_new_tokens: 16,
        ..SelectionContext::default()
    }
}

fn run(name: &str, c: SelectionContext, host: &FakeHost) -> Selection {
    select(&script(name), c, host, &SandboxLimits::default())
        .unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

/// Pool ids 10.. with inputs "item a", "item b", ...
fn named_pool(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| ex(10 + i as u64, &format!("item {}", (b'a' + i as u8) as char)))
        .collect()
}

/// Item a: long and mildly unsure (Σ = −3, mean −0.3); b: short and very unsure (Σ = −2,
/// mean −1); c: sure (Σ = −0.2); d: mid (Σ = −1.2, mean −0.4). Entropies rank c > a > d > b.
fn confidence_host() -> FakeHost {
    FakeHost::new(4)
        .with_greedy("item a", "ya", vec![-0.3; 10], vec![0.5; 10])
        .with_greedy("item b", "yb", vec![-1.0, -1.0], vec![0.1, 0.1])
        .with_greedy("item c", "yc", vec![-0.1, -0.1], vec![2.0, 1.0])
        .with_greedy("item d", "yd", vec![-0.4, -0.4, -0.4], vec![0.3, 0.3, 0.3])
}

#[test]
fn lc_prefers_the_largest_total_surprise() {
    let s = run("lc", ctx(named_pool(4), vec![], 2), &confidence_host());
    assert_eq!(s.ids, vec![10, 11]); // a (3.0), b (2.0)
    let sc = s.scores.unwrap();
    assert!(
        (sc[0] - 3.0).abs() < 1e-5 && (sc[1] - 2.0).abs() < 1e-5,
        "{sc:?}"
    );
}

#[test]
fn mnlp_normalises_by_length_and_so_disagrees_with_lc() {
    let s = run("mnlp", ctx(named_pool(4), vec![], 2), &confidence_host());
    assert_eq!(s.ids, vec![11, 13]); // b (1.0), d (0.4)
}

#[test]
fn mte_prefers_the_highest_mean_entropy() {
    let s = run("mte", ctx(named_pool(4), vec![], 2), &confidence_host());
    assert_eq!(s.ids, vec![12, 10]); // c (1.5), a (0.5)
}

#[test]
fn random_is_seeded_uniform_and_returns_ids() {
    let host = FakeHost::new(4);
    let a = run("random", ctx(named_pool(10), vec![], 3), &host);
    let b = run("random", ctx(named_pool(10), vec![], 3), &host);
    assert_eq!(a.ids, b.ids, "same seed, same selection");
    let mut counts = [0usize; 10];
    let mut distinct_answers = std::collections::HashSet::new();
    for seed in 0..600 {
        let mut c = ctx(named_pool(10), vec![], 3);
        c.seed = seed;
        let s = run("random", c, &host);
        distinct_answers.insert(s.ids.clone());
        for id in s.ids {
            counts[(id - 10) as usize] += 1;
        }
    }
    // 600 × 3 picks over 10 items: 180 expected each; ±60 is > 5 standard deviations.
    assert!(
        counts.iter().all(|&c| (120..=240).contains(&c)),
        "{counts:?}"
    );
    assert!(distinct_answers.len() > 60);
}
