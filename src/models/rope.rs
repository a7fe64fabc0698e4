//! Rotary position embeddings, rotate-half style (as Hugging Face applies them), with tables
//! precomputed once and gathered per row so left-padded rows get their own positions.
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};

/// The most positions rotary tables are computed for. A model configured for a longer context
/// (128k is common) runs up to this: its full tables would cost memory and start-up time for
/// lengths this lab does not use.
pub const MAX_TABLE_POSITIONS: usize = 32_768;

/// How messages state a context of `usable` tokens when the model's config says `configured`:
/// plainly when they agree, else naming the cap so a longer model's context is not misstated.
pub fn describe_context(usable: usize, configured: usize) -> String {
    if configured > usable {
        format!(
            "the {usable} positions this decoder runs (the model's config allows {configured}; \
             rotary tables are capped at {MAX_TABLE_POSITIONS} positions)"
        )
    } else {
        format!("the model's context of {usable} tokens")
    }
}

#[derive(Debug, Clone)]
pub struct RopeTables {
    /// `[max_positions, head_dim / 2]`
    cos: Tensor,
    sin: Tensor,
    max_positions: usize,
    /// The model's configured context, when the tables cover less (see `MAX_TABLE_POSITIONS`).
    configured_positions: usize,
}

/// How rotary frequencies are stretched for long contexts.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    /// Every frequency divided by the factor.
    Linear(f64),
    /// Llama 3's wavelength-dependent scaling (transformers' `rope_type = "llama3"`).
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
    /// Per-frequency divisors, as llama.cpp stores Llama 3 scaling (`rope_freqs.weight`).
    Divisors(Vec<f32>),
}

impl RopeScaling {
    fn apply(&self, inv_freq: &mut [f32]) -> Result<()> {
        match self {
            Self::None => {}
            Self::Linear(f) => inv_freq.iter_mut().for_each(|x| *x /= *f as f32),
            Self::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let old = *original_max_position_embeddings as f32;
                let (factor, low, high) = (
                    *factor as f32,
                    *low_freq_factor as f32,
                    *high_freq_factor as f32,
                );
                let low_wavelen = old / low;
                let high_wavelen = old / high;
                for x in inv_freq.iter_mut() {
                    let wavelen = 2.0 * std::f32::consts::PI / *x;
                    if wavelen > low_wavelen {
                        *x /= factor;
                    } else if wavelen >= high_wavelen {
                        let smooth = (old / wavelen - low) / (high - low);
                        *x = (1.0 - smooth) * *x / factor + smooth * *x;
                    }
                }
            }
            Self::Divisors(d) => {
                if d.len() != inv_freq.len() {
                    bail!(
                        "rope_freqs has {} entries but the head needs {}",
                        d.len(),
                        inv_freq.len()
                    );
                }
                inv_freq.iter_mut().zip(d).for_each(|(x, d)| *x /= d);
            }
        }
        Ok(())
    }
}

impl RopeTables {
    /// Frequencies in f32 as transformers computes them, `1 / theta^(2i/d)`, then scaled.
    pub fn new(
        head_dim: usize,
        theta: f64,
        scaling: &RopeScaling,
        max_positions: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let half = head_dim / 2;
        let mut inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        scaling.apply(&mut inv_freq)?;
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
            configured_positions: max_positions,
        })
    }

    /// Note the model's configured context, for messages when it is longer than the tables.
    pub fn with_configured_context(mut self, configured: usize) -> Self {
        self.configured_positions = configured;
        self
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
                "position {max} is beyond {}; shorten the input (max_input_tokens) or \
                 max_new_tokens",
                describe_context(self.max_positions, self.configured_positions)
            );
        }
        let half = self.cos.dim(1)?;
        let cos = self.cos.index_select(&flat, 0)?.reshape((b, t, half))?;
        let sin = self.sin.index_select(&flat, 0)?.reshape((b, t, half))?;
        Ok((cos, sin))
    }
}

/// Rotate `x` `[b, heads, t, head_dim]`. candle's fused kernel has no backward pass, so
/// training uses ours (`fused_train`).
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor, train: bool) -> Result<Tensor> {
    if !train {
        return Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?);
    }
    Ok(super::fused_train::rope_train(x, cos, sin)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_and_composite_agree_per_row_positions() -> Result<()> {
        let dev = Device::Cpu;
        let tables = RopeTables::new(8, 10_000.0, &RopeScaling::None, 32, DType::F32, &dev)?;
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
        let tables = RopeTables::new(4, 10_000.0, &RopeScaling::None, 4, DType::F32, &Device::Cpu)?;
        let err = tables
            .gather(&Tensor::new(&[[4u32]], &Device::Cpu)?)
            .unwrap_err();
        assert!(err.to_string().contains("context"));
        Ok(())
    }

    /// A model configured past the tables' cap is not said to have the cap as its context.
    #[test]
    fn past_the_cap_the_error_names_the_configured_context() -> Result<()> {
        let tables = RopeTables::new(4, 10_000.0, &RopeScaling::None, 4, DType::F32, &Device::Cpu)?
            .with_configured_context(131_072);
        let err = tables
            .gather(&Tensor::new(&[[4u32]], &Device::Cpu)?)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the 4 positions this decoder runs")
                && err.contains("the model's config allows 131072")
                && err.contains("capped"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn llama3_scaling_matches_transformers_formula() -> Result<()> {
        // Llama 3.2: factor 32, low 1, high 4, original context 8192, theta 500000, head 64.
        let scaling = RopeScaling::Llama3 {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        let mut f: Vec<f32> = (0..32)
            .map(|i| 1.0 / 500_000f32.powf(2.0 * i as f32 / 64.0))
            .collect();
        let orig = f.clone();
        scaling.apply(&mut f)?;
        // High frequencies (short wavelengths) are untouched, the lowest are divided by 32.
        assert_eq!(f[0], orig[0]);
        assert!((f[31] - orig[31] / 32.0).abs() < 1e-12);
        // A medium band is interpolated between the two.
        let medium = (0..32).find(|&i| f[i] != orig[i] && (f[i] - orig[i] / 32.0).abs() > 1e-12);
        let i = medium.expect("some frequencies are smoothed");
        assert!(f[i] < orig[i] && f[i] > orig[i] / 32.0);
        Ok(())
    }
}
