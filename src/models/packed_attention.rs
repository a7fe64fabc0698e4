//! Bidirectional self-attention over sequences laid end to end, read straight out of the
//! fused query-key-value product and written straight into the context rows.
//!
//! Run as candle ops, an encoder's attention needs the sequences padded to a common length,
//! heads split into blocks (a copy), a mask, and then one multi-threaded gemm call per
//! (sequence, head) — hundreds of tiny calls per layer, each paying thread hand-off. It took a
//! quarter of MiniLM's embedding time for a tenth of its FLOPs. Here each sequence is one task
//! (spread over rayon's threads): per head, a single-threaded gemm of `q·kᵀ` on the strided
//! rows in place (the scale folded into it), an in-place softmax per row, and `p·v` written
//! at the head's columns of the output. No padding, no mask, no copies.
use rayon::prelude::*;

use super::cpu_gemm::{self, Mat};

/// `qkv` is `[tokens, 3·heads·head_dim]` row-major (each row: query, key, value, each split
/// into heads); `lengths` splits the tokens into sequences. Returns the context
/// `[tokens, heads·head_dim]`: per sequence and head, `softmax(q·kᵀ / √head_dim) · v`.
///
/// # Panics
/// If `qkv` does not hold `Σ lengths` rows of that width (a caller bug).
pub fn packed_attention(qkv: &[f32], lengths: &[usize], heads: usize, head_dim: usize) -> Vec<f32> {
    let hidden = heads * head_dim;
    let tokens: usize = lengths.iter().sum();
    assert_eq!(
        qkv.len(),
        tokens * 3 * hidden,
        "packed attention: qkv must be [{tokens}, {}]",
        3 * hidden
    );
    let mut ctx = vec![0f32; tokens * hidden];
    // Each sequence's input rows and output rows, as disjoint slices.
    let mut work = Vec::with_capacity(lengths.len());
    let (mut rest_in, mut rest_out) = (qkv, ctx.as_mut_slice());
    for &len in lengths {
        let (input, tail_in) = rest_in.split_at(len * 3 * hidden);
        let (output, tail_out) = std::mem::take(&mut rest_out).split_at_mut(len * hidden);
        work.push((len, input, output));
        (rest_in, rest_out) = (tail_in, tail_out);
    }
    let scale = 1.0 / (head_dim as f32).sqrt();
    work.into_par_iter().for_each(|(len, input, output)| {
        let mut scores = vec![0f32; len * len];
        for head in 0..heads {
            sequence_head(
                input,
                output,
                &mut scores,
                len,
                head,
                heads,
                head_dim,
                scale,
            );
        }
    });
    ctx
}

/// One head of one sequence: `output[:, head] ← softmax(scale · q kᵀ) v`.
#[allow(clippy::too_many_arguments)]
fn sequence_head(
    input: &[f32],
    output: &mut [f32],
    scores: &mut [f32],
    len: usize,
    head: usize,
    heads: usize,
    head_dim: usize,
    scale: f32,
) {
    if len == 0 {
        return;
    }
    let hidden = heads * head_dim;
    let stride = 3 * hidden;
    let q = head * head_dim;
    let k = hidden + head * head_dim;
    let v = 2 * hidden + head * head_dim;
    // Bounds for every strided read and write below: the last row's head block ends inside
    // its slice.
    assert!(v + head_dim + (len - 1) * 3 * hidden <= input.len());
    assert!(head * head_dim + head_dim + (len - 1) * hidden <= output.len());
    assert_eq!(scores.len(), len * len);
    // The views below are in bounds by the asserts above: a failure is a bug.
    // scores (i, j) = scale · Σ_d q[i][d] · k[j][d]: rhs (d, j) = k[j][d].
    let q_rows = Mat::strided(&input[q..], len, head_dim, stride, 1).expect("attention: q");
    let k_cols = Mat::strided(&input[k..], head_dim, len, 1, stride).expect("attention: kᵀ");
    cpu_gemm::product_on_this_thread(scores, len, false, q_rows, k_cols, scale)
        .expect("attention: scores");
    for row in scores.chunks_exact_mut(len) {
        super::fast_exp::softmax_row_in_place(row);
    }
    // output (i, c) = Σ_j p[i][j] · v[j][c].
    let probs = Mat::row_major(scores, len, len).expect("attention: probabilities");
    let v_rows = Mat::strided(&input[v..], len, head_dim, stride, 1).expect("attention: v");
    cpu_gemm::product_on_this_thread(
        &mut output[head * head_dim..],
        hidden,
        false,
        probs,
        v_rows,
        1.0,
    )
    .expect("attention: output");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formula, one dot product at a time.
    fn naive(qkv: &[f32], lengths: &[usize], heads: usize, head_dim: usize) -> Vec<f32> {
        let hidden = heads * head_dim;
        let mut out = vec![0f32; qkv.len() / 3];
        let mut start = 0;
        for &len in lengths {
            for h in 0..heads {
                let at = |t: usize, part: usize, d: usize| {
                    qkv[(start + t) * 3 * hidden + part * hidden + h * head_dim + d]
                };
                for i in 0..len {
                    let logits: Vec<f32> = (0..len)
                        .map(|j| {
                            (0..head_dim)
                                .map(|d| at(i, 0, d) * at(j, 1, d))
                                .sum::<f32>()
                                / (head_dim as f32).sqrt()
                        })
                        .collect();
                    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let weights: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
                    let total: f32 = weights.iter().sum();
                    for d in 0..head_dim {
                        let value: f32 = (0..len).map(|j| weights[j] * at(j, 2, d)).sum();
                        out[(start + i) * hidden + h * head_dim + d] = value / total;
                    }
                }
            }
            start += len;
        }
        out
    }

    #[test]
    fn matches_the_formula_for_uneven_sequences() {
        let (heads, head_dim) = (3, 5);
        // Lengths around gemm's register tiles, a single token, and an empty sequence.
        let lengths = [17, 1, 0, 33, 4];
        let tokens: usize = lengths.iter().sum();
        let qkv: Vec<f32> = (0..tokens * 3 * heads * head_dim)
            .map(|i| (i * 7919 % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let got = packed_attention(&qkv, &lengths, heads, head_dim);
        let want = naive(&qkv, &lengths, heads, head_dim);
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-5, "differs by {diff}");
    }

    #[test]
    fn softmax_rows_sum_to_one_and_follow_the_logits() {
        let mut row = vec![0.0f32, 1.0, 2.0, -30.0];
        crate::models::fast_exp::softmax_row_in_place(&mut row);
        let total: f32 = row.iter().sum();
        assert!((total - 1.0).abs() < 1e-6);
        let e = [1.0f32, 1f32.exp(), 2f32.exp(), (-30f32).exp()];
        let z: f32 = e.iter().sum();
        for (got, want) in row.iter().zip(e.iter().map(|x| x / z)) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }
}
