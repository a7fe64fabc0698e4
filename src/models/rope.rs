//! Rotary position embeddings, rotate-half style (as Hugging Face applies them), with tables
//! precomputed once and gathered per row so left-padded rows get their own positions.
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, D};

#[derive(Debug, Clone)]
pub struct RopeTables {
    /// `[max_positions, head_dim / 2]`
    cos: Tensor,
    sin: Tensor,
    max_positions: usize,
}

impl RopeTables {
    /// Frequencies in f32 as transformers computes them: `1 / theta^(2i/d) / scaling`.
    pub fn new(
        head_dim: usize,
        theta: f64,
        scaling: f64,
        max_positions: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32) / scaling as f32)
            .collect();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (max_positions, half), device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, (max_positions, half), device)?.to_dtype(dtype)?,
            max_positions,
        })
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// cos and sin `[b, t, head_dim / 2]` for positions `[b, t]` (u32).
    pub fn gather(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = positions.dims2()?;
        let flat = positions.flatten_all()?;
        let max = flat.max(0)?.to_scalar::<u32>()? as usize;
        if max >= self.max_positions {
            bail!(
                "position {max} is beyond the model's context of {} tokens; shorten the input \
                 (max_input_tokens) or max_new_tokens",
                self.max_positions
            );
        }
        let half = self.cos.dim(1)?;
        let cos = self.cos.index_select(&flat, 0)?.reshape((b, t, half))?;
        let sin = self.sin.index_select(&flat, 0)?.reshape((b, t, half))?;
        Ok((cos, sin))
    }
}

/// Rotate `x` `[b, heads, t, head_dim]`. The fused kernel has no backward pass, so training
/// uses the composite form.
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor, train: bool) -> Result<Tensor> {
    if !train {
        return Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?);
    }
    let half = x.dim(D::Minus1)? / 2;
    let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
    let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    Ok((x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_and_composite_agree_per_row_positions() -> Result<()> {
        let dev = Device::Cpu;
        let tables = RopeTables::new(8, 10_000.0, 1.0, 32, DType::F32, &dev)?;
        let positions = Tensor::new(&[[0u32, 0, 1], [3, 4, 5]], &dev)?;
        let (cos, sin) = tables.gather(&positions)?;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 3, 8), &dev)?;
        let fast = apply(&x, &cos, &sin, false)?;
        let slow = apply(&x, &cos, &sin, true)?;
        let diff = (fast - &slow)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "diff {diff}");
        // Position 0 is the identity.
        let first = slow.narrow(0, 0, 1)?.narrow(2, 0, 1)?;
        let x_first = x.narrow(0, 0, 1)?.narrow(2, 0, 1)?;
        let diff = (first - x_first)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6);
        Ok(())
    }

    #[test]
    fn position_past_context_is_an_error() -> Result<()> {
        let tables = RopeTables::new(4, 10_000.0, 1.0, 4, DType::F32, &Device::Cpu)?;
        let err = tables
            .gather(&Tensor::new(&[[4u32]], &Device::Cpu)?)
            .unwrap_err();
        assert!(err.to_string().contains("context"));
        Ok(())
    }
}
