//! Host calls a script reaches only through its own code (no shipped strategy uses them):
//! ROUGE, counts over stemmed documents, teacher-forced scoring, per-token log-probabilities
//! and samples. Each script returns every pool id with the value under test as its score, so
//! the values are checked against a hand computation.
mod support;

use atgen_lab::data::Example;
use atgen_lab::strategy::fake_host::FakeHost;
use atgen_lab::strategy::{select, SandboxLimits, SelectionContext};
use support::shipped_strategies::{pool_item, selection_context};

fn ex(id: u64, input: &str) -> Example {
    pool_item(id, input, "out")
}

/// Runs `body` (a Rhai expression giving one FloatVec value per pool item) and returns the
/// values in pool order.
fn values(body: &str, pool: Vec<Example>, labeled: Vec<Example>, host: &FakeHost) -> Vec<f64> {
    try_values(body, pool, labeled, host).unwrap_or_else(|e| panic!("{e:#}"))
}

fn try_values(
    body: &str,
    pool: Vec<Example>,
    labeled: Vec<Example>,
    host: &FakeHost,
) -> anyhow::Result<Vec<f64>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.rhai");
    let source = format!(
        "// Returns every pool id with a host value as its score.\n// Deviation: none.\n\
         const KIND = \"al\";\nfn select(ctx, k) {{\n    let v = {body};\n    \
         #{{ ids: ctx.pool.ids(), scores: v }}\n}}\n"
    );
    std::fs::write(&path, source).unwrap();
    let k = pool.len();
    let c: SelectionContext = selection_context(pool, labeled, k, 1);
    let s = select(&path, c, host, &SandboxLimits::default())?;
    Ok(s.scores.expect("scores"))
}

fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-9, "{got:?} vs {want:?}");
    }
}

#[test]
fn rouge_scores_each_hypothesis_against_its_best_reference() {
    let pool = vec![
        ex(10, "the cat sat"),
        ex(11, "a dog"),
        ex(12, "nothing here"),
    ];
    let host = FakeHost::new(4);
    // rouge1 F1: 2 of 3 words shared both ways → 2/3; against the better of two references,
    // P = 1, R = 2/3 → 0.8; no shared word → 0.
    let got = values(
        r#"ctx.rouge("rouge1", ctx.pool.inputs(), ["the cat ran", ["cats", "a dog barked"], "the end"])"#,
        pool.clone(),
        vec![],
        &host,
    );
    assert_close(&got, &[2.0 / 3.0, 0.8, 0.0]);
    // One hypothesis at a time; rougeL's LCS "the cat" of 3 and 2 words: P = 2/3, R = 1.
    let got = values(
        r#"float_vec([ctx.rouge("rougeL", "the cat sat", "the cat"), ctx.rouge("rouge2", "the cat sat", ["the cat sat"]), 0.0])"#,
        pool.clone(),
        vec![],
        &host,
    );
    assert_close(&got, &[0.8, 1.0, 0.0]);
    let err = try_values(
        r#"ctx.rouge("rougeX", ctx.pool.inputs(), ["a", "b", "c"])"#,
        pool,
        vec![],
        &host,
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("unknown kind `rougeX`"),
        "{err:#}"
    );
}

#[test]
fn documents_count_their_words_and_the_ngrams_the_labeled_set_lacks() {
    let pool = vec![
        ex(10, "apple banana cherry date"),
        ex(11, "apple banana"),
        ex(12, "kiwi"),
    ];
    let labeled = vec![ex(1, "apple banana melon")];
    let host = FakeHost::new(4);
    let got = values(
        "ctx.stemmed(ctx.pool).lengths()",
        pool.clone(),
        labeled.clone(),
        &host,
    );
    assert_close(&got, &[4.0, 2.0, 1.0]);
    // Bigrams: {apple banana, banana cherry, cherry date} less the labeled {apple banana,
    // banana melon} → 2/3; {apple banana} → 0; "kiwi" has none → 0.
    let got = values(
        "ctx.stemmed(ctx.pool).novel_ngram_fraction(ctx.stemmed(ctx.labeled), 2)",
        pool.clone(),
        labeled.clone(),
        &host,
    );
    assert_close(&got, &[2.0 / 3.0, 0.0, 0.0]);
    // Unigrams: cherry and date of four → 0.5; none of two → 0; kiwi → 1.
    let got = values(
        "ctx.stemmed(ctx.pool).novel_ngram_fraction(ctx.stemmed(ctx.labeled), 1)",
        pool,
        labeled,
        &host,
    );
    assert_close(&got, &[0.5, 0.0, 1.0]);
}

#[test]
fn score_gives_each_item_the_log_probabilities_of_its_output() {
    let pool = vec![ex(10, "x"), ex(11, "y"), ex(12, "z")];
    // The fake host scores -1 per word of the output (one token for an empty output).
    let host = FakeHost::new(4);
    let got = values(
        r#"float_vec(ctx.score(ctx.pool, ["one two three", "one", ""]).map(|t| t.sum()))"#,
        pool.clone(),
        vec![],
        &host,
    );
    assert_close(&got, &[-3.0, -1.0, -1.0]);
    let err = try_values(
        r#"float_vec(ctx.score(ctx.pool, ["one"]).map(|t| t.sum()))"#,
        pool,
        vec![],
        &host,
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("score: 1 outputs for a view of 3 items"),
        "{err:#}"
    );
}

#[test]
fn generations_give_per_token_log_probabilities_and_their_samples() {
    let pool = vec![ex(10, "first"), ex(11, "second")];
    let host = FakeHost::new(4)
        .with_greedy("first", "a b", vec![-0.5, -1.5], vec![0.1, 0.2])
        .with_greedy("second", "c", vec![-2.0], vec![0.3])
        .with_samples("first", &["s1", "s2", "s3"])
        .with_samples("second", &["t1", "t2", "t3"]);
    // Token log-probabilities: the last token's of each item.
    let got = values(
        "float_vec(ctx.generate(ctx.pool).token_logprobs().map(|t| t.get(t.len() - 1)))",
        pool.clone(),
        vec![],
        &host,
    );
    assert_close(&got, &[-1.5, -2.0]);
    // Samples: all three, or the first two; scored by how many there are and whether the
    // first is the host's first sample.
    let got = values(
        r#"{ let g = ctx.generate(ctx.pool, #{ n: 3, temperature: 1.0 });
             let all = g.samples(); let two = g.samples(2);
             float_vec([all[0].len() * 10 + two[0].len() + if two[0][0] == "s1" { 100 } else { 0 },
                        all[1].len() * 10 + two[1].len() + if two[1][1] == "t2" { 100 } else { 0 }]) }"#,
        pool,
        vec![],
        &host,
    );
    assert_close(&got, &[132.0, 132.0]);
}

#[test]
fn each_sample_reads_like_the_first_and_lengths_count_tokens() {
    let pool = vec![ex(10, "first"), ex(11, "second")];
    let host = FakeHost::new(4)
        .with_greedy("first", "a b", vec![-0.5, -1.5], vec![0.1, 0.2])
        .with_greedy("second", "c", vec![-2.0], vec![0.3])
        .with_samples("first", &["s1", "s2", "s3"])
        .with_samples("second", &["t1", "t2", "t3"]);
    // A length penalty without a loop: sum_logprob / tokens ** 0.5.
    let got = values(
        "{ let g = ctx.generate(ctx.pool); g.sum_logprob() / g.lengths() ** 0.5 }",
        pool.clone(),
        vec![],
        &host,
    );
    assert_close(&got, &[-2.0 / 2f64.sqrt(), -2.0]);
    let got = values(
        "float_vec([4.0, 9.0]).sqrt() + 2 ** float_vec([1.0, 0.0])",
        pool.clone(),
        vec![],
        &host,
    );
    assert_close(&got, &[4.0, 4.0]);
    // Sample 1 of each item, read with the methods that read the first.
    let got = values(
        r#"{ let g = ctx.generate(ctx.pool, #{ n: 3, temperature: 1.0 }).sample(1);
             let t = g.texts();
             float_vec([if t[0] == "s2" { 1 } else { 0 }, if t[1] == "t2" { 1 } else { 0 }])
                 + g.lengths() * 10 }"#,
        pool.clone(),
        vec![],
        &host,
    );
    assert_close(&got, &[21.0, 11.0]);
    let err = try_values(
        "ctx.generate(ctx.pool, #{ n: 3, temperature: 1.0 }).sample(3).mean_logprob()",
        pool,
        vec![],
        &host,
    )
    .unwrap_err();
    let m = format!("{err:#}");
    assert!(
        m.contains("each item has 3 samples, so `j` is 0 to 2"),
        "{m}"
    );
    assert!(m.contains("option `n`"), "{m}");
}
