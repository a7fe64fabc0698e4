//! `x @ w` for a frozen weight `w`: the same forward product as `Tensor::matmul`, but its
//! backward pass returns only the gradient of `x`.
//!
//! candle's matmul backward always computes both operand gradients. In LoRA training every
//! base linear and the LM head sit on the gradient path, so candle would compute (and keep
//! until the step ends) a full-size gradient for each frozen weight — a third of the step's
//! FLOPs and the size of the whole model in fresh memory, all thrown away.
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Storage, Tensor};

struct FrozenMatmul {
    /// `[k, n]`, any strides.
    weight: Tensor,
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, x: &CpuStorage, x_layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (m, k) = x_layout.shape().dims2()?;
        let (k2, n) = self.weight.dims2()?;
        if k != k2 {
            candle_core::bail!("frozen matmul: x is [{m}, {k}] but the weight is [{k2}, {n}]");
        }
        let (storage, w_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(w) = &*storage else {
            candle_core::bail!("frozen matmul: the weight is not on the CPU");
        };
        let y = product(x, x_layout, w, w_layout, (m, k, n))?;
        Ok((y, Shape::from((m, n))))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad_y: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_y.matmul(&self.weight.t()?)?))
    }
}

/// `x [m, k] @ w [k, n]` on the CPU: the skinny kernel for the few rows of a decoding step
/// (where candle's gemm spends most of its time packing `w`), candle's gemm otherwise.
fn product(
    x: &CpuStorage,
    x_layout: &Layout,
    w: &CpuStorage,
    w_layout: &Layout,
    (m, k, n): (usize, usize, usize),
) -> Result<CpuStorage> {
    if let (CpuStorage::F32(xs), CpuStorage::F32(ws)) = (x, w) {
        let skinny = m <= super::skinny_matmul::MAX_ROWS
            && super::fused_train::fused("skinny")
            && super::skinny_matmul::available();
        if let (true, Some((x0, x1)), Some((w0, w1))) = (
            skinny,
            x_layout.contiguous_offsets(),
            w_layout.contiguous_offsets(),
        ) {
            let y = super::skinny_matmul::skinny_matmul(&xs[x0..x1], &ws[w0..w1], m, k, n);
            return Ok(CpuStorage::F32(y));
        }
    }
    x.matmul(w, (1, m, n, k), x_layout, w_layout)
}

/// `x [m, k] @ weight [k, n]` with no gradient for `weight` (which must not be a variable).
/// On the CPU in f32 a custom op; elsewhere the plain matmul (correct, just slower to train).
pub fn frozen_matmul(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let cpu_f32 = matches!(x.device(), Device::Cpu)
        && matches!(weight.device(), Device::Cpu)
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32;
    if cpu_f32 && x.rank() == 2 {
        x.apply_op1(FrozenMatmul {
            weight: weight.clone(),
        })
    } else {
        x.matmul(weight)
    }
}

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
        let base = product(x, x_layout, w, w_layout, (m, k, n))?;
        let low = u.matmul(b, (1, m, n, r), u_layout, &b_layout.transpose(0, 1)?)?;
        let (CpuStorage::F32(mut y), CpuStorage::F32(low)) = (base, low) else {
            candle_core::bail!("lora-linear-out: f32 only");
        };
        let scale = self.scale as f32;
        y.iter_mut().zip(&low).for_each(|(y, l)| *y += scale * l);
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
        let grad_x = grad_y.matmul(&self.weight.t()?)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn matches_matmul_forward_and_input_gradient_without_weight_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 7), &dev)?)?;
        let w = Tensor::randn(0f32, 1.0, (3, 7), &dev)?;
        // Both layouts of the weight: contiguous [k, n] and a transposed view.
        for weight in [w.t()?.contiguous()?, w.t()?] {
            let plain = x.as_tensor().matmul(&weight)?;
            let frozen = frozen_matmul(x.as_tensor(), &weight)?;
            let diff = (&plain - &frozen)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "forward differs by {diff}");
            // A non-linear loss so the gradient depends on the product.
            let g_plain = plain.sqr()?.sum_all()?.backward()?;
            let g_frozen = frozen.sqr()?.sum_all()?.backward()?;
            let (a, b) = (
                g_plain.get(x.as_tensor()).expect("grad of x"),
                g_frozen.get(x.as_tensor()).expect("grad of x"),
            );
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-4, "input gradient differs by {diff}");
            assert!(
                g_plain.get(&weight).is_some(),
                "candle's matmul grads the weight"
            );
            assert!(
                g_frozen.get(&weight).is_none(),
                "the frozen weight gets no gradient"
            );
        }
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
