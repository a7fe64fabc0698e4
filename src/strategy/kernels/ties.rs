//! When two computed scores are the same score, so that the lower position wins.
//!
//! STRATEGIES.md breaks ties by the lower id. The kernels' scores are sums of f32 cosines
//! computed by gemm (dense.rs), whose last bits depend on the order the d products are added
//! in: two items whose scores are equal in exact arithmetic (mirror images in a symmetric
//! pool) come out a few units in the last place apart, and a plain `>` lets that noise choose.
//! So every greedy kernel bounds the rounding error its scores can carry, from how many
//! cosines each is summed from, and scores closer than the sum of their bounds count as tied.
//!
//! The bounds follow Higham & Mary's probabilistic rounding error analysis (SIAM J. Sci.
//! Comput. 41(5), 2019): a value computed through N roundings, each at most u relative to
//! magnitudes up to M, is within λ·√N·u·M of exact with probability at least 1 − 2N·e^(−λ²/2).
//! With λ = 10 that failure is below 1e-18 for any pool here, so a tie in exact arithmetic is
//! not missed, while the bound stays far tighter than the worst case (N·u·M), which grows with
//! N and would merge scores that differ for real (and widen the lazy-greedy window that has to
//! re-evaluate every candidate inside it). Per cosine it is under 3e-5 for d ≤ 1024: below the
//! precision of the f32 (or bf16) encoder that produced the embeddings.

/// Unit roundoff of f32: half an ulp of 1.
const F32_UNIT_ROUNDOFF: f64 = 1.0 / (1u64 << 24) as f64;

/// Standard deviations the probabilistic bounds allow (see the module's note).
const LAMBDA: f64 = 10.0;

/// Roundings in one cosine of two L2-normalised f32 rows of width `d`: the d-term sum, and the
/// d/2 + 1 of each row's own normalisation (which leave its norm slightly off 1).
fn cosine_roundings(d: usize) -> f64 {
    (2 * d + 4) as f64
}

/// Error bound of one cosine of two L2-normalised f32 rows of width `d` as gemm computes it.
/// A dot product with a sum of m rows rounds at the scale of that sum (up to m), so it carries
/// up to m times this.
pub(crate) fn cosine_error(d: usize) -> f64 {
    LAMBDA * cosine_roundings(d).sqrt() * F32_UNIT_ROUNDOFF
}

/// Error bound of a sum of `m` cosines each computed on its own (their roundings independent):
/// it grows as √m, not m.
pub(crate) fn cosine_sum_error(d: usize, m: usize) -> f64 {
    LAMBDA * (m as f64 * cosine_roundings(d)).sqrt() * F32_UNIT_ROUNDOFF
}

/// Largest relative error of an f64 sum of `terms` values of one sign, in any order.
pub(crate) fn f64_sum_error(terms: usize) -> f64 {
    (terms + 1) as f64 * f64::EPSILON
}

/// The lowest allowed index whose value is within `tolerance` of the largest allowed value:
/// the argmax with near-equal values counted as ties. `None` when nothing is allowed; NaN never
/// wins, and when every allowed value is NaN the first allowed index is returned, so callers
/// still get their k picks. With `tolerance` 0 this is the plain argmax, ties to the lower index.
pub(crate) fn argmax_within(
    values: &[f64],
    tolerance: f64,
    allowed: impl Fn(usize) -> bool,
) -> Option<usize> {
    let best = values
        .iter()
        .enumerate()
        .filter(|&(i, v)| allowed(i) && !v.is_nan())
        .map(|(_, &v)| v)
        .fold(f64::NEG_INFINITY, f64::max);
    (0..values.len())
        .find(|&i| allowed(i) && !values[i].is_nan() && values[i] >= best - tolerance)
        .or_else(|| (0..values.len()).find(|&i| allowed(i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_within_takes_the_lowest_index_near_the_maximum() {
        let v = [1.0, 3.0 - 1e-9, 3.0, f64::NAN, 2.0];
        assert_eq!(argmax_within(&v, 0.0, |_| true), Some(2));
        assert_eq!(argmax_within(&v, 1e-6, |_| true), Some(1));
        assert_eq!(argmax_within(&v, 1e-6, |i| i != 1), Some(2));
        assert_eq!(argmax_within(&v, 1.5, |i| i != 0), Some(1));
        assert_eq!(argmax_within(&v, 0.0, |i| i == 3), Some(3));
        assert_eq!(argmax_within(&v, 0.0, |_| false), None);
    }

    #[test]
    fn argmax_within_breaks_exact_ties_by_the_lower_index() {
        let v = [1.0, 3.0, 3.0];
        assert_eq!(argmax_within(&v, 0.0, |_| true), Some(1));
        assert_eq!(argmax_within(&v, 0.0, |i| i != 1), Some(2));
    }

    #[test]
    fn error_bounds_grow_with_width_and_terms() {
        assert!(cosine_error(384) > cosine_error(16));
        assert!(cosine_error(1024) < 3e-5);
        assert!(cosine_sum_error(384, 100) < 100.0 * cosine_error(384));
        assert!(f64_sum_error(10) > f64_sum_error(1));
    }
}
