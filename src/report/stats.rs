//! Summary statistics over seeds: mean, sample standard deviation and the Student-t 95%
//! confidence interval, with an exact inverse t CDF (regularised incomplete beta + bisection),
//! so small seed counts get the right, wide interval.

/// Mean, sample std and 95% CI of a set of values (one per seed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1 denominator); `None` for a single value.
    pub std: Option<f64>,
    /// Student-t 95% interval around the mean; `None` for a single value.
    pub ci95: Option<(f64, f64)>,
}

/// Summarise `values` (must not be empty).
pub fn summarize(values: &[f64]) -> Summary {
    let n = values.len();
    assert!(n > 0, "summarize needs at least one value");
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Summary {
            n,
            mean,
            std: None,
            ci95: None,
        };
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    let half = student_t_quantile(0.975, (n - 1) as f64) * std / (n as f64).sqrt();
    Summary {
        n,
        mean,
        std: Some(std),
        ci95: Some((mean - half, mean + half)),
    }
}

/// The `p` quantile of Student's t distribution with `df` degrees of freedom (df > 0,
/// 0 < p < 1), accurate to about 1e-12.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    assert!(
        p > 0.0 && p < 1.0,
        "quantile level must be in (0, 1), got {p}"
    );
    assert!(df > 0.0, "degrees of freedom must be positive, got {df}");
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, df);
    }
    // The CDF is increasing: bracket the quantile, then bisect to machine precision.
    let mut lo = 0.0;
    let mut hi = 1.0;
    while student_t_cdf(hi, df) < p {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-15 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * regularized_incomplete_beta(0.5 * df, 0.5, x);
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// I_x(a, b), by the continued fraction of Numerical Recipes (Lentz's method), using the
/// symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where the fraction converges slowly.
pub fn regularized_incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_continued_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-16;
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 coefficients; relative error ~1e-15).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEF[0];
    for (i, c) in COEF.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_published_tables() {
        // Two-sided 95% critical values (e.g. NIST/SEMATECH handbook table, 3 decimals).
        let table = [
            (1.0, 12.706),
            (2.0, 4.303),
            (3.0, 3.182),
            (4.0, 2.776),
            (5.0, 2.571),
            (9.0, 2.262),
            (10.0, 2.228),
            (20.0, 2.086),
            (30.0, 2.042),
            (100.0, 1.984),
        ];
        for (df, want) in table {
            let got = student_t_quantile(0.975, df);
            assert!((got - want).abs() < 5e-4, "df {df}: {got} vs {want}");
        }
        // Closed forms: df = 1 is Cauchy, df = 2 has t = (2p−1)·sqrt(2 / (1 − (2p−1)²)).
        let cauchy = (std::f64::consts::PI * (0.975 - 0.5)).tan();
        assert!((student_t_quantile(0.975, 1.0) - cauchy).abs() < 1e-9);
        let a: f64 = 2.0 * 0.975 - 1.0;
        let df2 = a * (2.0 / (1.0 - a * a)).sqrt();
        assert!((student_t_quantile(0.975, 2.0) - df2).abs() < 1e-10);
        // Large df tends to the normal quantile 1.959964.
        assert!((student_t_quantile(0.975, 1e7) - 1.959_963_985).abs() < 1e-6);
        assert!((student_t_quantile(0.025, 4.0) + 2.776_445).abs() < 1e-5);
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        for (n, fact) in [(1.0, 1.0f64), (5.0, 24.0), (11.0, 3_628_800.0)] {
            assert!((ln_gamma(n) - fact.ln()).abs() < 1e-12);
        }
        let half = 0.5 * std::f64::consts::PI.ln(); // Γ(1/2) = sqrt(π)
        assert!((ln_gamma(0.5) - half).abs() < 1e-12);
    }

    #[test]
    fn summary_of_three_seeds_by_hand() {
        // values 1, 2, 6: mean 3, sample var ((4 + 1 + 9) / 2) = 7.
        let s = summarize(&[1.0, 2.0, 6.0]);
        assert_eq!(s.n, 3);
        assert!((s.mean - 3.0).abs() < 1e-15);
        assert!((s.std.unwrap() - 7f64.sqrt()).abs() < 1e-12);
        let half = 4.302_652_729_911 * 7f64.sqrt() / 3f64.sqrt();
        let (lo, hi) = s.ci95.unwrap();
        assert!((lo - (3.0 - half)).abs() < 1e-9 && (hi - (3.0 + half)).abs() < 1e-9);
        let one = summarize(&[0.4]);
        assert_eq!((one.mean, one.std, one.ci95), (0.4, None, None));
    }
}
