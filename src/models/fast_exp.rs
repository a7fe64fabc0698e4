//! A vectorisable `exp` and the softmax-shaped loops built on it.
//!
//! libm's `expf` is a scalar call: it took 7% of MiniLM's embedding time (attention softmax)
//! and most of a decoding step's next-token softmax. This one is branch-free arithmetic (range
//! reduction by ln 2, a degree-6 polynomial, the exponent put in by bits), so the loops below
//! compile to 16-lane AVX-512 code where the CPU has it and to SSE2 elsewhere. Relative error
//! under 3e-7 (the test checks it against `f32::exp` over the whole range).

/// `e^x` for f32: within 3e-7 relative of `f32::exp` for x in [-87.3, 88]; 0 below (like
/// `expf`'s underflow, so masked softmax entries are exact zeros); `e^88` above (softmax
/// and sigmoid inputs never get there: they are shifted by the row maximum or saturate).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOW: f32 = -87.336_55;
    const HIGH: f32 = 88.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(LOW, HIGH);
    let n = (xc * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from bits. The mantissa of (n + 127 + 2^23) holds n + 127 (an integer in 1..=254
    // here); shifting it into the exponent field avoids a float-to-int conversion, whose
    // saturating semantics keep LLVM from vectorising the loop.
    let scale = f32::from_bits((n + (127.0 + 8_388_608.0)).to_bits() << 23);
    if x < LOW {
        0.0
    } else {
        y * scale
    }
}

/// Runs `$body` compiled for AVX-512 where the CPU has it (LLVM then vectorises the loops 16
/// lanes wide), and for the baseline target elsewhere.
macro_rules! multiversion {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        $(#[$meta])*
        pub fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
                unsafe fn wide($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                if $crate::models::fast_exp::avx512() {
                    // SAFETY: the CPU has the features `wide` was compiled for.
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use multiversion;

#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("fma")
    })
}

const LANES: usize = 16;

/// Sum with 16 independent partial sums, so the loop vectorises (a single running sum
/// cannot be reordered).
#[inline(always)]
pub(crate) fn lane_sum(values: impl Fn(usize) -> f32, len: usize) -> f32 {
    let mut acc = [0f32; LANES];
    let full = len / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        for (lane, a) in acc.iter_mut().enumerate() {
            *a += values(base + lane);
        }
    }
    let mut total: f32 = acc.iter().sum();
    for i in full..len {
        total += values(i);
    }
    total
}

/// [`lane_sum`] of two quantities computed together.
#[inline(always)]
fn lane_sum_pair(values: impl Fn(usize) -> (f32, f32), len: usize) -> (f32, f32) {
    let (mut a, mut b) = ([0f32; LANES], [0f32; LANES]);
    let full = len / LANES * LANES;
    for base in (0..full).step_by(LANES) {
        for lane in 0..LANES {
            let (x, y) = values(base + lane);
            a[lane] += x;
            b[lane] += y;
        }
    }
    let (mut x_total, mut y_total): (f32, f32) = (a.iter().sum(), b.iter().sum());
    for i in full..len {
        let (x, y) = values(i);
        x_total += x;
        y_total += y;
    }
    (x_total, y_total)
}

#[inline(always)]
pub(crate) fn lane_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a = if x > *a { x } else { *a };
        }
    }
    let mut max = acc.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    for &x in chunks.remainder() {
        max = max.max(x);
    }
    max
}

multiversion! {
    /// One attention row: `out ← softmax(scale · scores + mask)`, three vectorised passes.
    fn scaled_masked_softmax_row(scores: &[f32], mask: &[f32], scale: f32, out: &mut [f32]) -> () {
        for ((o, &s), &m) in out.iter_mut().zip(scores).zip(mask) {
            *o = s * scale + m;
        }
        let max = lane_max(out);
        for o in out.iter_mut() {
            *o = exp(*o - max);
        }
        let inv = 1.0 / lane_sum(|i| out[i], out.len());
        for o in out.iter_mut() {
            *o *= inv;
        }
    }
}

multiversion! {
    /// `row ← softmax(row)` in place (an unmasked attention row, already scaled).
    fn softmax_row_in_place(row: &mut [f32]) -> () {
        let max = lane_max(row);
        for x in row.iter_mut() {
            *x = exp(*x - max);
        }
        let inv = 1.0 / lane_sum(|i| row[i], row.len());
        for x in row.iter_mut() {
            *x *= inv;
        }
    }
}

multiversion! {
    /// `out[i] ← silu(gate[i]) · up[i]`.
    fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) -> () {
        for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
            *o = g / (1.0 + exp(-g)) * u;
        }
    }
}

multiversion! {
    /// Backward of `silu(gate) · up` for the incoming gradient `grad`:
    /// `d_gate ← grad · up · σ(gate)·(1 + gate·(1 − σ(gate)))`, `d_up ← grad · silu(gate)`.
    fn silu_mul_backward(
        gate: &[f32],
        up: &[f32],
        grad: &[f32],
        d_gate: &mut [f32],
        d_up: &mut [f32]
    ) -> () {
        for i in 0..gate.len().min(up.len()).min(grad.len()).min(d_gate.len()).min(d_up.len()) {
            let g = gate[i];
            let sig = 1.0 / (1.0 + exp(-g));
            d_gate[i] = grad[i] * up[i] * sig * (1.0 + g * (1.0 - sig));
            d_up[i] = grad[i] * g * sig;
        }
    }
}

multiversion! {
    /// `log Σ e^x` of a row, stably (shifted by its maximum).
    fn logsumexp(row: &[f32]) -> f32 {
        let max = lane_max(row);
        if max == f32::NEG_INFINITY {
            return max;
        }
        max + lane_sum(|i| exp(row[i] - max), row.len()).ln()
    }
}

/// What a row of logits says about the next token: the largest logit and its index (ties:
/// the first), `log Σ e^x`, and the entropy of the softmax.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowStats {
    pub argmax: usize,
    pub max: f32,
    pub logsumexp: f32,
    pub entropy: f32,
}

multiversion! {
    /// [`RowStats`] of one row in two passes and no allocation. `H = lse − Σ pᵢ xᵢ`.
    fn row_stats(row: &[f32]) -> RowStats {
        let max = lane_max(row);
        let argmax = row.iter().position(|&x| x == max).unwrap_or(0);
        // One exp per element for both sums: Σ e^(x−max) and Σ e^(x−max)·(x−max).
        let (sum, weighted) = lane_sum_pair(
            |i| {
                let d = row[i] - max;
                let e = exp(d);
                (e, e * d)
            },
            row.len(),
        );
        let logsumexp = max + sum.ln();
        RowStats {
            argmax,
            max,
            logsumexp,
            entropy: sum.ln() - weighted / sum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_three_ten_millionths_of_libm_over_the_whole_range() {
        let mut worst = 0f64;
        let mut x = -87.3f32;
        while x < 88.0 {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_37;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn slice_loops_equal_their_scalar_definitions() {
        let xs: Vec<f32> = (0..1037)
            .map(|i| ((i * 37) % 101) as f32 * 0.173 - 9.0)
            .collect();
        let scores: Vec<f32> = xs.iter().rev().cloned().collect();
        let mask: Vec<f32> = (0..xs.len())
            .map(|i| if i % 5 == 0 { -1e30 } else { 0.0 })
            .collect();
        let mut probs = vec![0f32; xs.len()];
        scaled_masked_softmax_row(&scores, &mask, 0.7, &mut probs);
        let z: f64 = scores
            .iter()
            .zip(&mask)
            .filter(|(_, &m)| m == 0.0)
            .map(|(&s, _)| (0.7 * s as f64).exp())
            .sum();
        for i in 0..xs.len() {
            let want = if mask[i] == 0.0 {
                (0.7 * scores[i] as f64).exp() / z
            } else {
                0.0
            };
            assert!(
                (probs[i] as f64 - want).abs() < 1e-6 * want.max(1e-3),
                "prob {i}"
            );
        }

        let up: Vec<f32> = xs.iter().map(|x| 0.5 - x * 0.1).collect();
        let mut out = vec![0f32; xs.len()];
        silu_mul(&xs, &up, &mut out);
        let grad: Vec<f32> = xs.iter().map(|x| (x * 0.3).sin()).collect();
        let (mut dg, mut du) = (vec![0f32; xs.len()], vec![0f32; xs.len()]);
        silu_mul_backward(&xs, &up, &grad, &mut dg, &mut du);
        for i in 0..xs.len() {
            let (g, u, gr) = (xs[i] as f64, up[i] as f64, grad[i] as f64);
            let sig = 1.0 / (1.0 + (-g).exp());
            let close = |a: f32, b: f64| (a as f64 - b).abs() <= 1e-5 * b.abs().max(1.0);
            assert!(close(out[i], g * sig * u), "silu·up at {i}");
            assert!(
                close(dg[i], gr * u * sig * (1.0 + g * (1.0 - sig))),
                "d gate at {i}"
            );
            assert!(close(du[i], gr * g * sig), "d up at {i}");
        }
    }

    #[test]
    fn row_stats_match_a_direct_computation() {
        let row: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 613) as f32 * 0.01 - 2.0)
            .collect();
        let s = row_stats(&row);
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(s.max, max);
        assert_eq!(s.argmax, row.iter().position(|&x| x == max).unwrap());
        let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        let lse = z.ln();
        let h: f64 = -row
            .iter()
            .map(|&x| {
                let lp = x as f64 - lse;
                lp.exp() * lp
            })
            .sum::<f64>();
        assert!(
            (s.logsumexp as f64 - lse).abs() < 1e-5,
            "{} vs {lse}",
            s.logsumexp
        );
        assert!((logsumexp(&row) as f64 - lse).abs() < 1e-5);
        assert_eq!(logsumexp(&[f32::NEG_INFINITY; 3]), f32::NEG_INFINITY);
        assert!((s.entropy as f64 - h).abs() < 1e-4, "{} vs {h}", s.entropy);
    }
}
