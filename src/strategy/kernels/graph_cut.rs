//! Graph cut greedy: maximise f(S) = Σ_{i∈U, j∈S} s_ij − λ Σ_{i,j∈S} s_ij with s = cos.
//!
//! The first term rewards items similar to the whole pool (coverage), the second penalises
//! similarity inside the selection (diversity); λ trades one for the other. The marginal gain
//! of j is  c_j − λ (2 r_j + s_jj)  with coverage c_j = (Σ_{i∈U} e_i)·e_j and
//! r_j = Σ_{i∈S} s_ij (the pair sum counts ordered pairs, self-pairs included). c is one
//! matrix–vector product; r grows by one per pick: O(|U|·d) per pick.
use super::dense::{matvec, row_norms_squared, row_sum};
use super::ties::{argmax_within, cosine_error};
use crate::strategy::Matrix;

/// Pick `min(k, pool.rows)` pool positions greedily (ties, rounding included, to the lower
/// position).
pub fn graph_cut_greedy(pool: &Matrix, k: usize, lambda: f32) -> Vec<usize> {
    let n = pool.rows;
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    let lambda = f64::from(lambda);
    let coverage: Vec<f64> = matvec(pool, &row_sum(pool))
        .into_iter()
        .map(f64::from)
        .collect();
    let self_similarity = row_norms_squared(pool);
    let mut to_selection = vec![0.0f64; n];
    let mut picked = vec![false; n];
    let mut gains = vec![0.0f64; n];
    let mut picks = Vec::with_capacity(k);
    let cosine = cosine_error(pool.cols);
    while picks.len() < k {
        // Coverage is a dot with the sum of n rows (rounding at that scale: n cosines' error);
        // under λ, two cosines per pick and s_jj.
        let error = (n as f64 + lambda.abs() * (2 * picks.len() + 1) as f64) * cosine;
        for j in 0..n {
            gains[j] =
                coverage[j] - lambda * (2.0 * to_selection[j] + f64::from(self_similarity[j]));
        }
        let best = argmax_within(&gains, 2.0 * error, |j| !picked[j]).expect("fewer than n picks");
        picked[best] = true;
        picks.push(best);
        if picks.len() < k {
            for (r, s) in to_selection.iter_mut().zip(matvec(pool, pool.row(best))) {
                *r += f64::from(s);
            }
        }
    }
    picks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six items tightly around x (positions 0..6) and three around y (6..9).
    fn big_and_small_cluster() -> Matrix {
        let mut rows = Vec::new();
        for t in 0..6 {
            rows.push(vec![1.0, 0.01 * t as f32, 0.0]);
        }
        for t in 0..3 {
            rows.push(vec![0.0, 1.0, 0.01 * t as f32]);
        }
        let mut m = Matrix::from_rows(&rows).unwrap();
        m.l2_normalize_rows();
        m
    }

    /// f(S) evaluated from scratch.
    fn objective(pool: &Matrix, s: &[usize], lambda: f64) -> f64 {
        let cos = |i: usize, j: usize| -> f64 {
            pool.row(i)
                .iter()
                .zip(pool.row(j))
                .map(|(a, b)| f64::from(a * b))
                .sum()
        };
        let cover: f64 = (0..pool.rows)
            .flat_map(|i| s.iter().map(move |&j| (i, j)))
            .map(|(i, j)| cos(i, j))
            .sum();
        let inside: f64 = s
            .iter()
            .flat_map(|&i| s.iter().map(move |&j| (i, j)))
            .map(|(i, j)| cos(i, j))
            .sum();
        cover - lambda * inside
    }

    #[test]
    fn lambda_trades_coverage_for_diversity() {
        let pool = big_and_small_cluster();
        // λ = 0: pure coverage, both picks from the big cluster.
        let coverage_only = graph_cut_greedy(&pool, 2, 0.0);
        assert!(coverage_only.iter().all(|&p| p < 6), "{coverage_only:?}");
        // Second pick: a big-cluster item gains ≈ 6 − 3λ, a small-cluster one ≈ 3 − λ.
        // λ = 0.5: 4.5 against 2.5, still the big cluster.
        let mild = graph_cut_greedy(&pool, 2, 0.5);
        assert!(mild.iter().all(|&p| p < 6), "{mild:?}");
        // λ = 2: 0 against 1, the small cluster.
        let diverse = graph_cut_greedy(&pool, 2, 2.0);
        assert!(diverse[0] < 6 && diverse[1] >= 6, "{diverse:?}");
    }

    #[test]
    fn each_pick_is_the_best_marginal_gain() {
        let pool = big_and_small_cluster();
        for lambda in [0.0, 0.5, 1.0, 2.0] {
            let picks = graph_cut_greedy(&pool, 5, lambda as f32);
            for t in 0..picks.len() {
                let base = objective(&pool, &picks[..t], lambda);
                let mut with = picks[..t].to_vec();
                with.push(picks[t]);
                let chosen = objective(&pool, &with, lambda) - base;
                for j in (0..pool.rows).filter(|j| !picks[..=t].contains(j)) {
                    let mut alt = picks[..t].to_vec();
                    alt.push(j);
                    let other = objective(&pool, &alt, lambda) - base;
                    // Gains within the kernel's rounding bound are ties, won by the lower index.
                    let bound =
                        (pool.rows as f64 + lambda * (2 * t + 1) as f64) * cosine_error(pool.cols);
                    assert!(
                        chosen >= other - 2.0 * bound && (chosen >= other || picks[t] < j),
                        "λ {lambda} step {t}: {} beats {}",
                        j,
                        picks[t]
                    );
                }
            }
        }
    }
}
