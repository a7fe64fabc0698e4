//! Seeded synthetic embeddings with planted clusters: the known answer for kernel tests and
//! the input of the scale benchmark.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::strategy::Matrix;

/// L2-normalised rows and the cluster each was drawn from.
pub struct SyntheticPool {
    pub embeddings: Matrix,
    pub cluster: Vec<usize>,
}

/// `n` rows of width `dim`: `clusters` random unit centres; each row picks a centre uniformly,
/// adds Gaussian noise of expected norm `spread`, and is normalised. Small spreads (≤ 0.3)
/// give well-separated clusters in high dimension.
///
/// # Panics
/// If `clusters == 0` while `n > 0`.
pub fn clustered_embeddings(
    n: usize,
    dim: usize,
    clusters: usize,
    spread: f32,
    seed: u64,
) -> SyntheticPool {
    assert!(
        clusters > 0 || n == 0,
        "clustered_embeddings needs at least one cluster"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centres = Matrix::zeros(clusters, dim);
    for v in centres.data.iter_mut() {
        *v = gaussian(&mut rng);
    }
    centres.l2_normalize_rows();
    let noise = spread / (dim.max(1) as f32).sqrt();
    let mut embeddings = Matrix::zeros(n, dim);
    let mut cluster = Vec::with_capacity(n);
    for i in 0..n {
        let c = rng.random_range(0..clusters);
        cluster.push(c);
        for (v, &m) in embeddings.row_mut(i).iter_mut().zip(centres.row(c)) {
            *v = m + noise * gaussian(&mut rng);
        }
    }
    embeddings.l2_normalize_rows();
    SyntheticPool {
        embeddings,
        cluster,
    }
}

/// A standard normal draw (Box–Muller; the second value is dropped for simplicity).
fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln never sees 0
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_unit_and_clusters_are_tight() {
        let p = clustered_embeddings(60, 32, 3, 0.1, 1);
        assert_eq!((p.embeddings.rows, p.embeddings.cols), (60, 32));
        for i in 0..60 {
            let norm: f32 = p.embeddings.row(i).iter().map(|v| v * v).sum();
            assert!((norm - 1.0).abs() < 1e-5);
        }
        let cos = |i: usize, j: usize| -> f32 {
            p.embeddings
                .row(i)
                .iter()
                .zip(p.embeddings.row(j))
                .map(|(a, b)| a * b)
                .sum()
        };
        for i in 0..60 {
            for j in 0..60 {
                if p.cluster[i] == p.cluster[j] {
                    assert!(cos(i, j) > 0.95, "same cluster {i} {j}: {}", cos(i, j));
                }
            }
        }
    }

    #[test]
    fn same_seed_same_pool() {
        let a = clustered_embeddings(10, 4, 2, 0.2, 5);
        let b = clustered_embeddings(10, 4, 2, 0.2, 5);
        assert_eq!(a.embeddings, b.embeddings);
        assert_eq!(a.cluster, b.cluster);
    }
}
