//! Embedding-based strategies on pools whose geometry fixes the right answer.
mod support;

use atgen_lab::data::Example;
use atgen_lab::strategy::fake_host::FakeHost;
use atgen_lab::strategy::SelectionContext;
use support::shipped_strategies::{pool_item, run_strategy as run, selection_context};

fn ex(id: u64, input: &str) -> Example {
    pool_item(id, input, "out")
}

fn ctx(pool: Vec<Example>, labeled: Vec<Example>, k: usize) -> SelectionContext {
    selection_context(pool, labeled, k, 3)
}

/// Items `first_id..` named `{tag}{i}` with the given embeddings.
fn items(host: FakeHost, first_id: u64, tag: &str, vecs: &[[f32; 4]]) -> (FakeHost, Vec<Example>) {
    let mut h = host;
    let mut out = Vec::new();
    for (i, v) in vecs.iter().enumerate() {
        let text = format!("{tag}{i}");
        h = h.with_embedding(&text, v.to_vec());
        out.push(ex(first_id + i as u64, &text));
    }
    (h, out)
}

const E1: [f32; 4] = [1.0, 0.0, 0.0, 0.0];
const E2: [f32; 4] = [0.0, 1.0, 0.0, 0.0];
const E3: [f32; 4] = [0.0, 0.0, 1.0, 0.0];

/// Three tight clusters on orthogonal axes, sizes 4, 3, 2; the first member of each is central.
fn three_clusters(host: FakeHost) -> (FakeHost, Vec<Example>) {
    items(
        host,
        10,
        "p",
        &[
            [1.0, 0.0, 0.0, 0.0],
            [1.0, 0.1, 0.0, 0.05],
            [1.0, -0.1, 0.0, 0.05],
            [1.0, 0.0, 0.1, -0.05],
            [0.0, 1.0, 0.0, 0.0],
            [0.1, 1.0, 0.0, 0.05],
            [-0.1, 1.0, 0.0, -0.05],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.1, 1.0, 0.1],
        ],
    )
}

fn cluster_of(id: u64) -> usize {
    match id {
        10..=13 => 0,
        14..=16 => 1,
        _ => 2,
    }
}

/// Two opposite clusters (cosine ≈ −1 between them) and one item orthogonal to both. With the
/// spec's similarity (1 + cos)/2 the orthogonal item covers everything at 1/2 and is the best
/// single pick (objective 4 against ≈ 3.5 for a cluster member); with raw cosine, whose
/// negative values the max clips to 0, a cluster member would win (≈ 3 against 1).
#[test]
fn facility_location_counts_opposite_items_through_the_shifted_similarity() {
    let (host, pool) = items(
        FakeHost::new(4),
        10,
        "q",
        &[
            [1.0, 0.0, 0.0, 0.0],
            [1.0, 0.1, 0.0, 0.0],
            [1.0, -0.1, 0.0, 0.0],
            [-1.0, 0.0, 0.0, 0.0],
            [-1.0, 0.1, 0.0, 0.0],
            [-1.0, -0.1, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
        ],
    );
    let s = run("facility_location", ctx(pool, vec![], 1), &host);
    assert_eq!(s.ids, vec![16]);
}

#[test]
fn facility_location_takes_one_item_per_well_separated_cluster() {
    let (host, pool) = three_clusters(FakeHost::new(4));
    let s = run("facility_location", ctx(pool.clone(), vec![], 3), &host);
    let mut clusters: Vec<usize> = s.ids.iter().map(|&i| cluster_of(i)).collect();
    assert_eq!(clusters[0], 0, "the biggest cluster first: {:?}", s.ids);
    clusters.sort();
    assert_eq!(clusters, vec![0, 1, 2], "{:?}", s.ids);
    // With cluster 0 already labeled, the two picks cover clusters 1 and 2.
    let (host, labeled) = items(host, 90, "l", &[E1]);
    let s = run("facility_location", ctx(pool, labeled, 2), &host);
    let mut clusters: Vec<usize> = s.ids.iter().map(|&i| cluster_of(i)).collect();
    clusters.sort();
    assert_eq!(clusters, vec![1, 2], "{:?}", s.ids);
}

#[test]
fn kmeans_takes_the_central_item_of_each_cluster() {
    let (host, pool) = three_clusters(FakeHost::new(4));
    let mut s = run("kmeans", ctx(pool, vec![], 3), &host).ids;
    s.sort();
    assert_eq!(s, vec![10, 14, 17]);
    // The same clusters with each central item at a middle id (12, 15, 18), so "the lowest
    // id of each cluster" cannot pass for "the item nearest the centroid".
    let (host, pool) = items(
        FakeHost::new(4),
        10,
        "m",
        &[
            [1.0, 0.1, 0.0, 0.05],
            [1.0, -0.1, 0.0, 0.05],
            [1.0, 0.0, 0.0, 0.0],
            [1.0, 0.0, 0.1, -0.05],
            [0.1, 1.0, 0.0, 0.05],
            [0.0, 1.0, 0.0, 0.0],
            [-0.1, 1.0, 0.0, -0.05],
            [0.0, 0.1, 1.0, 0.1],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, -0.1, 1.0, -0.1],
        ],
    );
    let mut s = run("kmeans", ctx(pool, vec![], 3), &host).ids;
    s.sort();
    assert_eq!(s, vec![12, 15, 18]);
}

/// A dense region near L (ids 10–12), an equally dense one away from L (13–15), and an outlier
/// (16) that is the farthest of all from L: diversity alone (λ = 0) would take the outlier, so
/// the pick shows the typicality term at work.
#[test]
fn idds_prefers_the_dense_region_away_from_the_labeled_set() {
    let (host, pool) = items(
        FakeHost::new(4),
        10,
        "p",
        &[
            [1.0, 0.0, 0.0, 0.1],
            [1.0, 0.05, 0.0, 0.1],
            [1.0, -0.05, 0.0, 0.1],
            [0.0, 1.0, 0.0, 0.1],
            [0.05, 1.0, 0.0, 0.1],
            [-0.05, 1.0, 0.0, 0.1],
            [-0.3, 0.0, 0.0, 1.0],
        ],
    );
    let (host, labeled) = items(host, 90, "l", &[E1, E1, E1]);
    let s = run("idds", ctx(pool.clone(), labeled.clone(), 1), &host);
    assert!((13..=15).contains(&s.ids[0]), "{:?}", s.ids);
    // Three picks, against a direct evaluation of STRATEGIES.md's formula (λ = 0.667): 15 (the
    // far side of the region away from L), then 14, then — the region now counted as chosen —
    // 11 from the other region. Without the L ∪ Q term (λ = 1) it would be 14, 11, 13.
    let s = run("idds", ctx(pool, labeled, 3), &host);
    assert_eq!(s.ids, vec![15, 14, 11]);
}

#[test]
fn coreset_takes_the_items_farthest_from_the_labeled_set() {
    let neg = [-1.0, 0.0, 0.0, 0.0];
    let (host, pool) = items(
        FakeHost::new(4),
        10,
        "p",
        &[E1, [1.0, 0.1, 0.0, 0.0], E2, neg],
    );
    let (host, labeled) = items(host, 90, "l", &[E1]);
    let s = run("coreset", ctx(pool, labeled, 2), &host);
    assert_eq!(s.ids, vec![13, 12]);
    // Greedy, not the k farthest at once: after 180° is taken, 200° is close to a chosen item,
    // so the second pick is 90° although 200° is farther from L.
    let (host, pool) = items(
        FakeHost::new(4),
        10,
        "g",
        &[
            [-1.0, 0.0, 0.0, 0.0],
            [-0.94, -0.342, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
        ],
    );
    let (host, labeled) = items(host, 90, "l", &[E1]);
    assert_eq!(
        run("coreset", ctx(pool, labeled, 2), &host).ids,
        vec![10, 12]
    );
}

/// Five near-identical items on e1, two on e2. Gain of j: coverage − λ(2·r_j + s_jj).
/// λ = 0.5: a second e1 item still gains 5 − 1.5 > 2 − 0.5, so graph cut stays representative;
/// λ = 2: 5 − 6 < 2 − 2, so it diversifies to e2.
#[test]
fn graph_cut_trades_coverage_for_diversity_with_lambda() {
    let a = [[1.0, 0.0, 0.0, 0.0]; 5];
    let b = [[0.0, 1.0, 0.0, 0.0]; 2];
    let (host, mut pool) = items(FakeHost::new(4), 10, "a", &a);
    let (host, more) = items(host, 20, "b", &b);
    pool.extend(more);
    let s = run("graph_cut", ctx(pool.clone(), vec![], 2), &host);
    assert!(s.ids.iter().all(|&i| i < 20), "{:?}", s.ids);
    let mut c = ctx(pool, vec![], 2);
    c.params.insert("lambda".into(), toml::Value::Float(2.0));
    let s = run("graph_cut", c, &host);
    assert!(s.ids[0] < 20 && s.ids[1] >= 20, "{:?}", s.ids);
    // Five against three: a second e1 item gains 5 − 3λ, an e2 item 3 − λ, so the default
    // λ = 0.5 stays representative where any default of 1 or more would diversify.
    let (host, mut pool) = items(FakeHost::new(4), 10, "a", &a);
    let (host, more) = items(host, 20, "b", &[[0.0, 1.0, 0.0, 0.0]; 3]);
    pool.extend(more);
    let s = run("graph_cut", ctx(pool.clone(), vec![], 2), &host);
    assert!(s.ids.iter().all(|&i| i < 20), "{:?}", s.ids);
    let mut c = ctx(pool, vec![], 2);
    c.params.insert("lambda".into(), toml::Value::Float(1.2));
    let s = run("graph_cut", c, &host);
    assert!(s.ids[1] >= 20, "λ = 1.2 diversifies: {:?}", s.ids);
}

/// Two strata: uncertain (ids 10–12, mnlp 1.0) and certain (13–15, mnlp 0.1); in each, two
/// close items and an outlier (12, 15) far from the stratum's centroid (clusters = 1).
fn huds_case(lambda: f64) -> Vec<u64> {
    let (mut host, mut pool) = items(
        FakeHost::new(4),
        10,
        "h",
        &[
            [1.0, 0.1, 0.0, 0.0],
            [1.0, -0.1, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
        ],
    );
    let (h2, low) = items(
        host,
        13,
        "l",
        &[
            [0.1, 1.0, 0.0, 0.0],
            [-0.1, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ],
    );
    host = h2;
    for e in &pool {
        host = host.with_greedy(&e.input, "y", vec![-1.0], vec![0.0]);
    }
    for e in &low {
        host = host.with_greedy(&e.input, "y", vec![-0.1], vec![0.0]);
    }
    pool.extend(low);
    let mut c = ctx(pool, vec![], 2);
    c.params.insert("clusters".into(), toml::Value::Integer(1));
    c.params.insert("lambda".into(), toml::Value::Float(lambda));
    run("huds", c, &host).ids
}

#[test]
fn huds_mixes_stratified_uncertainty_and_distance_to_centroid() {
    assert_eq!(huds_case(0.0), vec![10, 11], "pure uncertainty");
    assert_eq!(huds_case(1.0), vec![12, 15], "pure diversity: the outliers");
    assert_eq!(
        huds_case(0.5),
        vec![12, 10],
        "the uncertain outlier, then uncertainty"
    );
}

/// HUDS on `(mnlp, embedding)` items with ids from 10 and the given params.
fn huds_pick(items_u_e: &[(f32, [f32; 4])], k: usize, params: &[(&str, toml::Value)]) -> Vec<u64> {
    let vecs: Vec<[f32; 4]> = items_u_e.iter().map(|(_, e)| *e).collect();
    let (mut host, pool) = items(FakeHost::new(4), 10, "u", &vecs);
    for (e, (u, _)) in pool.iter().zip(items_u_e) {
        host = host.with_greedy(&e.input, "y", vec![-u], vec![0.0]);
    }
    let mut c = ctx(pool, vec![], k);
    for (name, v) in params {
        c.params.insert((*name).into(), v.clone());
    }
    run("huds", c, &host).ids
}

/// The uncertainty term spans 0–10, the distance term 0–0.55. Normalised (the spec), the
/// item far from its stratum's centroid at slightly lower uncertainty wins (id 12: 0.95
/// against 0.60 for id 10); with ATGen's raw sum the larger range drowns the distance and the
/// most uncertain item wins (10: 5.05 against 4.78).
#[test]
fn huds_normalises_both_terms_before_mixing() {
    let picked = huds_pick(
        &[
            (10.0, E1), // 10: most uncertain, near the top stratum's centroid
            (9.5, E1),  // 11: its twin
            (9.0, E2),  // 12: top stratum, far from the centroid
            (0.0, E3),  // 13: alone in the bottom stratum
        ],
        1,
        &[("clusters", toml::Value::Integer(1))],
    );
    assert_eq!(picked, vec![12]);
}

/// One stratum of seven: a spread group around E1 and four far singles. With the default
/// c = min(5, 7) clusters the singles are their own centroids (distance 0) and the group's
/// off-centre members are the most diverse (ids 11, then 12); one centroid for the stratum
/// (ATGen's setting) would make the singles the far ones.
#[test]
fn huds_clusters_each_stratum_into_up_to_five_centroids_by_default() {
    let pool = [
        (1.0, E1),                    // 10: the group's centre
        (1.1, [1.0, 0.2, 0.0, 0.0]),  // 11: farthest from the group's centroid
        (1.2, [1.0, -0.1, 0.0, 0.0]), // 12: next
        (1.3, E2),
        (1.4, E3),
        (1.5, [0.0, 0.0, 0.0, 1.0]),
        (1.6, [0.0, -1.0, 0.0, 0.0]),
    ];
    let one_stratum = [
        ("strata", toml::Value::Integer(1)),
        ("lambda", toml::Value::Float(1.0)),
    ];
    assert_eq!(huds_pick(&pool, 2, &one_stratum), vec![11, 12]);
    let mut one_centroid = one_stratum.to_vec();
    one_centroid.push(("clusters", toml::Value::Integer(1)));
    let far = huds_pick(&pool, 2, &one_centroid);
    assert!(far.iter().all(|&id| id >= 13), "one centroid: {far:?}");
}

/// Ten strata by default. Uncertainties over [0, 1]: with strata of width 0.1 the bottom one
/// holds 10, 11 (E1) and 12 (E2), and 12 is far from their centroid; with 5 strata 13 and 14
/// (E2) join it and pull the centroid to E2's side (10 is then the far one); with 20 every
/// stratum holds one direction and nothing is far.
#[test]
fn huds_splits_the_uncertainty_range_into_ten_strata_by_default() {
    let pool = [
        (0.0, E1),
        (0.04, E1),
        (0.08, E2),
        (0.12, E2),
        (0.15, E2),
        (1.0, E1),
    ];
    let params = |strata: Option<i64>| {
        let mut p = vec![
            ("clusters", toml::Value::Integer(1)),
            ("lambda", toml::Value::Float(1.0)),
        ];
        if let Some(b) = strata {
            p.push(("strata", toml::Value::Integer(b)));
        }
        p
    };
    assert_eq!(huds_pick(&pool, 1, &params(None)), vec![12]);
    assert_eq!(huds_pick(&pool, 1, &params(Some(5))), vec![10]);
    assert_eq!(huds_pick(&pool, 1, &params(Some(20))), vec![10]);
}

#[test]
fn dual_keeps_the_most_uncertain_half_of_idds_proposals() {
    // k = pool: IDDS proposes everything, BLEUVar keeps the two most variable, in order.
    let (host, pool) = items(
        FakeHost::new(4),
        10,
        "d",
        &[E1, E2, E3, [0.0, 0.0, 0.0, 1.0]],
    );
    let host = host
        .with_samples("d0", &["one two three four"])
        .with_samples("d1", &["one two three four", "five six seven eight"])
        .with_samples("d2", &["one two three four"])
        .with_samples("d3", &["one two three four", "one two three five"]);
    let s = run("dual", ctx(pool.clone(), vec![], 4), &host);
    assert_eq!(s.ids[..2], [11, 13]);
    // IDDS proposes from the region away from L (e2); the most variable item of all (e1,
    // next to L) is never proposed, so it cannot be kept.
    let (host, pool) = items(
        FakeHost::new(4),
        10,
        "q",
        &[
            E1,
            [1.0, 0.05, 0.0, 0.0],
            E2,
            [0.05, 1.0, 0.0, 0.0],
            [-0.05, 1.0, 0.0, 0.0],
        ],
    );
    let host = host
        .with_samples(
            "q0",
            &["alpha beta gamma", "delta epsilon zeta", "eta theta iota"],
        )
        .with_samples("q2", &["one two three four", "one two three five"])
        .with_samples("q3", &["one two three four", "one two three five"])
        .with_samples("q4", &["one two three four", "one two three five"]);
    let (host, labeled) = items(host, 90, "l", &[E1, E1, E1, E1, E1]);
    let s = run("dual", ctx(pool, labeled, 2), &host);
    assert!((12..=14).contains(&s.ids[0]), "{:?}", s.ids);
}

/// Eight items with base-model mnlp 0.1..0.8 (quartile levels 0,0,1,1,2,2,3,3).
fn ldcal_pool() -> Vec<Example> {
    (0..8).map(|i| ex(10 + i, &format!("x{i}"))).collect()
}

fn ldcal_host(now: [f32; 8]) -> FakeHost {
    let mut h = FakeHost::new(4);
    let vecs = [E1, E2, E3, E3, E1, [0.0, 0.0, 0.0, 1.0], E2, E1];
    for i in 0..8 {
        let t = format!("x{i}");
        h = h
            .with_base_greedy(&t, "y", vec![-0.1 * (i + 1) as f32])
            .with_greedy(&t, "y", vec![-now[i]], vec![0.0])
            .with_embedding(&t, vecs[i].to_vec());
    }
    h
}

#[test]
fn ldcal_follows_the_curriculum_and_least_certainty_gain_with_cluster_caps() {
    // Iteration 0 of 4: only level 0 (ids 10, 11) is allowed although 17 is most uncertain.
    let host = ldcal_host([0.5, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 3.0]);
    let mut c = ctx(ldcal_pool(), vec![], 2);
    c.iteration = 0;
    let first = run("ldcal", c, &host);
    assert_eq!(first.ids, vec![11, 10]);
    assert!(first.memory.contains_key("base_mnlp") && first.memory.contains_key("mnlp"));

    // Iteration 2: levels ≤ 2 → ids 12..15. mnlp drops: 12: 0.0, 13: 0.0 (same cluster as
    // 12), 14: 0.1, 15: 0.4; 17 (level 3) gained least of all but is not allowed yet.
    let host = ldcal_host([0.5, 0.9, 0.5, 0.5, 0.4, 0.1, 0.5, 3.5]);
    let mut c = ctx(ldcal_pool()[2..].to_vec(), ldcal_pool()[..2].to_vec(), 2);
    c.iteration = 2;
    c.memory = first.memory;
    let second = run("ldcal", c, &host);
    assert_eq!(
        second.ids,
        vec![12, 14],
        "one per cluster: 13 shares 12's cluster"
    );
}

/// Too few items at the allowed levels: iteration 0 allows level 0 (ids 10, 11) but k = 3, so
/// the curriculum widens one level (10..13), not to every level (17 is the most uncertain of
/// all). Choosing the initial set it takes the most uncertain, one per cluster: 11, 13, then
/// 10, since 12 shares 13's embedding (E3) and so its cluster.
#[test]
fn ldcal_widens_the_curriculum_one_level_at_a_time_when_too_few_items_are_allowed() {
    let host = ldcal_host([0.5, 0.9, 0.6, 0.7, 0.5, 0.5, 0.5, 3.0]);
    let mut c = ctx(ldcal_pool(), vec![], 3);
    c.iteration = 0;
    assert_eq!(run("ldcal", c, &host).ids, vec![11, 13, 10]);
}

/// The first query after a random initial set (iteration 1, nothing scored before): the gain
/// is measured from the base model, which has just scored every item, not skipped.
#[test]
fn ldcal_measures_the_first_querys_gain_from_the_base_model() {
    // Iteration 1 of 4: levels ≤ 1 → ids 10..13 (base mnlp 0.1..0.4), one per cluster
    // (E1, E2, E3, E3). mnlp now: 10 rose by 0.2, 11 by 0.15, 12 and 13 fell. Least gain
    // first gives 10, 11; the most uncertain now would give 11, 10.
    let host = ldcal_host([0.3, 0.35, 0.2, 0.25, 0.5, 0.6, 0.7, 0.8]);
    let c = ctx(ldcal_pool(), vec![], 2);
    assert_eq!(c.iteration, 1);
    assert_eq!(run("ldcal", c, &host).ids, vec![10, 11]);
}

/// With `pool_subsample` an item can be seen for the first time late: it gets its own
/// difficulty (the base model's mnlp, among every item seen) and its gain since the base
/// model, not "hardest" and "no gain".
#[test]
fn ldcal_gives_items_first_seen_late_their_own_difficulty_and_gain() {
    // Iteration 0 saw ids 12..17 only.
    let mut c = ctx(ldcal_pool()[2..].to_vec(), vec![], 2);
    c.iteration = 0;
    let first = run("ldcal", c, &ldcal_host([0.5; 8]));
    // Iteration 1 of 4 (levels ≤ 1 of the eight seen: ids 10..13). 10 and 11 are new and
    // easy. Gains: 10 none since the base (0.1 → 0.1), 11 0.15, 12 0.05, 13 0.4; least gain
    // first, one per cluster: 10 (E1), 12 (E3).
    let host = ldcal_host([0.1, 0.05, 0.45, 0.1, 0.5, 0.5, 0.5, 0.5]);
    let pool = ldcal_pool();
    let mut c = ctx(pool[..6].to_vec(), pool[6..].to_vec(), 2);
    c.iteration = 1;
    c.memory = first.memory;
    assert_eq!(run("ldcal", c, &host).ids, vec![10, 12]);
}

/// DUAL's other half comes at random from U, not from IDDS's remaining proposals: over ten
/// seeds some filler is outside the proposals (if it never were, each seed would have a 1 in
/// 153 chance), and one seed gives the same picks twice.
#[test]
fn dual_fills_the_rest_at_random_from_the_pool() {
    let pool: Vec<Example> = (0..20).map(|i| ex(10 + i, &format!("w{i}"))).collect();
    let host = FakeHost::new(4);
    let proposals = run("idds", ctx(pool.clone(), vec![], 4), &host).ids;
    let mut outside = 0;
    for seed in 0..10 {
        let mut c = ctx(pool.clone(), vec![], 4);
        c.seed = seed;
        let picks = run("dual", c.clone(), &host).ids;
        assert_eq!(picks.len(), 4);
        assert!(proposals.contains(&picks[0]) && proposals.contains(&picks[1]));
        outside += picks[2..]
            .iter()
            .filter(|id| !proposals.contains(id))
            .count();
        assert_eq!(run("dual", c, &host).ids, picks, "seeded");
    }
    assert!(outside > 0, "every filler came from the proposals");
}
