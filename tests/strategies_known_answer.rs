//! Each built-in strategy on a tiny pool built so the right answer is known, through the real
//! engine with a `FakeHost` (fixed embeddings, log-probabilities, entropies and samples).
mod support;

use atgen_lab::data::Example;
use atgen_lab::strategy::fake_host::FakeHost;
use atgen_lab::strategy::{select, SandboxLimits, SelectionContext};
use std::path::PathBuf;
use support::shipped_strategies::{pool_item, run_strategy as run, selection_context};

fn ex(id: u64, input: &str) -> Example {
    pool_item(id, input, "summary of")
}

fn ctx(pool: Vec<Example>, labeled: Vec<Example>, k: usize) -> SelectionContext {
    selection_context(pool, labeled, k, 7)
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

/// Pool inputs by word: a's words are frequent in L (5 copies), d's less (2), b's and c's are
/// new. Entropy ranks a > b > d > c; delfy ranks b = c (1.5 each) > d > a. Rank sums: a 5, b 3.5,
/// c 5.5, d 6.
#[test]
fn te_delfy_combines_entropy_and_novelty_by_rank_sum() {
    let pool = vec![
        ex(10, "apple banana"),
        ex(11, "zebra yak"),
        ex(12, "walrus vole"),
        ex(13, "cherry grape"),
    ];
    let mut labeled: Vec<Example> = (0..5).map(|i| ex(90 + i, "apple banana")).collect();
    labeled.extend((0..2).map(|i| ex(95 + i, "cherry grape")));
    let host = FakeHost::new(4)
        .with_greedy("apple banana", "y", vec![-0.1], vec![2.0])
        .with_greedy("zebra yak", "y", vec![-0.1], vec![1.5])
        .with_greedy("walrus vole", "y", vec![-0.1], vec![0.1])
        .with_greedy("cherry grape", "y", vec![-0.1], vec![0.2]);
    let s = run("te_delfy", ctx(pool.clone(), labeled.clone(), 2), &host);
    assert_eq!(s.ids, vec![11, 10]);
    // Entropy alone would put a first.
    assert_eq!(run("mte", ctx(pool, labeled, 1), &host).ids, vec![10]);
}

/// Three words each seen once in U and never in L: delfy ties them all, so the entropy decides
/// (c, the most uncertain). Ties split by id would give delfy ranks 1, 2, 3 against entropy's
/// 3, 2, 1: equal sums, and the lowest id, the least uncertain item, would win.
#[test]
fn te_delfy_lets_entropy_decide_between_items_delfy_ties() {
    let pool = vec![ex(10, "apple"), ex(11, "banana"), ex(12, "cherry")];
    let host = FakeHost::new(4)
        .with_greedy("apple", "y", vec![-0.1], vec![0.1])
        .with_greedy("banana", "y", vec![-0.1], vec![0.2])
        .with_greedy("cherry", "y", vec![-0.1], vec![0.3]);
    let s = run("te_delfy", ctx(pool, vec![], 1), &host);
    assert_eq!(s.ids, vec![12]);
}

#[test]
fn bleuvar_ranks_disagreeing_samples_above_agreeing_ones() {
    let host = FakeHost::new(4)
        .with_samples("item a", &["the cat sat on the mat"])
        .with_samples(
            "item b",
            &[
                "the cat sat on the mat",
                "a dog ran in the park",
                "birds fly south in winter",
            ],
        )
        .with_samples(
            "item c",
            &["the cat sat on the mat", "the cat sat on a mat"],
        );
    let s = run("bleuvar", ctx(named_pool(3), vec![], 2), &host);
    assert_eq!(s.ids, vec![11, 12]);
    let sc = s.scores.unwrap();
    assert!(sc[0] > 0.5 && sc[1] > 0.0 && sc[1] < sc[0], "{sc:?}");
}

#[test]
fn bleuvar_scores_a_subsample_of_max_10k_and_10_percent() {
    // 500 items, k = 2: 50 items are scored (10% beats 10·k = 20), so exactly 50 generations.
    let pool: Vec<Example> = (0..500)
        .map(|i| ex(i, &format!("text number {i}")))
        .collect();
    let host = FakeHost::new(4);
    let s = run("bleuvar", ctx(pool, vec![], 2), &host);
    assert_eq!(s.ids.len(), 2);
    let generated = host
        .generated_items
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(generated, 50);
    // STRATEGIES.md's sampling: n = 10 at temperature 1, top_p 0.95.
    let calls = host.generate_options.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let o = &calls[0];
    assert_eq!((o.n, o.temperature, o.top_p), (10, 1.0, 0.95), "{o:?}");
}

/// n-gram coverage: b and c are identical and share frequent n-grams; after b is picked they
/// count as covered, so the greedy second pick is d, not c. a is fully covered by L.
#[test]
fn ngf_smp_rescores_after_each_pick() {
    let pool = vec![
        ex(10, "red green"),
        ex(11, "blue sky"),
        ex(12, "blue sky"),
        ex(13, "wild owl"),
    ];
    let labeled = vec![ex(90, "red green")];
    let s = run("ngf_smp", ctx(pool, labeled, 3), &FakeHost::new(4));
    assert_eq!(s.ids[..2], [11, 13]);
    let sc = s.scores.unwrap();
    assert!((sc[0] - 3f64.ln()).abs() < 1e-9, "{sc:?}");
    assert!((sc[1] - 2f64.ln()).abs() < 1e-9, "{sc:?}");
}

/// n-grams up to order 4 by default: L covers every 1-, 2- and 3-gram of "red green blue
/// pink" but not the 4-gram, so that item keeps ln 2 over its 10 distinct n-grams and beats
/// the fully covered "red green" (score 0). With orders up to 3 both score 0 and the lower id
/// would win.
#[test]
fn ngf_smp_counts_ngrams_up_to_order_four_by_default() {
    let pool = vec![ex(10, "red green"), ex(11, "red green blue pink")];
    let labeled = vec![ex(90, "red green blue"), ex(91, "green blue pink")];
    let s = run(
        "ngf_smp",
        ctx(pool.clone(), labeled.clone(), 1),
        &FakeHost::new(4),
    );
    assert_eq!(s.ids, vec![11]);
    let sc = s.scores.unwrap();
    assert!((sc[0] - 2f64.ln() / 10.0).abs() < 1e-12, "{sc:?}");
    let mut c = ctx(pool, labeled, 1);
    c.params.insert("max_order".into(), toml::Value::Integer(3));
    assert_eq!(run("ngf_smp", c, &FakeHost::new(4)).ids, vec![10]);
}

/// a copies its input (nothing unsupported); b invents every word; c half. Top-2: b, c.
#[test]
fn hadas_prefers_unsupported_outputs() {
    let pool = vec![
        ex(10, "quarterly budget review meeting friday"),
        ex(11, "team offsite planning notes"),
        ex(12, "client contract renewal terms"),
    ];
    let labeled = vec![ex(90, "project launch date moved")];
    let host = FakeHost::new(4)
        .with_greedy(
            &pool[0].input,
            "budget review meeting friday",
            vec![-0.1],
            vec![0.1],
        )
        .with_greedy(
            &pool[1].input,
            "zebras dance wildly tonight",
            vec![-0.1],
            vec![0.1],
        )
        .with_greedy(
            &pool[2].input,
            "contract renewal penguins arrive",
            vec![-0.1],
            vec![0.1],
        );
    let s = run("hadas", ctx(pool, labeled, 2), &host);
    assert_eq!(s.ids, vec![11, 12]);
}

/// Equal hallucination level, different profile: L's profile is "low BERTScore only"; p has
/// the same profile, q a "novel words only" profile, so q is the more diverse pick.
#[test]
fn hadas_diversity_term_prefers_profiles_unlike_the_labeled_ones() {
    let pool = vec![ex(10, "alpha beta gamma"), ex(11, "delta epsilon zeta")];
    // labeled: output "summary of …" → make it fully supported lexically but BERTScore 0.
    let labeled = vec![Example {
        id: 90,
        input: "omega psi chi".into(),
        output: "omega psi chi".into(),
        references: vec!["omega psi chi".into()],
    }];
    let host = FakeHost::new(4)
        .with_bertscore("omega psi chi", 0.0)
        .with_greedy(
            "alpha beta gamma",
            "alpha beta gamma",
            vec![-0.1],
            vec![0.1],
        )
        .with_bertscore("alpha beta gamma", 0.0)
        .with_greedy("delta epsilon zeta", "kappa", vec![-0.1], vec![0.1])
        .with_bertscore("kappa", 1.0);
    let s = run("hadas", ctx(pool, labeled, 1), &host);
    assert_eq!(s.ids, vec![11]);
}

/// Both outputs copy their inputs word for word, so the two lexical measures are 0 and every
/// profile points the same way (the diversity term is 0 for both): only the BERTScore term
/// separates them. The output the encoder finds unsupported (P = 0.1) must win; scoring with
/// P instead of 1 − P would pick the other.
#[test]
fn hadas_counts_low_bertscore_precision_as_unsupported() {
    let pool = vec![ex(10, "alpha beta gamma"), ex(11, "delta epsilon zeta")];
    let labeled = vec![Example {
        id: 90,
        input: "omega psi chi".into(),
        output: "omega psi chi".into(),
        references: vec!["omega psi chi".into()],
    }];
    let host = FakeHost::new(4)
        .with_bertscore("omega psi chi", 0.5)
        .with_greedy(
            "alpha beta gamma",
            "alpha beta gamma",
            vec![-0.1],
            vec![0.1],
        )
        .with_bertscore("alpha beta gamma", 0.9)
        .with_greedy(
            "delta epsilon zeta",
            "delta epsilon zeta",
            vec![-0.1],
            vec![0.1],
        )
        .with_bertscore("delta epsilon zeta", 0.1);
    let s = run("hadas", ctx(pool, labeled, 1), &host);
    assert_eq!(s.ids, vec![11]);
}

/// The weights: 0.67 on the hallucination level, 0.33 on diversity. a copies its input but
/// the encoder finds none of it supported (h = [1, 0, 0], level 0.33, the profile of L, so no
/// diversity); b adds one novel word and is mostly supported (h ≈ [0.3, 0.09, 0.1], level
/// 0.16, a profile unlike L's). The level decides at the spec's weights (a); swapped, the
/// diversity term would (b).
#[test]
fn hadas_weighs_the_hallucination_level_twice_the_diversity() {
    let pool = vec![
        ex(10, "alpha beta gamma"),
        ex(11, "delta epsilon zeta eta theta iota kappa lambda mu nu"),
    ];
    let labeled = vec![Example {
        id: 90,
        input: "omega psi chi".into(),
        output: "omega psi chi".into(),
        references: vec!["omega psi chi".into()],
    }];
    let b_output = "delta epsilon zeta eta theta iota kappa lambda mu nu omicron";
    let host = FakeHost::new(4)
        .with_bertscore("omega psi chi", 0.5)
        .with_greedy(
            "alpha beta gamma",
            "alpha beta gamma",
            vec![-0.1],
            vec![0.1],
        )
        .with_bertscore("alpha beta gamma", 0.0)
        .with_greedy(&pool[1].input, b_output, vec![-0.1], vec![0.1])
        .with_bertscore(b_output, 0.7);
    let c = ctx(pool, labeled, 1);
    assert_eq!(run("hadas", c.clone(), &host).ids, vec![10]);
    let mut swapped = c;
    swapped
        .params
        .insert("w_div".into(), toml::Value::Float(0.67));
    swapped
        .params
        .insert("w_halu".into(), toml::Value::Float(0.33));
    assert_eq!(run("hadas", swapped, &host).ids, vec![11]);
}

/// The pool's texts stay with the host: an array of every input handed to the script counts
/// against max_string_size as one string (here 20 inputs of ~1,000 characters against a
/// 10,000 limit), which stopped HADAS on any realistic pool under the default limit.
#[test]
fn hadas_runs_on_a_pool_whose_texts_together_exceed_max_string_size() {
    let mut host = FakeHost::new(4);
    let mut pool = Vec::new();
    for i in 0..20u64 {
        let input = format!("w{i} ").repeat(200);
        let output = if i == 7 {
            "penguins invent jazz".to_string()
        } else {
            format!("w{i} w{i}")
        };
        host = host.with_greedy(&input, &output, vec![-0.1], vec![0.1]);
        pool.push(ex(10 + i, &input));
    }
    let limits = SandboxLimits {
        max_string_size: 10_000,
        ..SandboxLimits::default()
    };
    let path = support::shipped_strategies::strategy_script("hadas");
    let s = select(&path, ctx(pool, vec![], 1), &host, &limits)
        .unwrap_or_else(|e| panic!("hadas: {e:#}"));
    assert_eq!(s.ids, vec![17]);
}

/// The README's "Adding a strategy" example, written to `dir`: taken from the README itself so
/// the two cannot drift apart.
fn readme_example_script(dir: &std::path::Path) -> PathBuf {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let section = &readme[readme.find("## Adding a strategy").expect("README section")..];
    let start = section.find("```rhai\n").expect("rhai block") + "```rhai\n".len();
    let source = &section[start..start + section[start..].find("```").unwrap()];
    let path = dir.join("short_first.rhai");
    std::fs::write(&path, source).unwrap();
    path
}

/// `lab check` on the README's example: a reader who copies it must get a clean check, not a
/// warning about the synthetic pool.
#[test]
fn the_readme_example_strategy_passes_lab_check_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let path = readme_example_script(dir.path());
    let summary = atgen_lab::strategy::cli::check_script(&path)
        .unwrap_or_else(|e| panic!("README example: {e:#}"));
    assert!(summary.contains("chose"), "{summary}");
    assert!(!summary.contains("warning"), "{summary}");
}

/// The README's example must pick the inputs with the fewest words, ties to the lower id.
#[test]
fn readme_example_strategy_picks_the_shortest_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = readme_example_script(dir.path());
    let pool = vec![
        ex(10, "a fairly long input text"),
        ex(11, "tiny"),
        ex(12, "medium text"),
        ex(13, "also tiny"),
        ex(14, "tiny"),
    ];
    let s = select(
        &path,
        ctx(pool, vec![], 3),
        &FakeHost::new(4),
        &SandboxLimits::default(),
    )
    .unwrap_or_else(|e| panic!("README example: {e:#}"));
    // Words: 11 and 14 have one, 12 and 13 two (the tie goes to the lower id), 10 four.
    assert_eq!(s.ids, vec![11, 14, 12]);
    assert_eq!(s.scores.unwrap(), vec![-1.0, -1.0, -2.0]);
}
