//! LoRA-aware linear layers: a frozen base weight (dense, or kept quantized for QLoRA) plus an
//! optional low-rank adapter (LoRA or DoRA) that can be merged into the base for inference.
use anyhow::{bail, Result};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::dropout::Dropout;
use super::frozen::frozen_matmul;
use super::fused_lora_linear::{lora_linear, lora_linear_out};

/// How the adapter is parametrised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeftMethod {
    Lora,
    /// Weight-decomposed LoRA: a learned magnitude per output row.
    Dora,
    /// LoRA over a base kept quantized (4-bit) in memory.
    Qlora,
}

/// The frozen base weight.
#[derive(Debug, Clone)]
pub enum BaseWeight {
    /// Stored transposed, `[in, out]` contiguous: gemm multiplies a row-major right-hand side
    /// without repacking it on every call (2-4× faster for decode-sized batches).
    Dense(Tensor),
    /// `[out, in]`, quantized.
    Quantized(std::sync::Arc<QTensor>, QMatMul),
}

#[derive(Debug, Clone)]
pub struct Adapter {
    pub a: Var,
    pub b: Var,
    pub scale: f64,
    pub dropout: f32,
    /// DoRA magnitude `[out]`.
    pub magnitude: Option<Var>,
}

#[derive(Debug, Clone)]
pub struct LoraLinear {
    base: BaseWeight,
    bias: Option<Tensor>,
    adapter: Option<Adapter>,
    /// The base weight before merging, so unmerge restores it exactly.
    unmerged: Option<BaseWeight>,
}

/// Per-call switches of the forward pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardMode {
    /// Use differentiable ops and apply dropout.
    pub train: bool,
    pub dropout_seed: u64,
}

impl LoraLinear {
    /// `weight` is `[out, in]` as checkpoints store it.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self {
            base: BaseWeight::Dense(transpose(&weight)?),
            bias,
            adapter: None,
            unmerged: None,
        })
    }

    pub fn out_features(&self) -> usize {
        self.base_shape().0
    }

    pub fn in_features(&self) -> usize {
        self.base_shape().1
    }

    fn base_shape(&self) -> (usize, usize) {
        match &self.base {
            BaseWeight::Dense(wt) => (wt.dims()[1], wt.dims()[0]),
            BaseWeight::Quantized(q, _) => (q.shape().dims()[0], q.shape().dims()[1]),
        }
    }

    pub fn adapter(&self) -> Option<&Adapter> {
        self.adapter.as_ref()
    }

    pub fn is_merged(&self) -> bool {
        self.unmerged.is_some()
    }

    /// The base weight `[out, in]` as a dense tensor of `dtype`.
    pub fn dense_weight(&self, dtype: DType) -> Result<Tensor> {
        Ok(match &self.base {
            BaseWeight::Dense(wt) => wt.t()?.to_dtype(dtype)?.contiguous()?,
            BaseWeight::Quantized(q, _) => q.dequantize(&q.device())?.to_dtype(dtype)?,
        })
    }

    /// Keep the base quantized (4-bit blocks of 32) in memory; rows whose width is not a
    /// multiple of the block stay dense.
    pub fn quantize_base(&mut self) -> Result<()> {
        if let BaseWeight::Dense(wt) = &self.base {
            if wt.dim(0)? % GgmlDType::Q4_0.block_size() == 0 {
                let q = QTensor::quantize(&self.dense_weight(DType::F32)?, GgmlDType::Q4_0)?;
                let q = std::sync::Arc::new(q);
                let kernel = QMatMul::from_arc(q.clone())?;
                self.base = BaseWeight::Quantized(q, kernel);
            }
        }
        Ok(())
    }

    /// Attach a fresh adapter: A kaiming-uniform (as PEFT: bound 1/sqrt(in)) from `seed`, B zero.
    pub fn attach(
        &mut self,
        r: usize,
        alpha: f64,
        dropout: f32,
        dora: bool,
        seed: u64,
    ) -> Result<()> {
        if self.is_merged() {
            bail!("cannot attach an adapter to a merged layer; unmerge first");
        }
        if r == 0 {
            bail!("LoRA rank r must be at least 1");
        }
        let (out, inp) = self.base_shape();
        let device = match &self.base {
            BaseWeight::Dense(w) => w.device().clone(),
            BaseWeight::Quantized(q, _) => q.device(),
        };
        let bound = 1.0 / (inp as f32).sqrt();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a: Vec<f32> = (0..r * inp)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let a = Var::from_tensor(&Tensor::from_vec(a, (r, inp), &device)?)?;
        let b = Var::zeros((out, r), DType::F32, &device)?;
        let magnitude = if dora {
            let w = self.dense_weight(DType::F32)?;
            Some(Var::from_tensor(&w.sqr()?.sum(D::Minus1)?.sqrt()?)?)
        } else {
            None
        };
        self.adapter = Some(Adapter {
            a,
            b,
            scale: alpha / r as f64,
            dropout,
            magnitude,
        });
        Ok(())
    }

    pub fn set_adapter(&mut self, adapter: Option<Adapter>) {
        self.adapter = adapter;
    }

    /// `x @ W^T (+ bias) + adapter`, for `x` of shape `[..., in]`.
    pub fn forward(&self, x: &Tensor, mode: ForwardMode, dropout_stream: u64) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let inp = *dims.last().unwrap_or(&0);
        let rows = x.elem_count() / inp.max(1);
        let x2 = x.reshape((rows, inp))?;
        let mut y = match (&self.adapter, self.is_merged()) {
            (Some(ad), false) => self.adapted_matmul(&x2, ad, mode, dropout_stream)?,
            _ => self.base_matmul(&x2, mode.train)?,
        };
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(bias)?;
        }
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = y.dim(1)?;
        Ok(y.reshape(out_dims)?)
    }

    /// `x2 @ W^T` plus the adapter's contribution (LoRA, or DoRA's rescaled sum).
    fn adapted_matmul(
        &self,
        x2: &Tensor,
        ad: &Adapter,
        mode: ForwardMode,
        dropout_stream: u64,
    ) -> Result<Tensor> {
        let dtype = x2.dtype();
        let dropout = (mode.train && ad.dropout > 0.0).then_some(Dropout {
            p: ad.dropout,
            seed: mode.dropout_seed,
            stream: dropout_stream,
        });
        if let (BaseWeight::Dense(wt), None) = (&self.base, &ad.magnitude) {
            let fused = super::fused_train::fused;
            if fused("lora") && fused("lora_whole") && (dropout.is_none() || fused("dropout")) {
                // Plain LoRA on a dense base: one op for all of it, dropout included.
                let (a, b) = (ad.a.as_tensor(), ad.b.as_tensor());
                if let Some(y) = lora_linear(x2, wt, a, b, ad.scale, dropout)? {
                    return Ok(y);
                }
            }
        }
        let xd = match dropout {
            Some(d) => d.apply(x2)?,
            None => x2.clone(),
        };
        let a = ad.a.as_tensor().to_dtype(dtype)?;
        let b = ad.b.as_tensor().to_dtype(dtype)?;
        let u = xd.matmul(&a.t()?)?;
        if let (BaseWeight::Dense(wt), None) = (&self.base, &ad.magnitude) {
            if dtype == DType::F32 && super::fused_train::fused("lora") {
                // Plain LoRA on a dense base: base and adapter products in one op.
                return Ok(lora_linear_out(x2, wt, &u, &b, ad.scale)?);
            }
        }
        let y = self.base_matmul(x2, mode.train)?;
        let low = (u.matmul(&b.t()?)? * ad.scale)?;
        Ok(match &ad.magnitude {
            None => (y + low)?,
            Some(m) => {
                // PEFT detaches the weight norm: gradients flow through m and the adapter.
                let norm = self.dora_weight_norm(ad)?.detach().to_dtype(dtype)?;
                let factor = m.as_tensor().to_dtype(dtype)?.div(&norm)?;
                (y + low)?.broadcast_mul(&factor)?
            }
        })
    }

    fn base_matmul(&self, x2: &Tensor, train: bool) -> Result<Tensor> {
        Ok(match &self.base {
            BaseWeight::Dense(wt) => frozen_matmul(x2, wt)?,
            // Inference multiplies the quantized blocks directly.
            BaseWeight::Quantized(_, kernel) if !train => kernel
                .forward(&x2.to_dtype(DType::F32)?)?
                .to_dtype(x2.dtype())?,
            // Training dequantizes on the fly: the quantized product has no backward pass, and
            // gradients must reach adapters in earlier layers.
            BaseWeight::Quantized(q, _) => {
                let w = q.dequantize(&q.device())?.to_dtype(x2.dtype())?;
                frozen_matmul(x2, &w.t()?)?
            }
        })
    }

    /// Row norms of `W + scale * B A`.
    fn dora_weight_norm(&self, ad: &Adapter) -> Result<Tensor> {
        let w = self.dense_weight(DType::F32)?;
        let delta = (ad.b.as_tensor().matmul(ad.a.as_tensor())? * ad.scale)?;
        Ok((w + delta)?.sqr()?.sum(D::Minus1)?.sqrt()?)
    }

    /// Fold the adapter into a dense base weight for fast inference.
    pub fn merge(&mut self) -> Result<()> {
        let Some(ad) = self.adapter.clone() else {
            return Ok(());
        };
        if self.is_merged() {
            return Ok(());
        }
        let (a, b) = (ad.a.as_tensor(), ad.b.as_tensor());
        if let (BaseWeight::Dense(wt), None) = (&self.base, &ad.magnitude) {
            let on_cpu_f32 = [wt, a, b]
                .iter()
                .all(|t| t.device().is_cpu() && t.dtype() == DType::F32);
            if on_cpu_f32 && super::fused_train::fused("merge") {
                let merged = merged_on_cpu(wt, a, b, ad.scale)?;
                self.unmerged = Some(std::mem::replace(&mut self.base, BaseWeight::Dense(merged)));
                return Ok(());
            }
        }
        // Work in the stored `[in, out]` layout: (B·A)ᵀ = Aᵀ·Bᵀ, so the frozen weight is never
        // transposed back and forth (two copies of every matrix per merge).
        let (wt, dtype) = match &self.base {
            BaseWeight::Dense(wt) => (wt.to_dtype(DType::F32)?, wt.dtype()),
            BaseWeight::Quantized(..) => (transpose(&self.dense_weight(DType::F32)?)?, DType::F32),
        };
        let delta_t = (a.t()?.matmul(&b.t()?)? * ad.scale)?;
        let mut merged_t = (wt + delta_t)?;
        if let Some(m) = &ad.magnitude {
            // DoRA: each output row (a column here) rescaled to its learned magnitude.
            let norm = merged_t.sqr()?.sum_keepdim(0)?.sqrt()?;
            merged_t = merged_t.broadcast_mul(&m.as_tensor().unsqueeze(0)?.div(&norm)?)?;
        }
        let old = std::mem::replace(
            &mut self.base,
            BaseWeight::Dense(merged_t.to_dtype(dtype)?.contiguous()?),
        );
        self.unmerged = Some(old);
        Ok(())
    }

    pub fn unmerge(&mut self) {
        if let Some(old) = self.unmerged.take() {
            self.base = old;
        }
    }
}

/// `wtᵀ + scale·B·A` in the stored `[in, out]` layout (`wt + scale·Aᵀ·Bᵀ`) for an f32 CPU base:
/// one parallel copy of the base, into which gemm accumulates the rank-r product. Composed
/// from candle ops the merge wrote a zero-filled product, a scaled copy of it and the sum, each
/// a full pass over every weight matrix, at every evaluation.
fn merged_on_cpu(wt: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    use super::cpu_gemm::{self, Mat};
    use rayon::prelude::*;
    let (w_storage, w_layout) = wt.storage_and_layout();
    let base = super::cpu_slice::cpu_contiguous_f32(&w_storage, w_layout, "merge: base weight")?;
    let mut merged: Vec<f32> = Vec::with_capacity(base.len());
    merged.par_extend(base.par_iter().copied());
    let (a_storage, a_layout) = a.storage_and_layout();
    let (b_storage, b_layout) = b.storage_and_layout();
    cpu_gemm::add_product(
        &mut merged,
        Mat::of_storage(&a_storage, a_layout, "merge: adapter a")?.t(),
        Mat::of_storage(&b_storage, b_layout, "merge: adapter b")?.t(),
        scale as f32,
    )?;
    Ok(Tensor::from_vec(merged, wt.dims(), wt.device())?)
}

/// `[out, in]` → contiguous `[in, out]`.
pub fn transpose(w: &Tensor) -> Result<Tensor> {
    Ok(w.t()?.contiguous()?)
}

/// `x @ wt` for `x` of shape `[..., in]` and a frozen `wt` `[in, out]` (no gradient), as one
/// matmul over all rows; `w`, if given, is `wt` transposed and contiguous, for the backward.
pub fn dense_forward(x: &Tensor, wt: &Tensor, w: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let inp = *dims.last().unwrap_or(&0);
    let rows = x.elem_count() / inp.max(1);
    let y = super::frozen::frozen_matmul_with_transpose(&x.reshape((rows, inp))?, wt, w)?;
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = y.dim(1)?;
    Ok(y.reshape(out)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn layer() -> Result<LoraLinear> {
        let w = Tensor::randn(0f32, 1.0, (6, 32), &Device::Cpu)?;
        LoraLinear::new(w, Some(Tensor::ones(6, DType::F32, &Device::Cpu)?))
    }

    fn perturb_b(l: &LoraLinear) -> Result<()> {
        let b = &l.adapter().unwrap().b;
        b.set(&Tensor::randn(0f32, 0.5, b.shape(), &Device::Cpu)?)?;
        Ok(())
    }

    #[test]
    fn fresh_adapter_is_identity_and_merge_matches() -> Result<()> {
        for dora in [false, true] {
            let mut l = layer()?;
            let x = Tensor::randn(0f32, 1.0, (2, 3, 32), &Device::Cpu)?;
            let before = l.forward(&x, ForwardMode::default(), 0)?;
            l.attach(4, 8.0, 0.0, dora, 7)?;
            let fresh = l.forward(&x, ForwardMode::default(), 0)?;
            let diff = (before - &fresh)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(
                diff < 1e-5,
                "B = 0 must leave outputs unchanged, diff {diff}"
            );
            perturb_b(&l)?;
            let adapted = l.forward(&x, ForwardMode::default(), 0)?;
            l.merge()?;
            let merged = l.forward(&x, ForwardMode::default(), 0)?;
            let diff = (&adapted - merged)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(
                diff < 1e-4,
                "merged must equal unmerged (dora={dora}), diff {diff}"
            );
            l.unmerge();
            let again = l.forward(&x, ForwardMode::default(), 0)?;
            assert_eq!(again.to_vec3::<f32>()?, adapted.to_vec3::<f32>()?);
        }
        Ok(())
    }

    #[test]
    fn merged_weight_is_base_plus_scaled_adapter_product() -> Result<()> {
        // Shapes above gemm's small-product cut-offs, so the merge goes through gemm proper.
        let w = Tensor::randn(0f32, 1.0, (96, 80), &Device::Cpu)?;
        let mut l = LoraLinear::new(w.clone(), None)?;
        l.attach(16, 32.0, 0.0, false, 3)?;
        perturb_b(&l)?;
        let ad = l.adapter().unwrap().clone();
        let expected = (&w + (ad.b.as_tensor().matmul(ad.a.as_tensor())? * 2.0)?)?;
        l.merge()?;
        let merged = l.dense_weight(DType::F32)?;
        let diff = crate::models::cpu_slice::max_abs_diff(&merged, &expected);
        assert!(diff < 1e-5, "merged weight off by {diff}");
        let moved = crate::models::cpu_slice::max_abs_diff(&merged, &w);
        assert!(
            moved > 0.1,
            "the adapter must change the weight, moved {moved}"
        );
        l.unmerge();
        assert_eq!(
            l.dense_weight(DType::F32)?.to_vec2::<f32>()?,
            w.to_vec2::<f32>()?
        );
        Ok(())
    }

    #[test]
    fn gradients_reach_adapter_through_quantized_base() -> Result<()> {
        let mut l = layer()?;
        l.quantize_base()?;
        l.attach(2, 4.0, 0.0, false, 1)?;
        perturb_b(&l)?;
        let x = Tensor::randn(0f32, 1.0, (3, 32), &Device::Cpu)?;
        let loss = l
            .forward(
                &x,
                ForwardMode {
                    train: true,
                    dropout_seed: 0,
                },
                0,
            )?
            .sqr()?
            .sum_all()?;
        let grads = loss.backward()?;
        let ga = grads
            .get(l.adapter().unwrap().a.as_tensor())
            .expect("grad of A");
        assert!(ga.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        Ok(())
    }
}
