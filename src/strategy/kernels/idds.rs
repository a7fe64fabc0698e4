//! IDDS greedy selection (Tsvigun et al. 2022): prefer items typical of the unlabeled pool and
//! unlike anything labeled or already chosen.
//!
//! score(i) = λ · mean_{j∈U∖{i}} cos(i, j) − (1 − λ) · mean_{l∈L∪Q} cos(i, l), where U is the
//! pool minus the picks so far (a pick moves from U to Q). Both means are dot products with
//! running sums of rows, kept per item and updated with one matrix–vector product per pick:
//! O(|U|·d) per pick, no pairwise matrix.
use super::dense::{matvec, row_norms_squared, row_sum};
use super::ties::{argmax_within, cosine_error};
use crate::strategy::Matrix;

/// Pick `min(k, pool.rows)` pool positions greedily by the IDDS score with weight `lambda`
/// (the paper's default is 0.667). An empty mean (no other unlabeled item, or empty L ∪ Q)
/// contributes 0. Ties, rounding included, go to the lower position.
///
/// # Panics
/// If `labeled` has rows and a different width from `pool`.
pub fn idds_greedy(pool: &Matrix, labeled: &Matrix, k: usize, lambda: f32) -> Vec<usize> {
    let n = pool.rows;
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    if labeled.rows > 0 {
        assert_eq!(
            labeled.cols, pool.cols,
            "idds_greedy: labeled rows have {} values, pool rows have {}",
            labeled.cols, pool.cols
        );
    }
    let lambda = f64::from(lambda);
    let self_similarity = row_norms_squared(pool);
    // dot_unlabeled[i] = e_i · Σ_{j∈U} e_j (U includes i while i is unpicked).
    let mut dot_unlabeled: Vec<f64> = to_f64(matvec(pool, &row_sum(pool)));
    // dot_chosen[i] = e_i · Σ_{l∈L∪Q} e_l.
    let mut dot_chosen: Vec<f64> = if labeled.rows > 0 {
        to_f64(matvec(pool, &row_sum(labeled)))
    } else {
        vec![0.0; n]
    };
    let mut picked = vec![false; n];
    let mut picks = Vec::with_capacity(k);
    let mut scores = vec![0.0f64; n];
    let cosine = cosine_error(pool.cols);
    for round in 0..k {
        let unlabeled_others = (n - round - 1) as f64;
        let chosen = (labeled.rows + round) as f64;
        // Rounding bound of a score: the running sum over U started as a dot with the sum of n
        // rows (rounding at that scale) and lost `round` cosines, the self term is one more;
        // the one over L ∪ Q likewise, divided by its count.
        let mut error = 0.0;
        if unlabeled_others > 0.0 {
            error += lambda.abs() * (n + round + 1) as f64 * cosine / unlabeled_others;
        }
        if chosen > 0.0 {
            error += (1.0 - lambda).abs() * cosine;
        }
        for i in 0..n {
            let typical = if unlabeled_others > 0.0 {
                (dot_unlabeled[i] - f64::from(self_similarity[i])) / unlabeled_others
            } else {
                0.0
            };
            let redundant = if chosen > 0.0 {
                dot_chosen[i] / chosen
            } else {
                0.0
            };
            scores[i] = lambda * typical - (1.0 - lambda) * redundant;
        }
        let best = argmax_within(&scores, 2.0 * error, |i| !picked[i])
            .expect("round < k ≤ n leaves an item");
        picked[best] = true;
        picks.push(best);
        if round + 1 < k {
            let column = matvec(pool, pool.row(best));
            for ((u, c), s) in dot_unlabeled.iter_mut().zip(&mut dot_chosen).zip(column) {
                *u -= f64::from(s);
                *c += f64::from(s);
            }
        }
    }
    picks
}

fn to_f64(v: Vec<f32>) -> Vec<f64> {
    v.into_iter().map(f64::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_rows(rows: &[[f32; 3]]) -> Matrix {
        let mut m =
            Matrix::from_rows(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>()).unwrap();
        m.l2_normalize_rows();
        m
    }

    /// Positions 0..5 near x, 5..10 near y, 10 alone on z.
    fn two_dense_regions_and_an_outlier() -> Matrix {
        let mut rows = Vec::new();
        for t in 0..5 {
            rows.push([1.0, 0.05 * t as f32, 0.02]);
        }
        for t in 0..5 {
            // Spaced unlike the x region so no two scores tie exactly.
            rows.push([0.07 * t as f32, 1.0, 0.04]);
        }
        rows.push([0.0, 0.0, 1.0]);
        unit_rows(&rows)
    }

    /// Direct evaluation of the score, O(|U|²) — the reference for the running sums.
    fn naive(pool: &Matrix, labeled: &Matrix, k: usize, lambda: f64) -> Vec<usize> {
        let cos =
            |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| f64::from(x * y)).sum::<f64>();
        let mut picks: Vec<usize> = Vec::new();
        for _ in 0..k {
            let mut best = (usize::MAX, f64::NEG_INFINITY);
            for i in 0..pool.rows {
                if picks.contains(&i) {
                    continue;
                }
                let others: Vec<usize> = (0..pool.rows)
                    .filter(|&j| j != i && !picks.contains(&j))
                    .collect();
                let typical = others
                    .iter()
                    .map(|&j| cos(pool.row(i), pool.row(j)))
                    .sum::<f64>()
                    / others.len().max(1) as f64;
                let chosen: Vec<&[f32]> = (0..labeled.rows)
                    .map(|l| labeled.row(l))
                    .chain(picks.iter().map(|&p| pool.row(p)))
                    .collect();
                let redundant = chosen.iter().map(|c| cos(pool.row(i), c)).sum::<f64>()
                    / chosen.len().max(1) as f64;
                let s = lambda * typical - (1.0 - lambda) * redundant;
                if s > best.1 + 1e-12 {
                    best = (i, s);
                }
            }
            picks.push(best.0);
        }
        picks
    }

    #[test]
    fn prefers_the_dense_region_away_from_labeled() {
        let pool = two_dense_regions_and_an_outlier();
        let labeled = unit_rows(&[[0.0, 1.0, 0.0]]);
        let picks = idds_greedy(&pool, &labeled, 1, 0.667);
        assert!(
            picks[0] < 5,
            "picked {picks:?}, expected the x region (0..5)"
        );
    }

    #[test]
    fn without_labeled_data_the_first_pick_is_the_most_typical_item() {
        // Region x has 5 items, region z 3, spread symmetrically: the centre of x is the most
        // typical item.
        let mut rows = Vec::new();
        for t in [-2.0f32, -1.0, 0.0, 1.0, 2.0] {
            rows.push([1.0, 0.05 * t, 0.0]);
        }
        for t in [-1.0f32, 0.0, 1.0] {
            rows.push([0.0, 0.05 * t, 1.0]);
        }
        let picks = idds_greedy(&unit_rows(&rows), &Matrix::zeros(0, 3), 1, 0.667);
        assert_eq!(picks, vec![2]);
    }

    #[test]
    fn running_sums_match_direct_evaluation() {
        let pool = two_dense_regions_and_an_outlier();
        let labeled = unit_rows(&[[0.0, 1.0, 0.0], [0.3, 0.1, 1.0]]);
        for lambda in [0.0f32, 0.5, 0.667, 1.0] {
            assert_eq!(
                idds_greedy(&pool, &labeled, pool.rows, lambda),
                naive(&pool, &labeled, pool.rows, f64::from(lambda)),
                "lambda {lambda}"
            );
        }
    }

    #[test]
    fn returns_min_k_n_distinct_positions() {
        let pool = two_dense_regions_and_an_outlier();
        let mut picks = idds_greedy(&pool, &Matrix::zeros(0, 3), 100, 0.667);
        picks.sort();
        assert_eq!(picks, (0..pool.rows).collect::<Vec<_>>());
        assert!(idds_greedy(&pool, &Matrix::zeros(0, 3), 0, 0.667).is_empty());
    }
}
