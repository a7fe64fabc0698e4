//! The engine around the scripts: every built-in strategy compiles, validates and repeats;
//! primitives are cached; encoder embeddings persist on disk; limits hold.
use atgen_lab::data::Example;
use atgen_lab::strategy::cli::{check_script, synthetic_examples};
use atgen_lab::strategy::fake_host::FakeHost;
use atgen_lab::strategy::registry;
use atgen_lab::strategy::{select, SandboxLimits, SelectionContext};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

const ALL: [&str; 16] = [
    "bleuvar",
    "coreset",
    "dual",
    "facility_location",
    "graph_cut",
    "hadas",
    "huds",
    "idds",
    "kmeans",
    "lc",
    "ldcal",
    "mnlp",
    "mte",
    "ngf_smp",
    "random",
    "te_delfy",
];

fn strategies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("strategies")
}

fn ctx(pool: Vec<Example>, k: usize, seed: u64) -> SelectionContext {
    SelectionContext {
        pool,
        labeled: synthetic_examples(5, 9000, 2),
        k,
        iteration: 1,
        planned_iterations: 3,
        seed,
        max_new_tokens: 8,
        ..SelectionContext::default()
    }
}

#[test]
fn every_builtin_strategy_is_listed_with_kind_description_and_primitives() {
    let infos = registry::list(&strategies_dir()).unwrap();
    let names: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ALL);
    for i in &infos {
        assert!(i.problem.is_none(), "{}: {:?}", i.name, i.problem);
        assert!(i.description.len() > 20, "{}", i.name);
        assert!(i.deviation.is_some(), "{} lacks a Deviation: line", i.name);
    }
    let kind = |n: &str| infos.iter().find(|i| i.name == n).unwrap().kind.clone();
    assert_eq!(kind("idds"), "ed");
    assert_eq!(kind("lc"), "al");
    let needs = |n: &str| {
        infos
            .iter()
            .find(|i| i.name == n)
            .unwrap()
            .primitives
            .clone()
    };
    assert!(needs("ldcal").contains(&"base_generate".to_string()));
    assert!(needs("bleuvar").contains(&"bleu_variance".to_string()));
    assert!(!needs("idds").contains(&"generate".to_string()));
}

#[test]
fn every_builtin_strategy_passes_the_check_and_is_deterministic() {
    for name in ALL {
        let msg = check_script(&strategies_dir().join(format!("{name}.rhai")))
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(msg.starts_with(&format!("{name} (")), "{msg}");
    }
}

#[test]
fn seeds_change_stochastic_selections_and_repeat_them() {
    // 200 items, k = 2: bleuvar scores a seed-dependent subsample of 20.
    let pool = synthetic_examples(200, 100, 5);
    let host = FakeHost::new(8);
    for name in ["random", "kmeans", "bleuvar"] {
        let p = strategies_dir().join(format!("{name}.rhai"));
        let l = SandboxLimits::default();
        let a = select(&p, ctx(pool.clone(), 2, 1), &host, &l).unwrap();
        let b = select(&p, ctx(pool.clone(), 2, 1), &host, &l).unwrap();
        assert_eq!(a.ids, b.ids, "{name}");
        let differs =
            (2..12).any(|s| select(&p, ctx(pool.clone(), 2, s), &host, &l).unwrap().ids != a.ids);
        assert!(differs, "{name} ignores the seed");
    }
}

fn temp_script(dir: &Path, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    let p = dir.join("probe.rhai");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn generations_are_cached_within_a_query_per_options() {
    let dir = tempfile::tempdir().unwrap();
    let p = temp_script(
        dir.path(),
        r#"const KIND = "al";
fn select(ctx, k) {
    let a = ctx.generate(ctx.pool, #{});
    let b = ctx.generate(ctx.pool, #{});
    let half = ctx.pool.take(range_vec(5));
    let c = ctx.generate(half, #{});
    let d = ctx.generate(half, #{ max_new_tokens: 3 });
    ctx.pool.ids().take((a.mean_logprob() + b.mean_logprob()).topk(k))
}"#,
    );
    let host = FakeHost::new(4);
    select(
        &p,
        ctx(synthetic_examples(10, 0, 1), 2, 1),
        &host,
        &SandboxLimits::default(),
    )
    .unwrap();
    // 10 for the pool, 0 for the repeat and the subset, 5 for new options.
    assert_eq!(host.generated_items.load(Ordering::Relaxed), 15);
}

#[test]
fn encoder_embeddings_persist_on_disk_across_queries() {
    let cache = tempfile::tempdir().unwrap();
    let p = strategies_dir().join("idds.rhai");
    let mut c = ctx(synthetic_examples(20, 0, 4), 3, 1);
    c.embedding_cache_dir = Some(cache.path().to_path_buf());
    c.dataset_key = Some("synthetic@fake-encoder".into());
    let first_host = FakeHost::new(6);
    let a = select(&p, c.clone(), &first_host, &SandboxLimits::default()).unwrap();
    assert_eq!(first_host.embedded_texts.load(Ordering::Relaxed), 25);
    let files: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
    // A new process (fresh host) with the same dataset key reads every row from disk.
    let second_host = FakeHost::new(6);
    let b = select(&p, c.clone(), &second_host, &SandboxLimits::default()).unwrap();
    assert_eq!(second_host.embedded_texts.load(Ordering::Relaxed), 0);
    assert_eq!(a.ids, b.ids);
    // A different dataset key does not reuse them.
    c.dataset_key = Some("other@fake-encoder".into());
    let third_host = FakeHost::new(6);
    select(&p, c, &third_host, &SandboxLimits::default()).unwrap();
    assert_eq!(third_host.embedded_texts.load(Ordering::Relaxed), 25);
}

#[test]
fn a_corrupt_embedding_cache_is_reported_with_its_path() {
    let cache = tempfile::tempdir().unwrap();
    let p = strategies_dir().join("idds.rhai");
    let mut c = ctx(synthetic_examples(6, 0, 4), 2, 1);
    c.embedding_cache_dir = Some(cache.path().to_path_buf());
    c.dataset_key = Some("k".into());
    select(&p, c.clone(), &FakeHost::new(4), &SandboxLimits::default()).unwrap();
    let file = std::fs::read_dir(cache.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read(&file).unwrap();
    std::fs::write(&file, b"ATGE garbage").unwrap();
    let e = select(&p, c.clone(), &FakeHost::new(4), &SandboxLimits::default()).unwrap_err();
    let m = format!("{e:#}");
    assert!(
        m.contains("is corrupt") && m.contains(&file.display().to_string()),
        "{m}"
    );
    // A header whose row count overflows the length arithmetic: corrupt, not a panic.
    let mut huge = good.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&file, &huge).unwrap();
    let e = select(&p, c, &FakeHost::new(4), &SandboxLimits::default()).unwrap_err();
    assert!(format!("{e:#}").contains("is corrupt"), "{e:#}");
}

#[test]
fn data_size_limits_stop_a_script_that_builds_huge_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let p = temp_script(
        dir.path(),
        "const KIND = \"al\";\nfn select(ctx, k) { let a = []; for i in 0..100000 { a.push(i); } [] }",
    );
    let limits = SandboxLimits {
        max_array_size: 1000,
        ..SandboxLimits::default()
    };
    let e = select(
        &p,
        ctx(synthetic_examples(3, 0, 1), 1, 1),
        &FakeHost::new(4),
        &limits,
    );
    let m = format!("{:#}", e.unwrap_err());
    assert!(m.contains("too large") && m.contains("probe.rhai"), "{m}");
}

#[test]
fn integer_params_fill_float_defaults_and_logs_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = temp_script(
        dir.path(),
        r#"const KIND = "al";
fn select(ctx, k) {
    let l = ctx.param("lambda", 0.5);
    ctx.log(`lambda ${l} is ${type_of(l)}`);
    ctx.pool.ids().take(range_vec(k))
}"#,
    );
    let mut c = ctx(synthetic_examples(3, 0, 1), 1, 1);
    c.params.insert("lambda".into(), toml::Value::Integer(1));
    let s = select(&p, c, &FakeHost::new(4), &SandboxLimits::default()).unwrap();
    assert_eq!(s.logs, vec!["lambda 1.0 is f64".to_string()]);
}

#[test]
fn timing_splits_a_query_into_host_kernel_and_script_time() {
    let p = strategies_dir().join("idds.rhai");
    let s = select(
        &p,
        ctx(synthetic_examples(300, 0, 4), 10, 1),
        &FakeHost::new(32),
        &SandboxLimits::default(),
    )
    .unwrap();
    let t = s.timing;
    assert!(t.host_s > 0.0 && t.kernel_s > 0.0, "{t:?}");
    assert!(t.host_s + t.kernel_s <= t.total_s, "{t:?}");
    assert!((t.script_s() - (t.total_s - t.host_s - t.kernel_s)).abs() < 1e-12);
}

/// The scores a one-line script returns for a pool of 3 (ids 0..3, nothing labeled).
fn scores_of(expr: &str) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("probe.rhai");
    let body = format!(
        "const KIND = \"al\";\nfn select(ctx, k) {{\n  let s = {expr};\n  #{{ids: ctx.pool.ids(), scores: s}}\n}}"
    );
    std::fs::write(&p, body).unwrap();
    let mut c = ctx(synthetic_examples(3, 0, 1), 3, 1);
    c.labeled.clear();
    select(&p, c, &FakeHost::new(4), &SandboxLimits::default())
        .unwrap_or_else(|e| panic!("{expr}: {e:#}"))
        .scores
        .unwrap()
}

#[test]
fn float_vecs_have_element_wise_max_and_min() {
    let a = "float_vec([1.0, 5.0, 0.0 / 0.0])";
    let b = "float_vec([3.0, 2.0, 4.0])";
    assert_eq!(scores_of(&format!("{a}.max_with({b})")), [3.0, 5.0, 4.0]);
    assert_eq!(scores_of(&format!("{a}.min_with({b})")), [1.0, 2.0, 4.0]);
    assert_eq!(scores_of(&format!("{b}.max_with(2.5)")), [3.0, 2.5, 4.0]);
    assert_eq!(scores_of(&format!("{b}.min_with(2.5)")), [2.5, 2.0, 2.5]);
}

#[test]
fn documented_vector_edge_values_hold() {
    // The similarity of each item to an empty set is -1, the lowest cosine: greedy diversity
    // scripts can start from an empty labeled set.
    let empty = "ctx.embed(ctx.pool).max_similarity_to(ctx.embed(ctx.labeled))";
    assert_eq!(scores_of(empty), [-1.0, -1.0, -1.0]);
    assert_eq!(scores_of("full(3, 7.0).minmax()"), [0.0, 0.0, 0.0]);
    // FloatVec + FloatVec adds; IntVec + IntVec concatenates; NaN ranks last in topk.
    let sum = "float_vec([1.0, 2.0, 3.0]) + float_vec([3.0, 4.0, 5.0])";
    assert_eq!(scores_of(sum), [4.0, 6.0, 8.0]);
    assert_eq!(
        scores_of("(int_vec([1]) + int_vec([2, 3])).to_float()"),
        [1.0, 2.0, 3.0]
    );
    let nan_last = "float_vec([0.0 / 0.0, 1.0, 2.0]).topk(3).to_float()";
    assert_eq!(scores_of(nan_last), [2.0, 1.0, 0.0]);
}
