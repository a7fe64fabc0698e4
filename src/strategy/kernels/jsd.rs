//! Jensen–Shannon divergence between two discrete distributions.

/// JS(p, q) = ½ KL(p ‖ m) + ½ KL(q ‖ m), m = (p + q)/2, natural log: 0 for identical inputs,
/// at most ln 2. Inputs are normalised to sum 1 first. Conventions for vectors that are not
/// distributions: negative entries count as 0; a vector summing to 0 is treated as uniform
/// (no evidence for any outcome); the shorter vector is padded with zeros.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let len = p.len().max(q.len());
    if len == 0 {
        return 0.0;
    }
    let p = normalised(p, len);
    let q = normalised(q, len);
    let mut divergence = 0.0;
    for (&a, &b) in p.iter().zip(&q) {
        let m = 0.5 * (a + b);
        if a > 0.0 {
            divergence += 0.5 * a * (a / m).ln();
        }
        if b > 0.0 {
            divergence += 0.5 * b * (b / m).ln();
        }
    }
    // Rounding can leave −1e-17 for identical inputs.
    divergence.max(0.0)
}

fn normalised(v: &[f64], len: usize) -> Vec<f64> {
    let mut out: Vec<f64> = (0..len)
        .map(|i| v.get(i).copied().unwrap_or(0.0).max(0.0))
        .collect();
    let total: f64 = out.iter().sum();
    if total > 0.0 {
        out.iter_mut().for_each(|x| *x /= total);
    } else {
        out.fill(1.0 / len as f64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn disjoint_two_point_distributions_give_ln_2() {
        assert!(close(
            jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]),
            std::f64::consts::LN_2
        ));
    }

    #[test]
    fn identical_inputs_give_zero_after_normalisation() {
        assert_eq!(jensen_shannon(&[0.2, 0.3, 0.5], &[2.0, 3.0, 5.0]), 0.0);
    }

    #[test]
    fn known_value_for_overlapping_distributions() {
        // p = (½, ½), q = (1, 0), m = (¾, ¼):
        // ½[½ ln(2/3) + ½ ln 2] + ½ ln(4/3).
        let want =
            0.5 * (0.5 * (2.0f64 / 3.0).ln() + 0.5 * 2.0f64.ln()) + 0.5 * (4.0f64 / 3.0).ln();
        assert!(close(jensen_shannon(&[2.0, 2.0], &[3.0, 0.0]), want));
        assert!(
            close(jensen_shannon(&[3.0, 0.0], &[2.0, 2.0]), want),
            "symmetric"
        );
    }

    #[test]
    fn zero_vectors_are_uniform_and_lengths_are_padded() {
        assert_eq!(jensen_shannon(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        assert!(close(
            jensen_shannon(&[1.0], &[0.0, 1.0]),
            std::f64::consts::LN_2
        ));
        assert_eq!(jensen_shannon(&[], &[]), 0.0);
    }
}
