//! `softmax(scale · scores + mask)` over the last dimension as one op with its own backward.
//!
//! In training, candle's composed softmax keeps every step for the backward pass: the scaled
//! scores, the masked scores, the shifted scores, their exponentials and the quotient — five
//! `[batch, heads, t, t]` tensors per layer (95 MB per layer at 8 × 256 tokens, 2.8 GB over
//! SmolLM2's 30 layers), and five passes over them. This op keeps only its output, which the
//! backward needs anyway: d scores = scale · p ⊙ (g − Σ g ⊙ p).
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::cpu_slice::{contiguous_f32, cpu_contiguous_f32};

struct ScaledMaskedSoftmax {
    /// `[batch, 1, t or 1, keys]` additive mask (0 or a large negative), broadcast over heads
    /// (and over queries when it has one row). Contiguous; read in place, not copied, since
    /// every layer of a forward pass applies the same mask.
    mask: Tensor,
    mask_batch: usize,
    mask_rows: usize,
    scale: f32,
}

impl CustomOp1 for ScaledMaskedSoftmax {
    fn name(&self) -> &'static str {
        "scaled-masked-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, h, t, keys) = layout.shape().dims4()?;
        let scores = contiguous_f32(storage, layout, "scaled-masked-softmax: scores")?;
        let (mask_storage, mask_layout) = self.mask.storage_and_layout();
        let mask = cpu_contiguous_f32(
            &mask_storage,
            mask_layout,
            "scaled-masked-softmax: the mask",
        )?;
        if self.mask_batch != b || mask.len() != b * self.mask_rows * keys {
            candle_core::bail!(
                "scaled-masked-softmax: mask of {} values for scores {:?}",
                mask.len(),
                layout.shape()
            );
        }
        let mut out = vec![0f32; scores.len()];
        let fast_exp = super::fused_train::fused("exp");
        out.par_chunks_mut(keys)
            .zip(scores.par_chunks(keys))
            .enumerate()
            .for_each(|(row, (o, s))| {
                // row = ((bi * h + hi) * t + qi)
                let qi = if self.mask_rows == 1 { 0 } else { row % t };
                let bi = row / (h * t);
                let at = (bi * self.mask_rows + qi) * keys;
                let m = &mask[at..at + keys];
                if fast_exp {
                    super::fast_exp::scaled_masked_softmax_row(s, m, self.scale, o);
                    return;
                }
                let mut max = f32::NEG_INFINITY;
                for ((o, &s), &m) in o.iter_mut().zip(s).zip(m) {
                    *o = s * self.scale + m;
                    max = max.max(*o);
                }
                let mut sum = 0f32;
                for o in o.iter_mut() {
                    // Masked keys sit ~1e30 below the max; libm's expf takes a slow
                    // underflow path for them, so they are zeroed without it.
                    let d = *o - max;
                    *o = if d < -104.0 { 0.0 } else { d.exp() };
                    sum += *o;
                }
                let inv = 1.0 / sum;
                for o in o.iter_mut() {
                    *o *= inv;
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _scores: &Tensor, p: &Tensor, grad_p: &Tensor) -> Result<Option<Tensor>> {
        let p = p.detach();
        let dot = (grad_p * &p)?.sum_keepdim(D::Minus1)?;
        let g = (grad_p.broadcast_sub(&dot)? * &p)?;
        Ok(Some((g * self.scale as f64)?))
    }
}

/// `softmax(scale · scores + mask, last dim)` for `scores [b, h, t, keys]` and
/// `mask [b, 1, t, keys]` (or `[b, 1, 1, keys]`, the same for every query). On the CPU in f32
/// one fused op that keeps only its output for the backward pass; elsewhere the composed candle
/// ops (same values).
pub fn scaled_masked_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let cpu_f32 = matches!(scores.device(), Device::Cpu)
        && scores.dtype() == DType::F32
        && mask.dtype() == DType::F32
        && scores.rank() == 4
        && mask.rank() == 4
        && super::fused_train::fused("softmax");
    if cpu_f32 {
        let (b, _, t, keys) = scores.dims4()?;
        let (mb, mh, rows, mk) = mask.dims4()?;
        if (mb, mh, mk) == (b, 1, keys) && (rows == t || rows == 1) {
            return scores.contiguous()?.apply_op1(ScaledMaskedSoftmax {
                mask: mask.contiguous()?,
                mask_batch: b,
                mask_rows: rows,
                scale: scale as f32,
            });
        }
    }
    let masked = (scores * scale)?.broadcast_add(mask)?;
    candle_nn::ops::softmax(&masked, D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn composed(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
        candle_nn::ops::softmax(&(scores * scale)?.broadcast_add(mask)?, D::Minus1)
    }

    use crate::models::cpu_slice::max_abs_diff as max_diff;

    #[test]
    fn values_and_gradients_equal_the_composed_ops() -> Result<()> {
        let dev = Device::Cpu;
        let (b, h, t, keys) = (2, 3, 4, 5);
        let scores = Var::from_tensor(&Tensor::randn(0f32, 2.0, (b, h, t, keys), &dev)?)?;
        // Causal mask with left padding in the second row (its first key is padding); the
        // first query of that row sees no key at all.
        let mut m = vec![0f32; b * t * keys];
        for bi in 0..b {
            for qi in 0..t {
                for k in 0..keys {
                    let causal = k > qi + 1;
                    let padded = bi == 1 && (k == 0 || qi == 0);
                    if causal || padded {
                        m[(bi * t + qi) * keys + k] = -1.0e30;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(m, (b, 1, t, keys), &dev)?;
        let upstream = Tensor::randn(0f32, 1.0, (b, h, t, keys), &dev)?;
        let scale = 0.125;

        let fused = scaled_masked_softmax(scores.as_tensor(), &mask, scale)?;
        let reference = composed(scores.as_tensor(), &mask, scale)?;
        assert!(max_diff(&fused, &reference) < 1e-6);

        // A padding-only mask `[b, 1, 1, keys]` (the encoder's) broadcasts over queries.
        let pad = mask.narrow(2, t - 1, 1)?;
        let fused_pad = scaled_masked_softmax(scores.as_tensor(), &pad, scale)?;
        assert!(max_diff(&fused_pad, &composed(scores.as_tensor(), &pad, scale)?) < 1e-6);

        let g_fused = (fused * &upstream)?.sum_all()?.backward()?;
        let g_ref = (reference * &upstream)?.sum_all()?.backward()?;
        let (a, r) = (g_fused.get(&scores).unwrap(), g_ref.get(&scores).unwrap());
        assert!(
            max_diff(a, r) < 1e-5,
            "gradient differs by {}",
            max_diff(a, r)
        );
        Ok(())
    }
}
