//! BERT's dense layers for inference, each product followed by its epilogue in one pass.
//!
//! As candle ops, a BERT layer's `norm(x·Wᵀ + b + residual)` is five passes over the output
//! after gemm: candle zero-fills the product's buffer, adds the bias into a new tensor, adds
//! the residual into another, and the norm writes a third (itself zero-filled first); GELU
//! after the intermediate product is the same story. In a profile of MiniLM embeddings (MKL
//! build) the fills alone took 5.5% of the samples and the residual adds 4.4%. Here gemm writes into an unfilled
//! buffer and one row pass adds the bias (and residual) and applies GELU or the norm in
//! place, while the row is still in cache. Same arithmetic in the same order as the
//! composed ops.
//!
//! `LAB_UNFUSED=dense` runs the composed ops instead (side-by-side checks); they are also the
//! path on other devices and dtypes.
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::cpu_gemm::{self, Mat};
use super::fast_exp::multiversion;
use super::fast_gelu::gelu_f32;
use super::layer_norm::{layer_norm_in_place, InferenceLayerNorm};

/// Rows per rayon task in the epilogue pass (a row is a few hundred values).
const ROWS_PER_TASK: usize = 8;

/// `y = x·Wᵀ + b` with the weight stored transposed (`[in, out]`, row-major), the layout
/// gemm reads fastest.
#[derive(Debug, Clone)]
pub struct EncoderDense {
    weight_t: Tensor,
    bias: Tensor,
    bias_values: Vec<f32>,
}

impl EncoderDense {
    /// From a Hugging Face `[out, in]` weight and its `[out]` bias.
    pub fn new(weight: &Tensor, bias: &Tensor) -> Result<Self> {
        let (out, _) = weight.dims2()?;
        if bias.dims1()? != out {
            candle_core::bail!("dense layer: a bias of {} for {out} outputs", bias.dims1()?);
        }
        Ok(Self {
            weight_t: weight.t()?.contiguous()?,
            bias: bias.clone(),
            bias_values: bias.to_dtype(DType::F32)?.to_vec1()?,
        })
    }

    /// The `weight` and `bias` under `vb`.
    pub fn load(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((outputs, inputs), "weight")?;
        let bias = vb.get(outputs, "bias")?;
        Self::new(&weight, &bias)
    }

    fn outputs(&self) -> usize {
        self.bias_values.len()
    }

    /// `x·Wᵀ + b`.
    pub fn forward_bias(&self, x: &Tensor) -> Result<Tensor> {
        self.fused(x, None, |row, bias, _| add_bias_row(row, bias))?
            .map_or_else(|| self.composed(x), Ok)
    }

    /// `gelu(x·Wᵀ + b)`, erf form.
    pub fn forward_bias_gelu(&self, x: &Tensor) -> Result<Tensor> {
        match self.fused(x, None, |row, bias, _| bias_gelu_row(row, bias))? {
            Some(y) => Ok(y),
            None => super::fast_gelu::gelu_erf(&self.composed(x)?),
        }
    }

    /// `norm(x·Wᵀ + b + residual)`, BERT's post-norm residual block.
    pub fn forward_bias_residual_norm(
        &self,
        x: &Tensor,
        residual: &Tensor,
        norm: &InferenceLayerNorm,
    ) -> Result<Tensor> {
        let fused = match norm.row_params() {
            Some((weight, shift, eps)) => {
                self.fused(x, Some(residual), |row, bias, residual| {
                    bias_residual_norm_row(row, bias, residual, weight, shift, eps)
                })?
            }
            None => None,
        };
        match fused {
            Some(y) => Ok(y),
            None => norm.forward(&(self.composed(x)? + residual)?),
        }
    }

    fn composed(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_matmul(&self.weight_t)?
            .broadcast_add(&self.bias)
    }

    /// The product into an unfilled buffer, then `epilogue(row, bias, residual row)` on each
    /// output row; `None` where the fused path does not apply (another device or dtype, a
    /// tensor that tracks gradients, or `LAB_UNFUSED=dense`).
    fn fused(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        epilogue: impl Fn(&mut [f32], &[f32], &[f32]) + Sync,
    ) -> Result<Option<Tensor>> {
        let cpu_f32 = |t: &Tensor| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32;
        if !(cpu_f32(x) && cpu_f32(&self.weight_t) && super::fused_train::fused("dense"))
            || x.track_op()
            || residual.is_some_and(|r| !cpu_f32(r))
        {
            return Ok(None);
        }
        let dims = x.dims().to_vec();
        let Some((&inputs, leading)) = dims.split_last() else {
            candle_core::bail!("dense layer: a scalar input");
        };
        let rows: usize = leading.iter().product();
        let width = self.outputs();
        let mut out_dims = leading.to_vec();
        out_dims.push(width);
        let residual = match residual {
            Some(r) if r.dims() != out_dims.as_slice() => candle_core::bail!(
                "dense layer: residual {:?} for an output {out_dims:?}",
                r.dims()
            ),
            Some(r) => Some(r.contiguous()?),
            None => None,
        };
        let x2 = x.reshape((rows, inputs))?.contiguous()?;
        let (x_storage, x_layout) = x2.storage_and_layout();
        let (w_storage, w_layout) = self.weight_t.storage_and_layout();
        let mut out = cpu_gemm::product(
            Mat::of_storage(&x_storage, x_layout, "dense layer: x")?,
            Mat::of_storage(&w_storage, w_layout, "dense layer: weight")?,
            1.0,
        )?;
        let residual_storage = residual.as_ref().map(|r| r.storage_and_layout());
        let residual_values = match &residual_storage {
            Some((storage, layout)) => {
                super::cpu_slice::cpu_contiguous_f32(storage, layout, "dense layer: residual")?
            }
            None => &[],
        };
        let bias = self.bias_values.as_slice();
        let chunk = width * ROWS_PER_TASK;
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(task, rows_out)| {
                for (i, row) in rows_out.chunks_exact_mut(width).enumerate() {
                    let start = (task * ROWS_PER_TASK + i) * width;
                    let residual_row = residual_values.get(start..start + width).unwrap_or(&[]);
                    epilogue(row, bias, residual_row);
                }
            });
        Tensor::from_vec(out, out_dims, x.device()).map(Some)
    }
}

multiversion! {
    /// `row += bias`.
    fn add_bias_row(row: &mut [f32], bias: &[f32]) -> () {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

multiversion! {
    /// `row ← gelu(row + bias)`.
    fn bias_gelu_row(row: &mut [f32], bias: &[f32]) -> () {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = gelu_f32(*v + b);
        }
    }
}

multiversion! {
    /// `row ← norm(row + bias + residual)`.
    fn bias_residual_norm_row(
        row: &mut [f32],
        bias: &[f32],
        residual: &[f32],
        weight: &[f32],
        shift: &[f32],
        eps: f32
    ) -> () {
        for ((v, &b), &r) in row.iter_mut().zip(bias).zip(residual) {
            *v = *v + b + r;
        }
        layer_norm_in_place(row, weight, shift, eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::cpu_slice::max_abs_diff;
    use candle_nn::LayerNorm;

    fn dense(inputs: usize, outputs: usize) -> Result<EncoderDense> {
        let dev = Device::Cpu;
        EncoderDense::new(
            &Tensor::randn(0f32, 0.3, (outputs, inputs), &dev)?,
            &Tensor::randn(0f32, 0.5, outputs, &dev)?,
        )
    }

    /// What candle-nn computes for the same layer: `x·Wᵀ + b` from the `[out, in]` weight.
    fn reference(d: &EncoderDense, x: &Tensor) -> Result<Tensor> {
        let weight = d.weight_t.t()?.contiguous()?;
        candle_nn::Linear::new(weight, Some(d.bias.clone())).forward(x)
    }

    #[test]
    fn bias_gelu_and_norm_equal_the_composed_ops() -> Result<()> {
        let dev = Device::Cpu;
        // 19 rows: more than one epilogue task and a partial last one; 3-D like the padded
        // batch and 2-D like the packed one.
        for shape in [vec![19, 24], vec![2, 7, 24]] {
            let d = dense(24, 40)?;
            let x = Tensor::randn(0f32, 1.0, shape.as_slice(), &dev)?;
            let want = reference(&d, &x)?;
            assert!(max_abs_diff(&d.forward_bias(&x)?, &want) < 1e-5);
            let gelu = d.forward_bias_gelu(&x)?;
            assert!(max_abs_diff(&gelu, &want.gelu_erf()?) < 1e-5);

            let back = dense(40, 24)?;
            let residual = Tensor::randn(0f32, 1.0, x.dims(), &dev)?;
            let norm = LayerNorm::new(
                Tensor::randn(1f32, 0.2, 24, &dev)?,
                Tensor::randn(0f32, 0.2, 24, &dev)?,
                1e-12,
            );
            let inference_norm = InferenceLayerNorm::new(norm.clone(), 1e-12)?;
            let got = back.forward_bias_residual_norm(&gelu, &residual, &inference_norm)?;
            let want = norm.forward(&(reference(&back, &gelu)? + &residual)?)?;
            assert_eq!(got.dims(), x.dims());
            let diff = max_abs_diff(&got, &want);
            assert!(diff < 1e-4, "norm(x·Wᵀ + b + r) differs by {diff}");
        }
        Ok(())
    }

    #[test]
    fn a_residual_of_the_wrong_shape_is_an_error() -> Result<()> {
        let dev = Device::Cpu;
        let d = dense(8, 8)?;
        let norm = InferenceLayerNorm::new(
            LayerNorm::new(
                Tensor::ones(8, DType::F32, &dev)?,
                Tensor::zeros(8, DType::F32, &dev)?,
                1e-12,
            ),
            1e-12,
        )?;
        let x = Tensor::zeros((3, 8), DType::F32, &dev)?;
        let residual = Tensor::zeros((2, 8), DType::F32, &dev)?;
        let err = d
            .forward_bias_residual_norm(&x, &residual, &norm)
            .unwrap_err()
            .to_string();
        assert!(err.contains("residual"), "{err}");
        Ok(())
    }
}
