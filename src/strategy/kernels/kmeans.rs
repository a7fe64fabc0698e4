//! k-means: seeded k-means++ initialisation, then Lloyd iterations with gemm-tiled
//! assignment. Squared Euclidean distance; for L2-normalised rows it equals 2 − 2·cos.
//! Centroids are plain means (not re-normalised).
use gemm::Parallelism;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::dense::{gemm_abt, matvec, row_norms_squared};
use super::ties::cosine_error;
use crate::strategy::Matrix;

/// Items per rayon task in the assignment step; with k = 1,000 a task's tile is 1 MiB.
const ASSIGN_BLOCK: usize = 256;

#[derive(Clone, Debug, PartialEq)]
pub struct KMeansResult {
    /// `min(k, rows)` × d.
    pub centroids: Matrix,
    /// Cluster of every row of `x`.
    pub assignment: Vec<usize>,
    /// Lloyd iterations run (centroid updates), at most `max_iter`.
    pub iterations: usize,
}

/// Cluster the rows of `x` into `min(k, x.rows)` clusters. The same `seed` gives the same
/// result. Stops when an iteration leaves the assignment unchanged or after `max_iter`
/// updates. An empty cluster keeps its previous centroid. Points tie to the lower cluster
/// (rounding included: distances within their rounding bounds are equal).
/// `k == 0` or an empty `x` gives no centroids and an empty assignment.
pub fn kmeans(x: &Matrix, k: usize, seed: u64, max_iter: usize) -> KMeansResult {
    let k = k.min(x.rows);
    if k == 0 {
        return KMeansResult {
            centroids: Matrix::zeros(0, x.cols),
            assignment: Vec::new(),
            iterations: 0,
        };
    }
    lloyd(x, kmeans_plus_plus(x, k, seed), max_iter)
}

/// Lloyd iterations from the given centroids (see [`kmeans`] for the stopping rule).
pub(crate) fn lloyd(x: &Matrix, mut centroids: Matrix, max_iter: usize) -> KMeansResult {
    let lengths: Vec<f32> = row_norms_squared(x).iter().map(|n| n.sqrt()).collect();
    let mut assignment = assign(x, &lengths, &centroids);
    let mut iterations = 0;
    while iterations < max_iter {
        update_centroids(x, &assignment, &mut centroids);
        iterations += 1;
        let next = assign(x, &lengths, &centroids);
        if next == assignment {
            break;
        }
        assignment = next;
    }
    KMeansResult {
        centroids,
        assignment,
        iterations,
    }
}

/// For every non-empty cluster, in cluster order, the member nearest its centroid (ties,
/// rounding included, to the lower position). Every item belongs to one cluster, so the answer
/// has no duplicates.
///
/// # Panics
/// If `r` was not computed on `x` (assignment length or width differ).
pub fn nearest_to_centroids(x: &Matrix, r: &KMeansResult) -> Vec<usize> {
    assert_eq!(
        r.assignment.len(),
        x.rows,
        "nearest_to_centroids: the clustering covers {} rows, x has {}",
        r.assignment.len(),
        x.rows
    );
    let error = cosine_error(x.cols);
    let centroid_norms: Vec<f64> = row_norms_squared(&r.centroids)
        .into_iter()
        .map(|n| f64::from(n).sqrt())
        .collect();
    let item_norms = row_norms_squared(x);
    let mut distance = Vec::with_capacity(x.rows);
    let mut slack = Vec::with_capacity(x.rows);
    // Per cluster, the member nearest its centroid.
    let mut nearest: Vec<Option<usize>> = vec![None; r.centroids.rows];
    for (i, &c) in r.assignment.iter().enumerate() {
        let d = squared_distance(x.row(i), r.centroids.row(c));
        // ‖x − c‖² rounds in each difference (and in c, a rounded mean): each coordinate's
        // error is a few u of |x|, |c| or |x − c|, doubled by the square's cross term.
        let span = d.sqrt() + centroid_norms[c] + f64::from(item_norms[i]).sqrt();
        distance.push(d);
        slack.push(2.0 * d.sqrt() * span * error);
        if !d.is_nan() && nearest[c].is_none_or(|b| d < distance[b]) {
            nearest[c] = Some(i);
        }
    }
    // The first member (lowest position) tied with it wins.
    let mut picks: Vec<Option<usize>> = vec![None; r.centroids.rows];
    for (i, &c) in r.assignment.iter().enumerate() {
        if let (None, Some(b)) = (picks[c], nearest[c]) {
            if distance[i] <= distance[b] + slack[b] + slack[i] {
                picks[c] = Some(i);
            }
        }
    }
    picks.into_iter().flatten().collect()
}

fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(x - y);
            d * d
        })
        .sum()
}

/// k-means++ (Arthur & Vassilvitskii 2007): the first centre uniformly at random, each next
/// one with probability proportional to the squared distance to the nearest centre so far.
/// When every remaining distance is zero (duplicate points), the lowest unchosen row is taken.
fn kmeans_plus_plus(x: &Matrix, k: usize, seed: u64) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let norms = row_norms_squared(x);
    let mut chosen = vec![false; x.rows];
    let mut centres = Vec::with_capacity(k);
    let mut nearest = vec![f64::INFINITY; x.rows];
    let mut next = rng.random_range(0..x.rows);
    loop {
        chosen[next] = true;
        centres.push(next);
        if centres.len() == k {
            break;
        }
        let dots = matvec(x, x.row(next));
        for (i, d) in nearest.iter_mut().enumerate() {
            let dist = f64::from(norms[i] + norms[next] - 2.0 * dots[i]).max(0.0);
            *d = if chosen[i] { 0.0 } else { d.min(dist) };
        }
        let total: f64 = nearest.iter().sum();
        next = if total > 0.0 {
            let target = rng.random::<f64>() * total;
            let mut running = 0.0;
            let mut pick = None;
            for (i, &d) in nearest.iter().enumerate() {
                running += d;
                if d > 0.0 && running > target {
                    pick = Some(i);
                    break;
                }
            }
            // Rounding can leave `target` just above the final running sum: take the last
            // row with any weight.
            pick.unwrap_or_else(|| nearest.iter().rposition(|&d| d > 0.0).expect("total > 0"))
        } else {
            chosen
                .iter()
                .position(|&c| !c)
                .expect("fewer than rows centres chosen")
        };
    }
    x.take_rows(&centres)
}

/// Nearest centroid of every row, tiled through gemm: argmin_c ‖c‖² − 2 x·c, where values
/// within both their rounding bounds tie to the lower cluster. `item_lengths` are the rows'
/// norms.
fn assign(x: &Matrix, item_lengths: &[f32], centroids: &Matrix) -> Vec<usize> {
    let k = centroids.rows;
    let d = x.cols;
    let error = cosine_error(d) as f32;
    let centroid_norms = row_norms_squared(centroids);
    let centroid_lengths: Vec<f32> = centroid_norms.iter().map(|n| n.sqrt()).collect();
    let longest = centroid_lengths.iter().copied().fold(0.0f32, f32::max);
    let mut assignment = vec![0usize; x.rows];
    assignment
        .par_chunks_mut(ASSIGN_BLOCK)
        .enumerate()
        .for_each(|(block, out)| {
            let first = block * ASSIGN_BLOCK;
            let rows = &x.data[first * d..(first + out.len()) * d];
            let mut tile = vec![0.0f32; out.len() * k];
            gemm_abt(
                rows,
                out.len(),
                &centroids.data,
                k,
                d,
                &mut tile,
                Parallelism::None,
            );
            for (row, (a, dots)) in out.iter_mut().zip(tile.chunks_exact(k)).enumerate() {
                let length = item_lengths[first + row];
                // ‖c‖² and 2 x·c each carry a d-term sum's rounding, relative to ‖c‖² and
                // 2‖x‖‖c‖; the largest over the centroids bounds the scan below.
                let slack = |c: usize| {
                    let lc = centroid_lengths[c];
                    error * lc * (lc + 2.0 * length)
                };
                let score = |c: usize| centroid_norms[c] - 2.0 * dots[c];
                // The nearest and the runner-up score: when no other centroid comes within the
                // widest bound, the nearest wins without a second look. (Zipped, not indexed:
                // this loop runs for every row and centroid.)
                let (mut best, mut runner_up) = ((0, f32::INFINITY), f32::INFINITY);
                for (c, (&dot, &norm)) in dots.iter().zip(&centroid_norms).enumerate() {
                    let s = norm - 2.0 * dot;
                    if s < runner_up {
                        if s < best.1 {
                            runner_up = best.1;
                            best = (c, s);
                        } else {
                            runner_up = s;
                        }
                    }
                }
                let reach = best.1 + slack(best.0);
                let widest = error * longest * (longest + 2.0 * length);
                // Else the lowest cluster within both bounds of the nearest.
                *a = if runner_up > reach + widest {
                    best.0
                } else {
                    (0..best.0)
                        .find(|&c| score(c) <= reach + widest && score(c) <= reach + slack(c))
                        .unwrap_or(best.0)
                };
            }
        });
    assignment
}

fn update_centroids(x: &Matrix, assignment: &[usize], centroids: &mut Matrix) {
    let d = x.cols;
    let mut sums = vec![0.0f64; centroids.rows * d];
    let mut counts = vec![0usize; centroids.rows];
    for (i, &c) in assignment.iter().enumerate() {
        counts[c] += 1;
        for (s, &v) in sums[c * d..(c + 1) * d].iter_mut().zip(x.row(i)) {
            *s += f64::from(v);
        }
    }
    for (c, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let sums = &sums[c * d..(c + 1) * d];
        for (v, s) in centroids.row_mut(c).iter_mut().zip(sums) {
            *v = (s / count as f64) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::kernels::synthetic::clustered_embeddings;

    /// Does the clustering put every planted cluster in a cluster of its own?
    fn recovers(assignment: &[usize], planted: &[usize]) -> bool {
        (0..planted.len()).all(|i| {
            (0..planted.len())
                .all(|j| (planted[i] == planted[j]) == (assignment[i] == assignment[j]))
        })
    }

    #[test]
    fn recovers_planted_clusters_for_several_seeds() {
        let data = clustered_embeddings(300, 16, 4, 0.05, 7);
        for seed in [1, 2, 3] {
            let r = kmeans(&data.embeddings, 4, seed, 50);
            assert!(recovers(&r.assignment, &data.cluster), "seed {seed}");
            assert!(
                r.iterations >= 1 && r.iterations < 50,
                "{} iterations",
                r.iterations
            );
        }
    }

    #[test]
    fn same_seed_same_result() {
        let data = clustered_embeddings(200, 8, 5, 0.3, 3);
        assert_eq!(
            kmeans(&data.embeddings, 5, 9, 20),
            kmeans(&data.embeddings, 5, 9, 20)
        );
    }

    #[test]
    fn nearest_to_centroids_takes_the_member_closest_to_each_centre() {
        // Two clusters on a line: {0, 1, 2} around 1 and {10, 11, 13} around 11.33.
        let rows: Vec<Vec<f32>> = [0.0f32, 1.0, 2.0, 10.0, 11.0, 13.0]
            .iter()
            .map(|&v| vec![v, 1.0])
            .collect();
        let x = Matrix::from_rows(&rows).unwrap();
        let r = kmeans(&x, 2, 0, 10);
        let mut picks = nearest_to_centroids(&x, &r);
        picks.sort();
        assert_eq!(picks, vec![1, 4]);
    }

    #[test]
    fn duplicates_and_k_above_rows_are_handled() {
        let x = Matrix::from_rows(&vec![vec![1.0, 0.0]; 3]).unwrap();
        let r = kmeans(&x, 5, 0, 10);
        assert_eq!(r.centroids.rows, 3);
        assert_eq!(r.assignment, vec![0, 0, 0]);
        // Clusters 1 and 2 are empty (all points tie to cluster 0): one representative.
        assert_eq!(nearest_to_centroids(&x, &r), vec![0]);
        let empty = kmeans(&x, 0, 0, 10);
        assert!(empty.assignment.is_empty() && empty.centroids.rows == 0);
    }
}
