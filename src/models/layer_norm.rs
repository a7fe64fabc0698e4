//! Layer normalisation for inference (the MiniLM encoder): one vectorised pass per row.
//!
//! candle-nn's CPU kernel sums a row with one running scalar sum, which the compiler may not
//! reorder, so it runs one lane wide; in MiniLM embeddings that was ~5% of the time.
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Result, Shape, Tensor};
use candle_nn::LayerNorm;
use rayon::prelude::*;

use super::cpu_slice::contiguous_f32;
use super::fast_exp::{lane_sum, multiversion};

/// `row ← (row − mean) / √(var + eps) · weight + bias`, the row kernel of every fused layer
/// norm (inlined into each caller's vectorised loop).
#[inline(always)]
pub(crate) fn layer_norm_in_place(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = lane_sum(|i| row[i], row.len()) / n;
    let var = lane_sum(|i| (row[i] - mean) * (row[i] - mean), row.len()) / n;
    let inv_std = 1.0 / (var + eps).sqrt();
    for ((v, &w), &b) in row.iter_mut().zip(weight).zip(bias) {
        *v = (*v - mean) * inv_std * w + b;
    }
}

multiversion! {
    /// [`layer_norm_in_place`] compiled for the widest vectors the CPU has.
    fn layer_norm_row(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) -> () {
        layer_norm_in_place(row, weight, bias, eps)
    }
}

struct RowLayerNorm<'a> {
    weight: &'a [f32],
    bias: &'a [f32],
    eps: f32,
}

impl CustomOp1 for RowLayerNorm<'_> {
    fn name(&self) -> &'static str {
        "layer-norm-rows"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "layer norm: x")?;
        let width = self.weight.len();
        if width == 0 || x.len() % width != 0 {
            candle_core::bail!(
                "layer norm: rows of {width} do not tile {:?}",
                layout.shape()
            );
        }
        let mut out = x.to_vec();
        out.par_chunks_mut(width)
            .for_each(|row| layer_norm_row(row, self.weight, self.bias, self.eps));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// A BERT layer norm that runs the row kernel where it can.
#[derive(Debug, Clone)]
pub struct InferenceLayerNorm {
    norm: LayerNorm,
    eps: f64,
    /// The weight and bias as f32 values on the host, for fused row kernels.
    row_params: Option<(Vec<f32>, Vec<f32>)>,
}

impl InferenceLayerNorm {
    pub fn load(size: usize, eps: f64, vb: candle_nn::VarBuilder) -> Result<Self> {
        Self::new(candle_nn::layer_norm(size, eps, vb)?, eps)
    }

    pub fn new(norm: LayerNorm, eps: f64) -> Result<Self> {
        let row_params = match norm.bias() {
            Some(bias) => Some((
                norm.weight().to_dtype(DType::F32)?.to_vec1()?,
                bias.to_dtype(DType::F32)?.to_vec1()?,
            )),
            None => None,
        };
        Ok(Self {
            norm,
            eps,
            row_params,
        })
    }

    /// `(weight, bias, eps)` for a row kernel that normalises in place (fused ops), when the
    /// norm has a bias.
    pub fn row_params(&self) -> Option<(&[f32], &[f32], f32)> {
        self.row_params
            .as_ref()
            .map(|(w, b)| (w.as_slice(), b.as_slice(), self.eps as f32))
    }
}

impl Module for InferenceLayerNorm {
    /// The row kernel on the CPU in f32 without gradients, candle-nn's layer norm otherwise.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let fast = matches!(x.device(), Device::Cpu)
            && x.dtype() == DType::F32
            && !x.track_op()
            && super::fused_train::fused("norm");
        match self.row_params() {
            Some((weight, bias, eps)) if fast => {
                x.contiguous()?
                    .apply_op1_no_bwd(&RowLayerNorm { weight, bias, eps })
            }
            _ => self.norm.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_candle_nn_layer_norm() -> Result<()> {
        let dev = Device::Cpu;
        let (rows, width) = (7, 37);
        let x = (Tensor::randn(0f32, 3.0, (rows, width), &dev)? + 5.0)?;
        let weight = Tensor::randn(1f32, 0.2, width, &dev)?;
        let bias = Tensor::randn(0f32, 0.2, width, &dev)?;
        let norm = LayerNorm::new(weight, bias, 1e-12);
        let fast = InferenceLayerNorm::new(norm.clone(), 1e-12)?.forward(&x)?;
        let want = norm.forward(&x)?;
        let diff = (fast - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "differs by {diff}");
        Ok(())
    }
}
