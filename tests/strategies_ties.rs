//! Exact ties decided by the lower position, not by rounding (STRATEGIES.md: "ties broken by
//! the lower id"). Every pool here is mirror-symmetric: positions 2j and 2j + 1 hold a row and
//! its mirror image (coordinates reversed, bit for bit), and the labeled set is symmetric too,
//! so every score a kernel defines is equal for the two twins in exact arithmetic. gemm adds
//! the twins' products in different orders, so their computed scores differ in the last bits;
//! whichever way that goes, the even position must win. Many seeds are tried because on any
//! one pool the rounding may happen to favour the lower twin.
use atgen_lab::strategy::kernels::{
    delfy_scores, facility_location_greedy, graph_cut_greedy, idds_greedy, k_center_greedy, kmeans,
    nearest_to_centroids, ngf_smp_greedy, FacilityLocationOptions, KMeansResult,
};
use atgen_lab::strategy::Matrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEEDS: u64 = 40;

fn mirrored(v: &[f32]) -> Vec<f32> {
    v.iter().rev().copied().collect()
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// `pairs` twin pairs of width `d`: each around its own mirror-symmetric centre (well apart
/// from the others), the twins `spread` apart along a mirror-antisymmetric direction.
fn mirror_pairs(pairs: usize, d: usize, spread: f32, rng: &mut ChaCha8Rng) -> Matrix {
    let mut rows = Vec::with_capacity(2 * pairs);
    for _ in 0..pairs {
        let w: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let a: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let centre: Vec<f32> = w.iter().zip(mirrored(&w)).map(|(x, y)| x + y).collect();
        let away: Vec<f32> = a.iter().zip(mirrored(&a)).map(|(x, y)| x - y).collect();
        let v = unit(
            centre
                .iter()
                .zip(&away)
                .map(|(c, a)| c + spread * a)
                .collect(),
        );
        rows.push(mirrored(&v));
        rows.push(v);
    }
    // The mirror image goes first half of the time, so neither twin is favoured by position.
    for j in 0..pairs {
        if rng.random::<bool>() {
            rows.swap(2 * j, 2 * j + 1);
        }
    }
    Matrix::from_rows(&rows).unwrap()
}

/// For every seed: a symmetric pool and labeled set of width `d`, and the positions `kernel`
/// picks; the first pick (made while the selection is still symmetric) must be a lower twin.
fn first_picks_are_lower_twins(d: usize, kernel: impl Fn(&Matrix, &Matrix) -> Vec<usize>) {
    for seed in 0..SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pool = mirror_pairs(12, d, 0.3, &mut rng);
        let labeled = if seed % 2 == 0 {
            mirror_pairs(2, d, 0.3, &mut rng)
        } else {
            Matrix::zeros(0, d)
        };
        let picks = kernel(&pool, &labeled);
        assert!(!picks.is_empty(), "seed {seed}: no picks");
        assert_eq!(
            picks[0] % 2,
            0,
            "seed {seed} (labeled rows {}): picked {picks:?}; position {} is its exact tie",
            labeled.rows,
            picks[0] - 1
        );
    }
}

#[test]
fn idds_breaks_exact_ties_by_the_lower_position() {
    for d in [7, 16, 33] {
        first_picks_are_lower_twins(d, |pool, labeled| idds_greedy(pool, labeled, 3, 0.667));
    }
}

#[test]
fn coreset_breaks_exact_ties_by_the_lower_position() {
    for d in [7, 16, 33] {
        first_picks_are_lower_twins(d, |pool, labeled| k_center_greedy(pool, labeled, 3));
    }
}

#[test]
fn graph_cut_breaks_exact_ties_by_the_lower_position() {
    for d in [7, 16, 33] {
        first_picks_are_lower_twins(d, |pool, _| graph_cut_greedy(pool, 3, 0.5));
    }
}

#[test]
fn facility_location_breaks_exact_ties_by_the_lower_position_exact_and_sparse() {
    let sparse = FacilityLocationOptions {
        exact_max_items: 0,
        neighbours: 6,
        ..Default::default()
    };
    for d in [7, 16, 33] {
        first_picks_are_lower_twins(d, |pool, labeled| {
            facility_location_greedy(pool, labeled, 3, &FacilityLocationOptions::default())
        });
        first_picks_are_lower_twins(d, |pool, labeled| {
            facility_location_greedy(pool, labeled, 3, &sparse)
        });
    }
}

/// Clusters of four around mirror-symmetric centroids: per cluster a twin pair 0.3 out and
/// another 0.6 out (rows 4j, 4j + 1 and 4j + 2, 4j + 3), each twin the mirror image of the
/// other, so the inner twins are equally near the centroid in exact arithmetic.
fn mirror_clusters(clusters: usize, d: usize, rng: &mut ChaCha8Rng) -> (KMeansResult, Matrix) {
    let mut rows = Vec::with_capacity(4 * clusters);
    let mut centroids = Vec::with_capacity(clusters);
    for _ in 0..clusters {
        let w: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let centre = unit(w.iter().zip(mirrored(&w)).map(|(x, y)| x + y).collect());
        for spread in [0.3, 0.6] {
            let a: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let away = unit(a.iter().zip(mirrored(&a)).map(|(x, y)| x - y).collect());
            let v = unit(
                centre
                    .iter()
                    .zip(&away)
                    .map(|(c, a)| c + spread * a)
                    .collect(),
            );
            let twins = [mirrored(&v), v];
            let first = usize::from(rng.random::<bool>());
            rows.push(twins[first].clone());
            rows.push(twins[1 - first].clone());
        }
        centroids.push(centre);
    }
    let r = KMeansResult {
        centroids: Matrix::from_rows(&centroids).unwrap(),
        assignment: (0..4 * clusters).map(|i| i / 4).collect(),
        iterations: 0,
    };
    (r, Matrix::from_rows(&rows).unwrap())
}

#[test]
fn kmeans_takes_the_lower_of_two_twins_nearest_the_centroid() {
    for seed in 0..SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for d in [7, 16, 33] {
            let (r, x) = mirror_clusters(4, d, &mut rng);
            let mut picks = nearest_to_centroids(&x, &r);
            picks.sort();
            assert_eq!(picks, vec![0, 4, 8, 12], "seed {seed}, d {d}");
        }
    }
}

/// A row, its mirror image and a mirror-symmetric row between them, clustered in two. When
/// k-means++ starts from the twins (seen with no Lloyd update: the centroids are the starting
/// rows), the middle row is equally far from both centres and must join cluster 0.
#[test]
fn kmeans_assigns_a_row_equally_far_from_two_centres_to_the_lower_cluster() {
    let mut tie_cases = 0;
    for seed in 0..4 * SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = [7, 16, 33][seed as usize % 3];
        let a: Vec<f32> = unit((0..d).map(|_| rng.random_range(-1.0..1.0)).collect());
        let w: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let middle = unit(w.iter().zip(mirrored(&w)).map(|(x, y)| x + y).collect());
        let x = Matrix::from_rows(&[a.clone(), mirrored(&a), middle]).unwrap();
        let r = kmeans(&x, 2, seed, 0);
        if r.centroids.row(0) == x.row(2) || r.centroids.row(1) == x.row(2) {
            continue; // the middle row is a centre: no tie to break
        }
        tie_cases += 1;
        assert_eq!(r.assignment[2], 0, "seed {seed}, d {d}: {:?}", r.assignment);
    }
    assert!(
        tie_cases > SEEDS,
        "only {tie_cases} runs started from the twins"
    );
}

/// Documents of distinct words (w0 w1 …) in the given orders: a document and its reverse
/// hold the same words and, when every bigram occurs once, the same n-gram weights.
fn docs(orders: &[Vec<usize>]) -> Vec<Vec<String>> {
    orders
        .iter()
        .map(|o| o.iter().map(|w| format!("w{w}")).collect())
        .collect()
}

/// Words 1000.. that the labeled set covers: fillers made of them score next to nothing.
fn covered_words() -> Vec<usize> {
    (1000..1009).collect()
}

#[test]
fn ngf_smp_breaks_exact_ties_by_the_lower_position() {
    for seed in 0..SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let words: Vec<usize> = (0..rng.random_range(3..9)).collect();
        let mut reversed = words.clone();
        reversed.reverse();
        let mut orders = vec![words.clone(), reversed];
        if rng.random::<bool>() {
            orders.swap(0, 1);
        }
        // Fillers give each word another count, so the twins' terms differ and the order they
        // are added in matters; a filler's other n-grams are covered or rare, so it scores low.
        for &w in &words {
            for _ in 0..rng.random_range(1..6) {
                let mut filler = vec![w];
                filler.extend(covered_words());
                orders.push(filler);
            }
        }
        let labeled = docs(&[covered_words()]);
        let picks = ngf_smp_greedy(&docs(&orders), &labeled, 1, 4);
        assert_eq!(picks[0].0, 0, "seed {seed}: {picks:?} on {orders:?}");
    }
}

#[test]
fn delfy_visits_exactly_tied_documents_lower_position_first() {
    // A document and its reverse have the same LF; visited first, the lower one keeps its
    // full weight and the other is decayed by its twin's words: delfy[0] > delfy[1].
    for seed in 0..SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let words: Vec<usize> = (0..rng.random_range(3..9)).collect();
        let mut reversed = words.clone();
        reversed.reverse();
        let mut orders = vec![words.clone(), reversed];
        for &w in &words {
            orders.push(vec![w + 100; rng.random_range(1..6)]);
            orders[0].push(w + 100);
            orders[1].insert(0, w + 100);
        }
        let scores = delfy_scores(&docs(&orders), &[], 1.0, 1.0);
        assert!(
            scores[0] > scores[1],
            "seed {seed}: {:?} on {orders:?}",
            &scores[..2]
        );
    }
}
