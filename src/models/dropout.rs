//! LoRA's inverted dropout: masks drawn from a seeded ChaCha stream, so a training step is
//! reproducible, and drawn in parallel chunks that give the same mask as one thread.
use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::cpu_gemm::Mat;

/// Values drawn per chunk of a mask: each chunk seeks to its own place in the stream.
const CHUNK: usize = 1 << 14;

/// Dropout with probability `p`, its mask drawn from stream `stream` of `seed`.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub p: f32,
    pub seed: u64,
    pub stream: u64,
}

/// Which of `len` values dropout keeps, and the factor `1/(1 − p)` that scales them.
#[derive(Debug, Clone)]
pub struct DropoutMask {
    kept: Vec<bool>,
    scale: f32,
}

impl Dropout {
    /// Value `i` is kept where word `i` of the stream, as rand's f32, is below `1 − p` (one
    /// u32 per value), so the mask is the same as one thread drawing `rng.random::<f32>()` in
    /// order (tested). Chunks are drawn in parallel, in blocks of words compared as integers:
    /// drawn one f32 at a time on one thread, the masks took ~9 ns a value, ~10% of the quick
    /// start's training.
    pub fn mask(&self, len: usize) -> DropoutMask {
        let keep = 1.0 - self.p;
        let below = keep_threshold(keep);
        let mut kept = vec![false; len];
        kept.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(chunk, values)| {
                let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
                rng.set_stream(self.stream);
                rng.set_word_pos((chunk * CHUNK) as u128);
                let mut words = [0u32; 256];
                for block in values.chunks_mut(words.len()) {
                    let words = &mut words[..block.len()];
                    rng.fill(words);
                    for (v, w) in block.iter_mut().zip(words.iter()) {
                        *v = w >> 8 < below;
                    }
                }
            });
        DropoutMask {
            kept,
            scale: 1.0 / keep,
        }
    }

    /// `x ⊙ mask` as candle ops (differentiable), for the paths that compose the LoRA linear.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let mask = self.mask(x.elem_count()).values();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x.mul(&mask)
    }
}

/// rand's f32 from a word `u` is `(u >> 8)·2⁻²⁴`, exact in f32, so `f < keep` is
/// `(u >> 8) < ⌈keep·2²⁴⌉` (for `keep = 1 − p` computed in f32, keep·2²⁴ is an integer).
fn keep_threshold(keep: f32) -> u32 {
    (keep as f64 * (1u64 << 24) as f64).ceil() as u32
}

impl DropoutMask {
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The factor of a kept value, or 0, without a branch: the loops over masks then compile
    /// to vector code. Branching on each value (5% dropped at random) kept them scalar and
    /// mispredicting, 3.7-3.9 ns a value against 0.4 in a micro-benchmark: ~6% of a quick-start
    /// cell's samples were in those loops.
    #[inline(always)]
    fn factor(&self, kept: bool) -> f32 {
        f32::from(u8::from(kept)) * self.scale
    }

    /// The mask as the values it multiplies by: `1/(1 − p)` or 0.
    pub fn values(&self) -> Vec<f32> {
        self.kept.iter().map(|&k| self.factor(k)).collect()
    }

    /// `x ⊙ mask` as a fresh row-major buffer, for an `x` of `len()` values in any layout.
    pub fn apply_to(&self, x: Mat) -> Result<Vec<f32>> {
        let (rows, cols) = (x.rows(), x.cols());
        if rows * cols != self.len() {
            candle_core::bail!(
                "dropout: a mask of {} values for a {rows} × {cols} input",
                self.len()
            );
        }
        if let Some(values) = x.as_row_major() {
            // One pass writing into unfilled memory, not a copy then a pass over the copy.
            let len = values.len();
            let mut out: Vec<f32> = Vec::with_capacity(len);
            out.spare_capacity_mut()[..len]
                .par_chunks_mut(CHUNK)
                .zip(values.par_chunks(CHUNK))
                .zip(self.kept.par_chunks(CHUNK))
                .for_each(|((out, values), kept)| {
                    for ((o, &v), &k) in out.iter_mut().zip(values).zip(kept) {
                        o.write(v * self.factor(k));
                    }
                });
            // SAFETY: the chunks above cover all `len` values and wrote every one of them.
            unsafe { out.set_len(len) };
            return Ok(out);
        }
        let mut out = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                out.push(x.get(i, j) * self.factor(self.kept[i * cols + j]));
            }
        }
        Ok(out)
    }

    /// `values ⊙ mask` in place (row-major, `len()` values).
    pub fn apply_in_place(&self, values: &mut [f32]) -> Result<()> {
        if values.len() != self.len() {
            candle_core::bail!(
                "dropout: a mask of {} values for {} values",
                self.len(),
                values.len()
            );
        }
        values
            .par_chunks_mut(CHUNK)
            .zip(self.kept.par_chunks(CHUNK))
            .for_each(|(values, kept)| {
                for (v, &k) in values.iter_mut().zip(kept) {
                    *v *= self.factor(k);
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn masks_drawn_in_chunks_equal_one_stream_drawn_in_order() {
        // Two whole chunks and part of a third.
        let len = 2 * CHUNK + 1234;
        let cases = [
            (0.05, 7, 3),
            (0.5, 11, 0),
            (0.1, 5, 9),
            (1.0 / 3.0, 2, 1),
            (0.9, 4, 2),
        ];
        for (p, seed, stream) in cases {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(stream);
            let keep = 1.0 - p;
            let in_order: Vec<f32> = (0..len)
                .map(|_| {
                    if rng.random::<f32>() < keep {
                        1.0 / keep
                    } else {
                        0.0
                    }
                })
                .collect();
            let chunked = Dropout { p, seed, stream }.mask(len).values();
            assert_eq!(chunked, in_order, "p {p}, seed {seed}, stream {stream}");
            let dropped = chunked.iter().filter(|v| **v == 0.0).count() as f32 / len as f32;
            assert!((dropped - p).abs() < 0.02, "dropped {dropped} of p {p}");
            // The integer comparison agrees with rand's f32 at the threshold itself, where
            // random words would almost never land.
            let below = keep_threshold(keep);
            for high in below.saturating_sub(2)..=below + 2 {
                let word = high << 8 | 0xAB;
                let as_rand = (word >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
                assert_eq!(
                    word >> 8 < below,
                    as_rand < keep,
                    "keep {keep}, word {word:#x}"
                );
            }
        }
    }

    #[test]
    fn dropout_is_seeded() -> Result<()> {
        let x = Tensor::ones((4, 32), DType::F32, &Device::Cpu)?;
        let with = |seed| Dropout {
            p: 0.5,
            seed,
            stream: 1,
        };
        let a = with(3).apply(&x)?.to_vec2::<f32>()?;
        let b = with(3).apply(&x)?.to_vec2::<f32>()?;
        let c = with(4).apply(&x)?.to_vec2::<f32>()?;
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().flatten().all(|v| *v == 0.0 || *v == 2.0));
        Ok(())
    }

    #[test]
    fn the_lora_op_with_dropout_matches_composed_dropout_and_its_gradients() -> Result<()> {
        use crate::models::cpu_slice::max_abs_diff;
        use crate::models::fused_lora_linear::{lora_linear, tests::assert_same_gradients};
        use candle_core::Var;
        let dev = Device::Cpu;
        // 70 rows: gemm; 3 rows: the skinny kernel's forward.
        for (m, k, n, r) in [(70, 33, 40, 4), (3, 7, 5, 2)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (m, k), &dev)?)?;
            let a = Var::from_tensor(&Tensor::randn(0f32, 1.0, (r, k), &dev)?)?;
            let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, r), &dev)?)?;
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
            let d = Dropout {
                p: 0.3,
                seed: 5,
                stream: 2,
            };
            let (xt, at, bt) = (x.as_tensor(), a.as_tensor(), b.as_tensor());
            let scale = 1.5;
            for wt in [w.t()?.contiguous()?, w.t()?] {
                let fused = lora_linear(xt, &wt, at, bt, scale, Some(d))?.expect("CPU f32");
                let adapter = d.apply(xt)?.matmul(&at.t()?)?.matmul(&bt.t()?)?;
                let composed = (xt.matmul(&wt)? + (adapter * scale)?)?;
                let diff = max_abs_diff(&fused, &composed);
                assert!(diff < 1e-4, "{m} rows: forward differs by {diff}");
                let undropped = lora_linear(xt, &wt, at, bt, scale, None)?.expect("CPU f32");
                assert!(
                    max_abs_diff(&fused, &undropped) > 1e-2,
                    "dropout dropped nothing"
                );
                let weights = Tensor::randn(0f32, 1.0, (m, n), &dev)?;
                let g_fused = (fused * &weights)?.sum_all()?.backward()?;
                let g_composed = (composed * &weights)?.sum_all()?.backward()?;
                assert_same_gradients(&g_fused, &g_composed, &[("x", &x), ("a", &a), ("b", &b)])?;
            }
        }
        Ok(())
    }

    #[test]
    fn applying_a_mask_reads_any_layout() -> Result<()> {
        // One chunk, and several with a partial last one.
        for (rows, cols) in [(3, 5), (5, CHUNK / 2 + 3)] {
            let x: Vec<f32> = (0..rows * cols).map(|i| (i % 97) as f32 - 4.5).collect();
            let mask = Dropout {
                p: 0.4,
                seed: 1,
                stream: 2,
            }
            .mask(rows * cols);
            let want: Vec<f32> = x.iter().zip(mask.values()).map(|(x, m)| x * m).collect();
            let row_major = Mat::row_major(&x, rows, cols)?;
            assert_eq!(mask.apply_to(row_major)?, want);
            let mut in_place = x.clone();
            mask.apply_in_place(&mut in_place)?;
            assert_eq!(in_place, want);
            let xt: Vec<f32> = (0..rows * cols)
                .map(|i| x[(i % rows) * cols + i / rows])
                .collect();
            let transposed = Mat::strided(&xt, rows, cols, 1, rows)?;
            assert_eq!(mask.apply_to(transposed)?, want);
            assert!(mask.apply_to(Mat::row_major(&x, rows - 1, cols)?).is_err());
        }
        Ok(())
    }
}
