//! Known answers that also tell each shipped strategy from a plausible wrong version of it:
//! every pool here is built so the formula of STRATEGIES.md picks one item and the named
//! mistake (max instead of mean, an unsquared distance, a multiset where a set is meant, a
//! factor dropped, another default) picks another.
mod support;

use atgen_lab::data::Example;
use atgen_lab::metrics::bleu::sentence_bleu;
use atgen_lab::strategy::fake_host::FakeHost;
use atgen_lab::strategy::SelectionContext;
use support::shipped_strategies::{pool_item, run_strategy as run, selection_context};

fn ex(id: u64, input: &str) -> Example {
    pool_item(id, input, "out")
}

fn ctx(pool: Vec<Example>, labeled: Vec<Example>, k: usize) -> SelectionContext {
    selection_context(pool, labeled, k, 11)
}

/// Pool ids 10.. with inputs "item 0", "item 1", ...
fn numbered_pool(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| ex(10 + i as u64, &format!("item {i}")))
        .collect()
}

fn with_param(mut c: SelectionContext, name: &str, value: toml::Value) -> SelectionContext {
    c.params.insert(name.into(), value);
    c
}

/// Entropies per step: p spikes once (mean 1.0; max, first step and sum 3), q is steady
/// (mean 1.2), r is long and low (mean 0.5, the largest sum 4), s ends high (last step 2.0).
/// Only the mean over every step picks q; q is also the most confident (so mnlp or lc would
/// not pick it).
#[test]
fn mte_averages_the_entropy_over_every_generated_step() {
    let host = FakeHost::new(4)
        .with_greedy("item 0", "y", vec![-1.0; 3], vec![3.0, 0.0, 0.0])
        .with_greedy("item 1", "y", vec![-0.1; 2], vec![1.0, 1.4])
        .with_greedy("item 2", "y", vec![-1.0; 8], vec![0.5; 8])
        .with_greedy("item 3", "y", vec![-1.0; 3], vec![0.1, 0.1, 2.0]);
    let s = run("mte", ctx(numbered_pool(4), vec![], 1), &host);
    assert_eq!(s.ids, vec![11]);
    let sc = s.scores.unwrap();
    assert!((sc[0] - 1.2).abs() < 1e-6, "{sc:?}");
}

/// Entropies tie, so delfy alone decides. c_U: apple and banana twice, cherry once; nothing
/// is labeled. a and b hold the same words: visited first, a keeps its weight; b, visited
/// second, is decayed by e^{−λ2·1} (ln 3 · e⁻¹ ≈ 0.40 of the normaliser) below c (ln 2 ≈
/// 0.69). Without the decay over visited items a and b tie ahead of c.
#[test]
fn te_delfy_decays_the_words_of_items_visited_before() {
    let pool = vec![
        ex(10, "apple banana"),
        ex(11, "apple banana"),
        ex(12, "cherry"),
    ];
    let mut host = FakeHost::new(4);
    for e in &pool {
        host = host.with_greedy(&e.input, "y", vec![-0.1], vec![1.0]);
    }
    let s = run("te_delfy", ctx(pool, vec![], 2), &host);
    assert_eq!(s.ids, vec![10, 12]);
}

const CAT: &str = "the cat sat on the mat";

/// BLEUVar of the samples as STRATEGIES.md defines it, with the metrics module's sacreBLEU.
fn bleu_variance_by_hand(samples: &[&str]) -> f64 {
    let n = samples.len();
    let mut total = 0.0;
    for (i, a) in samples.iter().enumerate() {
        for (j, b) in samples.iter().enumerate() {
            if i != j {
                let d = 1.0 - sentence_bleu(a, &[*b]) / 100.0;
                total += d * d;
            }
        }
    }
    total / (n * (n - 1)) as f64
}

/// Ten samples each. a: seven copies of one sentence and three of an unrelated one (BLEU 100
/// or 0, so each distance is 0 or 1: 42 of the 90 ordered pairs, 0.467 squared or not). b:
/// three paraphrases, every pair partly overlapping (distances about 0.5–0.9): squared they
/// average 0.41, below a; unsquared 0.54, above a.
#[test]
fn bleuvar_squares_each_pairs_distance() {
    let a: Vec<&str> = [[CAT; 7].as_slice(), &["birds fly south in winter"; 3]].concat();
    let b: Vec<&str> = [
        [CAT; 4].as_slice(),
        &["a cat slept on the mat"; 3],
        &["the cat sat by a door"; 3],
    ]
    .concat();
    let host = FakeHost::new(4)
        .with_samples("item 0", &a)
        .with_samples("item 1", &b);
    let s = run("bleuvar", ctx(numbered_pool(2), vec![], 2), &host);
    assert_eq!(s.ids, vec![10, 11]);
    let sc = s.scores.unwrap();
    assert!((sc[0] - 42.0 / 90.0).abs() < 1e-12, "{sc:?}");
    assert!((sc[1] - bleu_variance_by_hand(&b)).abs() < 1e-12, "{sc:?}");
}

/// The scored items are a random subsample, not the first max(10·k, 10% of U) items: over a
/// few seeds the pick (the best of ten scored items out of 100) is not always among the ten
/// lowest ids.
#[test]
fn bleuvar_scores_a_random_subsample_not_the_first_items() {
    let host = FakeHost::new(4);
    let picks: Vec<u64> = (0..6)
        .map(|seed| {
            let mut c = ctx(numbered_pool(100), vec![], 1);
            c.seed = seed;
            run("bleuvar", c, &host).ids[0]
        })
        .collect();
    assert!(picks.iter().any(|&id| id >= 20), "{picks:?}");
}

/// k = 3: BLEUVar keeps ⌊3/2⌋ = 1 of IDDS's three proposals (the most variable one, first) and
/// the other two come at random from U. Keeping ⌈k/2⌉ = 2 would make the second pick a
/// proposal at every seed.
#[test]
fn dual_keeps_the_floor_of_half_the_proposals_for_odd_k() {
    let pool = numbered_pool(20);
    let host = FakeHost::new(4);
    let proposals = run("idds", ctx(pool.clone(), vec![], 3), &host).ids;
    let proposed: Vec<Example> = pool
        .iter()
        .filter(|e| proposals.contains(&e.id))
        .cloned()
        .collect();
    let most_variable = run("bleuvar", ctx(proposed, vec![], 1), &host).ids[0];
    let mut second_pick_proposed = 0;
    for seed in 0..10 {
        let mut c = ctx(pool.clone(), vec![], 3);
        c.seed = seed;
        let picks = run("dual", c, &host).ids;
        assert_eq!(picks[0], most_variable, "seed {seed}: {picks:?}");
        second_pick_proposed += usize::from(proposals.contains(&picks[1]));
    }
    assert!(
        second_pick_proposed < 10,
        "the second pick was always a proposal"
    );
}

/// "go go go" has 3 distinct n-grams (go: c_U 3, "go go": 2, "go go go": 1) but 6 occurrences.
/// As a set (the script's reading of g ∈ x): (ln 4 + ln 3 + ln 2)/3 ≈ 1.06, below "red" (c_U
/// 2: ln 3 ≈ 1.10). Counting occurrences: (3 ln 4 + 2 ln 3 + ln 2)/6 ≈ 1.17, above it.
#[test]
fn ngf_smp_counts_each_distinct_ngram_of_an_item_once() {
    let pool = vec![ex(10, "go go go"), ex(11, "red"), ex(12, "red blue")];
    let s = run("ngf_smp", ctx(pool, vec![], 1), &FakeHost::new(4));
    assert_eq!(s.ids, vec![11]);
    let sc = s.scores.unwrap();
    assert!((sc[0] - 3f64.ln()).abs() < 1e-12, "{sc:?}");
}

/// Five identical items on e1 (coverage 5) and five on e2 tilted apart into their own
/// directions (pairwise cosine c, coverage 1 + 4c). After the first e1 item, a second gains
/// 5 − 3λ (the ordered pair counted both ways, and its self-pair) and an e2 item (1 + 4c) − λ.
fn graph_cut_second_pick(pairwise_cosine: f32) -> u64 {
    let mut host = FakeHost::new(8);
    let mut pool = Vec::new();
    for i in 0..5u64 {
        let text = format!("a{i}");
        host = host.with_embedding(&text, vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        pool.push(ex(10 + i, &text));
    }
    for i in 0..5u64 {
        let text = format!("b{i}");
        let mut v = vec![0.0; 8];
        v[1] = pairwise_cosine.sqrt();
        v[2 + i as usize] = (1.0 - pairwise_cosine).sqrt();
        host = host.with_embedding(&text, v);
        pool.push(ex(20 + i, &text));
    }
    let s = run("graph_cut", ctx(pool, vec![], 2), &host);
    assert_eq!(s.ids[0], 10, "{:?}", s.ids);
    s.ids[1]
}

/// c = 0.825 (coverage 4.3): at λ = 0.5, 3.5 against 3.8, so graph cut diversifies; counting
/// each pair once (5 − 2λ = 4) or λ ≤ 0.35 would stay on e1. c = 0.7 (coverage 3.8): 3.5
/// against 3.3, it stays; λ ≥ 0.6 would diversify.
#[test]
fn graph_cut_counts_ordered_pairs_with_lambda_one_half() {
    assert_eq!(graph_cut_second_pick(0.825), 20);
    assert_eq!(graph_cut_second_pick(0.7), 11);
}

/// One stratum, one centroid (at e1, held there by four certain items), so the two terms are
/// plain: a (id 10) is the most uncertain at the centroid (ũ 1, d̃ 0), b (11) certain and
/// farthest (ũ 0, d̃ 1), c (12) between (ũ 0.6, d̃ ≈ 0.5). λ = 0.5 picks c (≈ 0.55 against 0.5);
/// λ = 0.4 would pick a, λ = 0.6 b.
#[test]
fn huds_mixes_the_two_terms_half_and_half_by_default() {
    let angle = |deg: f32| {
        let r = deg.to_radians();
        vec![r.cos(), r.sin(), 0.0, 0.0]
    };
    let items: [(f32, f32); 7] = [
        (1.0, 0.0),
        (0.0, 90.0),
        (0.6, 70.0),
        (0.0, 0.0),
        (0.0, 0.0),
        (0.0, 0.0),
        (0.0, 0.0),
    ];
    let mut host = FakeHost::new(4);
    let mut pool = Vec::new();
    for (i, (u, deg)) in items.iter().enumerate() {
        let text = format!("h{i}");
        host = host
            .with_embedding(&text, angle(*deg))
            .with_greedy(&text, "y", vec![-u], vec![0.0]);
        pool.push(ex(10 + i as u64, &text));
    }
    let c = with_param(
        with_param(ctx(pool, vec![], 1), "strata", toml::Value::Integer(1)),
        "clusters",
        toml::Value::Integer(1),
    );
    assert_eq!(run("huds", c.clone(), &host).ids, vec![12]);
    let at = |lambda: f64| {
        run(
            "huds",
            with_param(c.clone(), "lambda", toml::Value::Float(lambda)),
            &host,
        )
        .ids
    };
    assert_eq!((at(0.4), at(0.6)), (vec![10], vec![11]));
}

/// With nothing labeled (the strategy choosing the initial set) core-set starts at the item
/// nearest the pool's mean direction (about 40°: the one at 45°, id 12), then takes the one
/// farthest from it (170°, id 14); starting at the lowest id would give 10 then 14, and the
/// farthest-from-the-mean start would give 14 first.
#[test]
fn coreset_without_labeled_items_starts_nearest_the_pool_mean() {
    let mut host = FakeHost::new(4);
    let mut pool = Vec::new();
    for (i, deg) in [0.0f32, 10.0, 45.0, 80.0, 170.0].iter().enumerate() {
        let text = format!("c{i}");
        let r = deg.to_radians();
        host = host.with_embedding(&text, vec![r.cos(), r.sin(), 0.0, 0.0]);
        pool.push(ex(10 + i as u64, &text));
    }
    assert_eq!(
        run("coreset", ctx(pool, vec![], 2), &host).ids,
        vec![12, 14]
    );
}
