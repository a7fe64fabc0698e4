//! `x @ w` for a frozen weight `w`: the same forward product as `Tensor::matmul`, but its
//! backward pass returns only the gradient of `x`.
//!
//! Upstream candle's matmul backward always computes both operand gradients. In LoRA training
//! every base linear and the LM head sit on the gradient path, so it would compute (and keep
//! until the step ends) a full-size gradient for each frozen weight — a third of the step's
//! FLOPs and the size of the whole model in fresh memory, all thrown away. The vendored
//! candle-core now skips gradients nothing reads (vendor/candle-core/PATCHED.md), which covers
//! the GPU and bf16 paths; on the CPU in f32 this op also runs the products through our gemm
//! and lets the backward pass read a contiguous transpose.
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Storage, Tensor};

use super::cpu_gemm::{self, Mat};
use super::training_weights::FrozenOperand;

struct FrozenMatmul {
    /// `[k, n]`, any strides.
    weight: Tensor,
    /// The same matrix as `[n, k]` for the backward pass, where gemm reads it at twice the
    /// speed of a transposed view when it is contiguous (the LM head: ~200 vs ~106 GFLOP/s).
    weight_t: Option<Tensor>,
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
        let y = product(x, x_layout, w, w_layout, (m, k, n), self.weight.id())?;
        Ok((y, Shape::from((m, n))))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad_y: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(input_gradient(
            grad_y,
            &self.weight,
            self.weight_t.as_ref(),
        )?))
    }
}

/// `x [m, k] @ w [k, n]` on the CPU: the skinny kernel for the few rows of a decoding step
/// (where candle's gemm spends most of its time packing `w`), candle's gemm otherwise.
pub(super) fn product(
    x: &CpuStorage,
    x_layout: &Layout,
    w: &CpuStorage,
    w_layout: &Layout,
    (m, k, n): (usize, usize, usize),
    weight_id: candle_core::TensorId,
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
            let (x, w) = (&xs[x0..x1], &ws[w0..w1]);
            // Inside a generation the weight streams from its packed copy.
            let y = match super::decoding_weights::packed(weight_id, w, k, n) {
                Some(packed) => super::skinny_matmul::skinny_matmul_packed(x, &packed, m, k, n),
                None => super::skinny_matmul::skinny_matmul(x, w, m, k, n),
            };
            return Ok(CpuStorage::F32(y));
        }
        let a = Mat::from_layout(xs, x_layout)?;
        // Inside a training or scoring call the weight is read from its panels.
        if let Some(panels) = forward_panels(ws, w_layout, (k, n), weight_id) {
            return Ok(CpuStorage::F32(panels.product(a, 1.0)?));
        }
        let b = Mat::from_layout(ws, w_layout)?;
        return Ok(CpuStorage::F32(cpu_gemm::product(a, b, 1.0)?));
    }
    x.matmul(w, (1, m, n, k), x_layout, w_layout)
}

/// The current forward scope's panels (training, scoring) of a contiguous weight `w [k, n]`.
pub(super) fn forward_panels(
    ws: &[f32],
    w_layout: &Layout,
    (k, n): (usize, usize),
    weight_id: candle_core::TensorId,
) -> Option<std::sync::Arc<FrozenOperand>> {
    let (start, end) = w_layout.contiguous_offsets()?;
    super::training_weights::forward(weight_id, &ws[start..end], k, n)
}

/// `g @ wᵀ` for an output gradient `g [m, n]` and the frozen `w [k, n]`: the input gradient
/// of `x @ w`, through gemm directly on the CPU in f32. `w`'s transpose is read from
/// `weight_t [n, k]` when given, else from the training scope's copy (panels or contiguous)
/// ([`training_weights`](super::training_weights)), else through a transposed view.
pub(super) fn input_gradient(
    g: &Tensor,
    weight: &Tensor,
    weight_t: Option<&Tensor>,
) -> Result<Tensor> {
    let cpu_f32 = [g, weight]
        .iter()
        .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32);
    if !cpu_f32 {
        return match weight_t {
            Some(wt) => g.matmul(wt),
            None => g.matmul(&weight.t()?),
        };
    }
    let g = g.contiguous()?;
    let (m, _) = g.dims2()?;
    let (k, _) = weight.dims2()?;
    let values = {
        let (gs, gl) = g.storage_and_layout();
        let a = Mat::of_storage(&gs, gl, "frozen matmul: the gradient")?;
        if let Some(wt) = weight_t {
            let (ws, wl) = wt.storage_and_layout();
            cpu_gemm::product(
                a,
                Mat::of_storage(&ws, wl, "frozen matmul: the weight")?,
                1.0,
            )?
        } else if let Some(copy) = transposed_copy(weight) {
            copy.product(a, 1.0)?
        } else {
            let (ws, wl) = weight.storage_and_layout();
            let w = Mat::of_storage(&ws, wl, "frozen matmul: the weight")?;
            cpu_gemm::product(a, w.t(), 1.0)?
        }
    };
    Tensor::from_vec(values, (m, k), g.device())
}

/// The `[n, k]` transpose of a frozen `weight [k, n]` (panels or a contiguous copy) that the
/// current training scope keeps, made now if needed; `None` outside training, for a weight
/// that is not a contiguous CPU f32 matrix, or past the copies' memory budget.
pub(super) fn transposed_copy(weight: &Tensor) -> Option<std::sync::Arc<FrozenOperand>> {
    let (k, n) = weight.dims2().ok()?;
    let (storage, layout) = weight.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(values)) = &*storage else {
        return None;
    };
    let (start, end) = layout.contiguous_offsets()?;
    super::training_weights::transposed(weight.id(), &values[start..end], k, n)
}

/// `x [m, k] @ weight [k, n]` with no gradient for `weight` (which must not be a variable).
/// On the CPU in f32 a custom op; elsewhere the plain matmul (correct, just slower to train).
pub fn frozen_matmul(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    frozen_matmul_with_transpose(x, weight, None)
}

/// [`frozen_matmul`] given also `weight_t [n, k]`, the same matrix transposed and stored
/// contiguous (e.g. tied embeddings for the LM head), which its backward pass reads instead.
pub fn frozen_matmul_with_transpose(
    x: &Tensor,
    weight: &Tensor,
    weight_t: Option<&Tensor>,
) -> Result<Tensor> {
    let cpu_f32 = matches!(x.device(), Device::Cpu)
        && matches!(weight.device(), Device::Cpu)
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32;
    if cpu_f32 && x.rank() == 2 {
        // A transpose of another shape or kind is not this weight's: read the view instead.
        let (k, n) = weight.dims2()?;
        let weight_t = weight_t.filter(|w| {
            w.dims() == [n, k] && w.dtype() == DType::F32 && matches!(w.device(), Device::Cpu)
        });
        x.apply_op1(FrozenMatmul {
            weight: weight.clone(),
            weight_t: weight_t.cloned(),
        })
    } else {
        x.matmul(weight)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::Var;

    /// The composed path (GPUs, bf16) relies on the vendored candle's backward pass skipping
    /// the gradient of an operand nothing reads: a frozen weight's, in a product or a product
    /// by a broadcast norm weight.
    #[test]
    fn the_backward_pass_skips_gradients_of_frozen_operands() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 6), &dev)?)?;
        let w = Tensor::randn(0f32, 1.0, (6, 3), &dev)?;
        let gain = Tensor::randn(0f32, 1.0, 3, &dev)?;
        let y = x.as_tensor().matmul(&w)?.broadcast_mul(&gain)?;
        let grads = y.sum_all()?.backward()?;
        assert!(grads.get(&w).is_none(), "a frozen weight got a gradient");
        assert!(grads.get(&gain).is_none(), "a frozen gain got a gradient");
        // d/dx Σ (x w) ⊙ g = 1 (w diag(g))ᵀ: every row is w·g.
        let expected = w.broadcast_mul(&gain)?.sum(1)?;
        let got = grads.get(x.as_tensor()).expect("x has a gradient");
        for row in got.to_vec2::<f32>()? {
            for (a, b) in row.iter().zip(expected.to_vec1::<f32>()?) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
        Ok(())
    }

    #[test]
    fn matches_matmul_forward_and_input_gradient_without_weight_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 7), &dev)?)?;
        let w = Tensor::randn(0f32, 1.0, (3, 7), &dev)?;
        // Both layouts of the weight: contiguous [k, n] and a transposed view; the contiguous
        // one again inside a training scope, where the backward reads a transposed copy.
        for (weight, scoped) in [
            (w.t()?.contiguous()?, false),
            (w.t()?, false),
            (w.t()?.contiguous()?, true),
        ] {
            let _scope = scoped.then(super::super::training_weights::training_scope);
            let plain = x.as_tensor().matmul(&weight)?;
            let frozen = frozen_matmul(x.as_tensor(), &weight)?;
            // Given the contiguous transpose too, the backward reads that instead.
            let paired = frozen_matmul_with_transpose(x.as_tensor(), &weight, Some(&w))?;
            let g_paired = paired.sqr()?.sum_all()?.backward()?;
            let g_alone = frozen.sqr()?.sum_all()?.backward()?;
            let (a, b) = (
                g_paired.get(x.as_tensor()).expect("grad of x"),
                g_alone.get(x.as_tensor()).expect("grad of x"),
            );
            assert!(crate::models::cpu_slice::max_abs_diff(a, b) < 1e-4);
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
            // Upstream candle's matmul would grad the weight too; the vendored copy does not.
            assert!(
                g_plain.get(&weight).is_none(),
                "candle's matmul grads the frozen weight"
            );
            assert!(
                g_frozen.get(&weight).is_none(),
                "the frozen weight gets no gradient"
            );
        }
        Ok(())
    }
}
