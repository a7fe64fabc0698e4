//! Every shipped strategy at the edges of its input: pools of one to three items, k at or
//! past the pool's size, duplicate inputs, with and without a labeled set. And the
//! tie-breaking and iteration rules STRATEGIES.md states for all of them.
mod support;

use atgen_lab::data::Example;
use atgen_lab::strategy::fake_host::FakeHost;
use atgen_lab::strategy::SelectionContext;
use std::collections::HashSet;
use support::shipped_strategies::{
    pool_item, run_strategy as run, selection_context, shipped_strategy_names as shipped,
};

fn ex(id: u64, input: &str) -> Example {
    pool_item(id, input, "out")
}

fn ctx(pool: Vec<Example>, labeled: Vec<Example>, k: usize, iteration: usize) -> SelectionContext {
    SelectionContext {
        iteration,
        max_new_tokens: 8,
        ..selection_context(pool, labeled, k, 5)
    }
}

#[test]
fn every_strategy_returns_min_k_and_pool_distinct_pool_ids_on_tiny_pools() {
    let names = shipped();
    assert!(names.len() >= 16, "{names:?}");
    let host = FakeHost::new(6);
    let labeled: Vec<Example> = (0..3)
        .map(|i| ex(900 + i, &format!("labeled text {i}")))
        .collect();
    for name in &names {
        for n in 1..=3u64 {
            let pool: Vec<Example> = (0..n)
                .map(|i| ex(40 + 3 * i, &format!("pool text number {i}")))
                .collect();
            let ids: HashSet<u64> = pool.iter().map(|e| e.id).collect();
            for k in [1, n as usize, n as usize + 3] {
                for (with_labeled, iteration) in [(false, 0), (true, 2)] {
                    let l = if with_labeled {
                        labeled.clone()
                    } else {
                        vec![]
                    };
                    let s = run(name, ctx(pool.clone(), l, k, iteration), &host);
                    let what = format!("{name}: |U| = {n}, k = {k}, labeled {with_labeled}");
                    assert_eq!(s.ids.len(), k.min(n as usize), "{what}: {:?}", s.ids);
                    let distinct: HashSet<u64> = s.ids.iter().copied().collect();
                    assert_eq!(distinct.len(), s.ids.len(), "{what}: repeats {:?}", s.ids);
                    assert!(distinct.is_subset(&ids), "{what}: not pool ids {:?}", s.ids);
                }
            }
        }
    }
}

/// With every input the same, every score ties exactly: a strategy that does not draw at
/// random must take the lowest ids.
#[test]
fn identical_inputs_tie_and_the_lower_ids_win() {
    let drawing = ["random", "bleuvar", "dual", "kmeans", "ldcal"];
    let host = FakeHost::new(6).with_samples("same", &["a b c d", "a b c e"]);
    let pool: Vec<Example> = (0..6).map(|i| ex(20 + i, "same")).collect();
    for name in shipped().iter().filter(|n| !drawing.contains(&n.as_str())) {
        let s = run(name, ctx(pool.clone(), vec![], 3, 1), &host);
        let mut ids = s.ids.clone();
        ids.sort_unstable();
        assert_eq!(ids, vec![20, 21, 22], "{name} picked {:?}", s.ids);
    }
}

/// DUAL keeps the top half of IDDS's proposals by BLEUVar; two proposals whose samples agree
/// equally (BLEUVar 0) tie, and the lower id is kept, whichever IDDS proposed first.
#[test]
fn dual_breaks_bleuvar_ties_by_the_lower_id() {
    // 13 is the densest item away from L, so IDDS proposes it first, then a lower id.
    let mut host = FakeHost::new(4);
    let vecs: [[f32; 4]; 4] = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.3],
        [1.0, 0.1, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
    ];
    let mut pool = Vec::new();
    for (i, v) in vecs.iter().enumerate() {
        let text = format!("u{i}");
        host = host
            .with_embedding(&text, v.to_vec())
            .with_samples(&text, &["the same words every time"]);
        pool.push(ex(10 + i as u64, &text));
    }
    let mut labeled = Vec::new();
    for i in 0..3 {
        let text = format!("l{i}");
        host = host.with_embedding(&text, vec![1.0, 0.0, 0.0, 0.0]);
        labeled.push(ex(90 + i, &text));
    }
    let proposals = {
        let mut c = ctx(pool.clone(), labeled.clone(), 2, 1);
        c.params.insert("lambda".into(), toml::Value::Float(0.667));
        run("idds", c, &host).ids
    };
    assert!(
        proposals[0] == 13 && proposals[1] < 13,
        "the pool must make IDDS propose 13 first: {proposals:?}"
    );
    let s = run("dual", ctx(pool, labeled, 2, 1), &host);
    assert_eq!(
        s.ids[0], proposals[1],
        "BLEUVar ties must keep the lower id of {proposals:?}: {:?}",
        s.ids
    );
}

/// The random strategy draws from the run seed and the iteration: the same seed at another
/// iteration gives another selection.
#[test]
fn random_draws_anew_at_each_iteration() {
    let host = FakeHost::new(4);
    let pool: Vec<Example> = (0..30).map(|i| ex(i, &format!("t{i}"))).collect();
    let picks: HashSet<Vec<u64>> = (1..=4)
        .map(|iteration| run("random", ctx(pool.clone(), vec![], 5, iteration), &host).ids)
        .collect();
    assert_eq!(picks.len(), 4, "iterations repeated a selection: {picks:?}");
    let again = run("random", ctx(pool, vec![], 5, 3), &host).ids;
    assert!(picks.contains(&again), "the same iteration must repeat");
}

/// DUAL samples as BLEUVar does (STRATEGIES.md): n = 10 at temperature 1, top_p 0.95, for
/// IDDS's k proposals only.
#[test]
fn dual_samples_ten_outputs_at_temperature_1_and_top_p_0_95() {
    let host = FakeHost::new(4);
    let pool: Vec<Example> = (0..12).map(|i| ex(i, &format!("text {i}"))).collect();
    let s = run("dual", ctx(pool, vec![], 4, 1), &host);
    assert_eq!(s.ids.len(), 4);
    let calls = host.generate_options.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let o = &calls[0];
    assert_eq!((o.n, o.temperature, o.top_p), (10, 1.0, 0.95), "{o:?}");
    let generated = host
        .generated_items
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(generated, 4);
}
