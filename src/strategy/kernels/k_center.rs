//! k-center greedy (the coreset of Sener & Savarese 2018): repeatedly take the pool item
//! farthest from its nearest item in L ∪ chosen, with distance 1 − cos.
use super::cosine::max_similarity_to;
use super::dense::{matvec, row_sum};
use super::ties::{argmax_within, cosine_error};
use crate::strategy::Matrix;

/// Pick `min(k, pool.rows)` pool positions, farthest-first from `labeled`. With an empty
/// `labeled` the first pick is the item nearest the pool mean (largest cosine to the mean
/// direction), a deterministic stand-in for the usual random start. Ties, rounding included,
/// go to the lower position. One matrix–vector product per pick: O(|U|·d).
///
/// # Panics
/// If `labeled` has rows and a different width from `pool`.
pub fn k_center_greedy(pool: &Matrix, labeled: &Matrix, k: usize) -> Vec<usize> {
    let n = pool.rows;
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    let mut picked = vec![false; n];
    let mut picks = Vec::with_capacity(k);
    // Each distance is one cosine from 1; two of them are tied within both their errors.
    let tie = 2.0 * cosine_error(pool.cols);
    // distance[i] = 1 − max cos(i, L ∪ chosen).
    let mut distance: Vec<f64> = if labeled.rows > 0 {
        max_similarity_to(labeled, pool)
            .into_iter()
            .map(|s| 1.0 - f64::from(s))
            .collect()
    } else {
        let to_mean: Vec<f64> = matvec(pool, &row_sum(pool))
            .into_iter()
            .map(f64::from)
            .collect();
        // A dot product with the row sum rounds at the scale of the sum: up to n cosines' error.
        let first = argmax_within(&to_mean, n as f64 * tie, |_| true)
            .expect("k > 0 so the pool is not empty");
        picked[first] = true;
        picks.push(first);
        vec![f64::INFINITY; n]
    };
    if let Some(&first) = picks.first() {
        update(pool, first, &mut distance);
    }
    while picks.len() < k {
        let best = argmax_within(&distance, tie, |i| !picked[i]).expect("fewer than n picks");
        picked[best] = true;
        picks.push(best);
        if picks.len() < k {
            update(pool, best, &mut distance);
        }
    }
    picks
}

fn update(pool: &Matrix, chosen: usize, distance: &mut [f64]) {
    for (d, s) in distance.iter_mut().zip(matvec(pool, pool.row(chosen))) {
        *d = d.min(1.0 - f64::from(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_angles(degrees: &[f32]) -> Matrix {
        let rows: Vec<Vec<f32>> = degrees
            .iter()
            .map(|d| vec![d.to_radians().cos(), d.to_radians().sin()])
            .collect();
        Matrix::from_rows(&rows).unwrap()
    }

    #[test]
    fn picks_the_farthest_point_then_the_farthest_from_both() {
        let pool = at_angles(&[10.0, 30.0, 90.0, 180.0, 200.0]);
        let labeled = at_angles(&[0.0]);
        // 180° is opposite L; then 90° is 90° from both 0° and 180° (30° is 30° from L).
        assert_eq!(k_center_greedy(&pool, &labeled, 2), vec![3, 2]);
    }

    #[test]
    fn without_labeled_data_it_starts_nearest_the_mean() {
        // Mean direction is about 40°: 45° is nearest; then 170° is farthest from it.
        let pool = at_angles(&[0.0, 10.0, 45.0, 80.0, 170.0]);
        let picks = k_center_greedy(&pool, &Matrix::zeros(0, 2), 2);
        assert_eq!(picks, vec![2, 4]);
    }

    #[test]
    fn duplicates_are_never_picked_twice_and_ties_go_low() {
        let pool = at_angles(&[0.0, 0.0, 0.0]);
        let picks = k_center_greedy(&pool, &at_angles(&[0.0]), 3);
        assert_eq!(picks, vec![0, 1, 2]);
        assert_eq!(
            k_center_greedy(&pool, &Matrix::zeros(0, 2), 5),
            vec![0, 1, 2]
        );
    }
}
