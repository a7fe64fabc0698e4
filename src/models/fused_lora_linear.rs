//! A LoRA linear `x @ wt + scale · (d(x) @ aᵀ) @ bᵀ` over a frozen weight as one custom op on
//! the CPU in f32, forward and backward, so training keeps and computes less than the
//! composed ops (see each op for what it saves). Elsewhere the callers compose the same values.
use candle_core::{CpuStorage, DType, Device, Layout, Result, Shape, Storage, Tensor};

use std::sync::Mutex;

use super::cpu_gemm::{self, Mat};
use super::dropout::{Dropout, DropoutMask};
use super::frozen::{forward_panels, frozen_matmul, input_gradient, product, transposed_copy};
/// `x @ wt + scale · u @ bᵀ`: a LoRA linear's output in one op, for a frozen `wt [k, n]`,
/// `u = dropout(x) @ aᵀ [m, r]` and the adapter's `b [n, r]`.
///
/// Composed, the output needs four full-width tensors that the backward pass keeps: the base
/// product, `u @ bᵀ`, its scaled copy and the sum; this op keeps only the sum. For SmolLM2 at
/// 8 × 256 tokens that is 127 MB per layer, 3.8 GB per step.
struct LoraLinearOut {
    weight: Tensor,
    scale: f64,
}

impl candle_core::CustomOp3 for LoraLinearOut {
    fn name(&self) -> &'static str {
        "lora-linear-out"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        u: &CpuStorage,
        u_layout: &Layout,
        b: &CpuStorage,
        b_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = x_layout.shape().dims2()?;
        let (m2, r) = u_layout.shape().dims2()?;
        let (n, r2) = b_layout.shape().dims2()?;
        let (k2, n2) = self.weight.dims2()?;
        if k != k2 || n != n2 || m != m2 || r != r2 {
            candle_core::bail!(
                "lora-linear-out: x [{m}, {k}], u [{m2}, {r}], b [{n}, {r2}], weight [{k2}, {n2}]"
            );
        }
        let (storage, w_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(w) = &*storage else {
            candle_core::bail!("lora-linear-out: the weight is not on the CPU");
        };
        let base = product(x, x_layout, w, w_layout, (m, k, n), self.weight.id())?;
        let CpuStorage::F32(mut y) = base else {
            candle_core::bail!("lora-linear-out: f32 only");
        };
        let u = Mat::of_cpu(u, u_layout, "lora-linear-out: u")?;
        let b = Mat::of_cpu(b, b_layout, "lora-linear-out: b")?;
        cpu_gemm::add_product(&mut y, u, b.t(), self.scale as f32)?;
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        u: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        grad_y: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Detached operands: a gradient must not hold on to the forward graph (with gradient
        // accumulation it would keep every micro-batch's activations alive).
        let (u, b) = (u.detach(), b.detach());
        let grad_x = input_gradient(grad_y, &self.weight, None)?;
        let grad_u = (grad_y.matmul(&b)? * self.scale)?;
        let grad_b = (grad_y.t()?.matmul(&u)? * self.scale)?;
        Ok((Some(grad_x), Some(grad_u), Some(grad_b)))
    }
}

/// `x [m, k] @ weight [k, n] + scale · u [m, r] @ b [n, r]ᵀ`, the weight frozen (no gradient).
/// On the CPU in f32 one op that keeps only its output for the backward pass; elsewhere the
/// composed ops (same values).
pub fn lora_linear_out(
    x: &Tensor,
    weight: &Tensor,
    u: &Tensor,
    b: &Tensor,
    scale: f64,
) -> Result<Tensor> {
    let cpu_f32 = [x, weight, u, b]
        .iter()
        .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32);
    if cpu_f32 && x.rank() == 2 && u.rank() == 2 && b.rank() == 2 {
        x.apply_op3(
            u,
            b,
            LoraLinearOut {
                weight: weight.clone(),
                scale,
            },
        )
    } else {
        frozen_matmul(x, weight)? + (u.matmul(&b.t()?)? * scale)?
    }
}

/// A whole LoRA linear `x @ wt + scale · (d(x) @ aᵀ) @ bᵀ` as one op, for a frozen `wt [k, n]`,
/// the adapter's `a [r, k]`, `b [n, r]` and `d` the adapter's dropout (or none).
///
/// Composed, the backward pass computes the input gradient twice (through the base and
/// through `a`) in two fresh buffers and adds them in a third pass; here the second product
/// accumulates into the first. The small `u = d(x) @ aᵀ` is kept from the forward pass for
/// `b`'s gradient. Composed dropout is three more passes over `x`'s size in each direction
/// (the mask, its product, its gradient) and keeps an f32 mask and the dropped input; here
/// the mask is kept as one byte a value and the dropped input is formed again for `a`'s
/// gradient.
struct LoraLinear {
    weight: Tensor,
    scale: f32,
    dropout: Option<DropoutMask>,
    u: Mutex<Option<Vec<f32>>>,
}

impl candle_core::CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "lora-linear"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        a: &CpuStorage,
        a_layout: &Layout,
        b: &CpuStorage,
        b_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = x_layout.shape().dims2()?;
        let (r, k2) = a_layout.shape().dims2()?;
        let (n, r2) = b_layout.shape().dims2()?;
        let (k3, n2) = self.weight.dims2()?;
        if k != k2 || k != k3 || n != n2 || r != r2 {
            candle_core::bail!(
                "lora-linear: x [{m}, {k}], a [{r}, {k2}], b [{n}, {r2}], weight [{k3}, {n2}]"
            );
        }
        let (storage, w_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(w) = &*storage else {
            candle_core::bail!("lora-linear: the weight is not on the CPU");
        };
        let xm = Mat::of_cpu(x, x_layout, "lora-linear: x")?;
        let am = Mat::of_cpu(a, a_layout, "lora-linear: a")?;
        let bm = Mat::of_cpu(b, b_layout, "lora-linear: b")?;
        let dropped = self.dropout.as_ref().map(|d| d.apply_to(xm)).transpose()?;
        let adapter_input = match &dropped {
            Some(values) => Mat::row_major(values, m, k)?,
            None => xm,
        };
        let u = cpu_gemm::product(adapter_input, am.t(), 1.0)?;
        drop(dropped);
        let um = Mat::row_major(&u, m, r)?;
        let y = if m > super::skinny_matmul::MAX_ROWS {
            // The rank-r term first: the big product then reads it inside its compute-bound
            // kernel instead of a memory-bound pass over the output afterwards.
            let mut y = cpu_gemm::product(um, bm.t(), self.scale)?;
            let CpuStorage::F32(ws) = w else {
                candle_core::bail!("lora-linear: the weight must be f32");
            };
            match forward_panels(ws, w_layout, (k, n), self.weight.id()) {
                Some(panels) => panels.add_product(&mut y, xm, 1.0)?,
                None => {
                    let wm = Mat::of_cpu(w, w_layout, "lora-linear: the weight")?;
                    cpu_gemm::add_product(&mut y, xm, wm, 1.0)?;
                }
            }
            y
        } else {
            // Decode-sized: the skinny kernel for the base, then the small adapter term.
            let CpuStorage::F32(mut y) =
                product(x, x_layout, w, w_layout, (m, k, n), self.weight.id())?
            else {
                candle_core::bail!("lora-linear: f32 only");
            };
            cpu_gemm::add_product(&mut y, um, bm.t(), self.scale)?;
            y
        };
        *self
            .u
            .lock()
            .map_err(|_| candle_core::Error::Msg("lora-linear: poisoned".into()))? = Some(u);
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        grad_y: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (m, k) = x.dims2()?;
        let (n, r) = b.dims2()?;
        let u = self
            .u
            .lock()
            .map_err(|_| candle_core::Error::Msg("lora-linear: poisoned".into()))?
            .clone();
        let Some(u) = u else {
            candle_core::bail!("lora-linear: backward before forward");
        };
        // Taken before the weight's storage is borrowed below (making it borrows it too); only
        // where the input gradient is wanted (not for the first layer's projections).
        let weight_t = if x.track_op() {
            transposed_copy(&self.weight)
        } else {
            None
        };
        let grad_y = grad_y.contiguous()?;
        let (gs, gl) = grad_y.storage_and_layout();
        let (xs, xl) = x.storage_and_layout();
        let (as_, al) = a.storage_and_layout();
        let (bs, bl) = b.storage_and_layout();
        let (ws, wl) = self.weight.storage_and_layout();
        let g = Mat::of_storage(&gs, gl, "lora-linear: the gradient")?;
        let xm = Mat::of_storage(&xs, xl, "lora-linear: x")?;
        let am = Mat::of_storage(&as_, al, "lora-linear: a")?;
        let bm = Mat::of_storage(&bs, bl, "lora-linear: b")?;
        let wm = Mat::of_storage(&ws, wl, "lora-linear: the weight")?;
        // The adapter's gradient path: gu = scale · g b, [m, r].
        let gu = cpu_gemm::product(g, bm, self.scale)?;
        let gum = Mat::row_major(&gu, m, r)?;
        // The input of the first layer's projections (normed frozen embeddings) needs no
        // gradient.
        let grad_x = if x.track_op() {
            let mut grad_x = cpu_gemm::product(gum, am, 1.0)?;
            if let Some(d) = &self.dropout {
                d.apply_in_place(&mut grad_x)?;
            }
            match &weight_t {
                Some(copy) => copy.add_product(&mut grad_x, g, 1.0)?,
                None => cpu_gemm::add_product(&mut grad_x, g, wm.t(), 1.0)?,
            }
            Some(Tensor::from_vec(grad_x, (m, k), x.device())?)
        } else {
            None
        };
        let dropped = self.dropout.as_ref().map(|d| d.apply_to(xm)).transpose()?;
        let adapter_input = match &dropped {
            Some(values) => Mat::row_major(values, m, k)?,
            None => xm,
        };
        let grad_a = cpu_gemm::product(gum.t(), adapter_input, 1.0)?;
        let grad_b = cpu_gemm::product(g.t(), Mat::row_major(&u, m, r)?, self.scale)?;
        let device = x.device();
        Ok((
            grad_x,
            Some(Tensor::from_vec(grad_a, (r, k), device)?),
            Some(Tensor::from_vec(grad_b, (n, r), device)?),
        ))
    }
}

/// `x [m, k] @ weight [k, n] + scale · (d(x) @ a [r, k]ᵀ) @ b [n, r]ᵀ` with `d` the adapter's
/// dropout (if any), the weight frozen: one op on the CPU in f32 (see `LoraLinear`); `None`
/// elsewhere, where the caller composes it.
pub fn lora_linear(
    x: &Tensor,
    weight: &Tensor,
    a: &Tensor,
    b: &Tensor,
    scale: f64,
    dropout: Option<Dropout>,
) -> Result<Option<Tensor>> {
    let cpu_f32 = [x, weight, a, b]
        .iter()
        .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32);
    if !(cpu_f32 && x.rank() == 2 && a.rank() == 2 && b.rank() == 2 && weight.rank() == 2) {
        return Ok(None);
    }
    let op = LoraLinear {
        weight: weight.clone(),
        scale: scale as f32,
        dropout: dropout.map(|d| d.mask(x.elem_count())),
        u: Mutex::new(None),
    };
    Ok(Some(x.apply_op3(a, b, op)?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::Var;

    /// Every variable's gradient, non-zero and within 1e-4 (relative) of the composed ops'.
    /// Every named variable's gradient from `fused` equals `composed`'s (within 1e-4 of its
    /// size), and is not zero.
    pub(crate) fn assert_same_gradients(
        fused: &candle_core::backprop::GradStore,
        composed: &candle_core::backprop::GradStore,
        vars: &[(&str, &Var)],
    ) -> Result<()> {
        for (name, var) in vars {
            let (p, q) = (
                fused.get(var.as_tensor()).expect("a gradient"),
                composed.get(var.as_tensor()).expect("a gradient"),
            );
            let diff = crate::models::cpu_slice::max_abs_diff(p, q);
            let size = q.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(size > 0.0 && diff <= 1e-4 * size.max(1.0), "{name}: {diff}");
        }
        Ok(())
    }

    #[test]
    fn lora_linear_matches_the_composed_ops_and_their_gradients() -> Result<()> {
        let dev = Device::Cpu;
        // 70 rows: more than the skinny kernel's; 3 rows: the skinny kernel's forward. Inside
        // a training scope the input gradient reads a contiguous transposed copy of the weight.
        let cases = [
            (70, 33, 40, 4, false),
            (3, 7, 5, 2, false),
            (70, 33, 40, 4, true),
        ];
        for (m, k, n, r, scoped) in cases {
            let _scope = scoped.then(super::super::training_weights::training_scope);
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (m, k), &dev)?)?;
            let a = Var::from_tensor(&Tensor::randn(0f32, 1.0, (r, k), &dev)?)?;
            let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, r), &dev)?)?;
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
            for wt in [w.t()?.contiguous()?, w.t()?] {
                let scale = 1.5;
                let (xt, at, bt) = (x.as_tensor(), a.as_tensor(), b.as_tensor());
                let fused = lora_linear(xt, &wt, at, bt, scale, None)?.expect("CPU f32");
                let composed =
                    (xt.matmul(&wt)? + (xt.matmul(&at.t()?)?.matmul(&bt.t()?)? * scale)?)?;
                let diff = crate::models::cpu_slice::max_abs_diff(&fused, &composed);
                assert!(diff < 1e-3, "forward differs by {diff}");
                // Weighted so every output element's gradient differs.
                let weights = Tensor::randn(0f32, 1.0, (m, n), &dev)?;
                let g_fused = (fused * &weights)?.sum_all()?.backward()?;
                let g_composed = (composed * &weights)?.sum_all()?.backward()?;
                assert_same_gradients(&g_fused, &g_composed, &[("x", &x), ("a", &a), ("b", &b)])?;
                assert!(
                    g_fused.get(&wt).is_none(),
                    "the frozen weight gets no gradient"
                );
                if scoped && wt.is_contiguous() {
                    assert!(
                        super::super::training_weights::is_copied(wt.id()),
                        "the backward pass read the transposed copy"
                    );
                    assert_eq!(
                        super::super::training_weights::has_forward_panels(wt.id()),
                        super::super::training_weights::panels_on(),
                        "the forward product read panels where the CPU runs them"
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn lora_linear_skips_the_gradient_of_an_input_nothing_trains() -> Result<()> {
        // The first layer's case: x comes from frozen embeddings, so it tracks no op.
        let dev = Device::Cpu;
        let (m, k, n, r) = (70, 33, 40, 4);
        let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let a = Var::from_tensor(&Tensor::randn(0f32, 1.0, (r, k), &dev)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, r), &dev)?)?;
        let wt = Tensor::randn(0f32, 1.0, (k, n), &dev)?;
        let (at, bt) = (a.as_tensor(), b.as_tensor());
        let fused = lora_linear(&x, &wt, at, bt, 2.0, None)?.expect("CPU f32");
        let composed = (x.matmul(&wt)? + (x.matmul(&at.t()?)?.matmul(&bt.t()?)? * 2.0)?)?;
        let g_fused = fused.sqr()?.sum_all()?.backward()?;
        let g_composed = composed.sqr()?.sum_all()?.backward()?;
        assert!(
            g_fused.get(&x).is_none(),
            "no gradient for an untracked input"
        );
        assert_same_gradients(&g_fused, &g_composed, &[("a", &a), ("b", &b)])?;
        Ok(())
    }

    #[test]
    fn lora_linear_out_matches_the_composed_ops_and_their_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let (m, k, n, r) = (6, 7, 5, 3);
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (m, k), &dev)?)?;
        let a = Var::from_tensor(&Tensor::randn(0f32, 1.0, (r, k), &dev)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, r), &dev)?)?;
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
        let wt = w.t()?.contiguous()?;
        let scale = 2.5;
        // The input gradient reads the training scope's transposed copy of the weight.
        let _scope = super::super::training_weights::training_scope();
        let u = x.as_tensor().matmul(&a.as_tensor().t()?)?;
        let fused = lora_linear_out(x.as_tensor(), &wt, &u, b.as_tensor(), scale)?;
        let composed = (x.as_tensor().matmul(&wt)? + (u.matmul(&b.as_tensor().t()?)? * scale)?)?;
        let diff = (&fused - &composed)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-4, "forward differs by {diff}");
        let g_fused = fused.sqr()?.sum_all()?.backward()?;
        let g_composed = composed.sqr()?.sum_all()?.backward()?;
        for (name, var) in [("x", &x), ("a", &a), ("b", &b)] {
            let (p, q) = (
                g_fused.get(var.as_tensor()).expect("a gradient"),
                g_composed.get(var.as_tensor()).expect("a gradient"),
            );
            let diff = (p - q)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let size = q.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(
                diff <= 1e-4 * size.max(1.0),
                "gradient of {name} differs by {diff}"
            );
        }
        assert!(
            g_fused.get(&wt).is_none(),
            "the frozen weight gets no gradient"
        );
        Ok(())
    }
}
