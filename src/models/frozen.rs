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
        let y = x.matmul(w, (1, m, n, k), x_layout, w_layout)?;
        Ok((y, Shape::from((m, n))))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad_y: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_y.matmul(&self.weight.t()?)?))
    }
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
}
