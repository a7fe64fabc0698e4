//! AdamW's update and the gradient norm for f32 state on the CPU, each in one pass.
//!
//! Composed from candle ops, a step over LoRA on every linear of SmolLM2-135M (4.9 M values)
//! made about fifteen whole-vector passes, each into a fresh 20 MB tensor, plus a gather of
//! the variables and a copy back: ~25 ms a step, and the f64 norm another 9-18 ms, against
//! ~1 s of forward and backward for two 70-token examples (`LAB_STEP_TIMES=1`). Here every
//! value is read once and its new moments and weight written once, rows in parallel.
//!
//! Both functions compute the same f32 (norm: f64) operations as the composed form, in the
//! same order and with the same roundings — candle's scalar ops are `x·mul + add` with the
//! scalars cast to f32, kept here literally, `+ 0.0` included — so training gives the same
//! bits either way (tested); `LAB_UNFUSED=adamw` runs the composed form.
use super::cpu_slice::cpu_contiguous_f32;
use candle_core::{DType, Device, Result, Tensor, Var};
use rayon::prelude::*;

/// One step's scalars, cast to f32 where candle's `affine` casts them.
pub struct StepScalars {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// `1 − βᵗ` for the bias corrections.
    pub correction1: f64,
    pub correction2: f64,
    pub lr: f64,
    /// `lr · weight_decay` when this group decays, else `None`.
    pub decay: Option<f64>,
}

/// `Σ x²` over a contiguous f32 CPU tensor, in f64, summed front to back as candle's
/// `to_dtype(F64).sqr().sum_all()` sums it; `None` for any other tensor.
pub fn sum_of_squares(t: &Tensor) -> Result<Option<f64>> {
    if !t.device().is_cpu() || t.dtype() != DType::F32 {
        return Ok(None);
    }
    let (storage, layout) = t.storage_and_layout();
    if !layout.is_contiguous() {
        return Ok(None);
    }
    let xs = cpu_contiguous_f32(&storage, layout, "gradient norm")?;
    // Each square is exact in f64 (24-bit mantissas); only the order of the sum could differ.
    Ok(Some(xs.iter().fold(0f64, |sum, &x| {
        let x = x as f64;
        sum + x * x
    })))
}

/// One AdamW update of `vars` (laid end to end in `m`, `v` and gradients `g`): sets each
/// variable and returns the new `(m, v)`; `None` when the state is not f32 on the CPU.
pub fn step(
    m: &Tensor,
    v: &Tensor,
    g: &Tensor,
    vars: &[Var],
    s: &StepScalars,
) -> Result<Option<(Tensor, Tensor)>> {
    let on_cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if ![m, v, g].into_iter().all(on_cpu_f32) || !vars.iter().all(|x| on_cpu_f32(x)) {
        return Ok(None);
    }
    let (m_storage, m_layout) = m.storage_and_layout();
    let (v_storage, v_layout) = v.storage_and_layout();
    let (g_storage, g_layout) = g.storage_and_layout();
    let m_old = cpu_contiguous_f32(&m_storage, m_layout, "adamw: first moment")?;
    let v_old = cpu_contiguous_f32(&v_storage, v_layout, "adamw: second moment")?;
    let grads = cpu_contiguous_f32(&g_storage, g_layout, "adamw: gradients")?;
    let n = m_old.len();
    let total: usize = vars.iter().map(|x| x.elem_count()).sum();
    if v_old.len() != n || grads.len() != n || total != n {
        candle_core::bail!(
            "adamw: {n} first moments, {} second moments, {} gradients, {total} weights",
            v_old.len(),
            grads.len()
        );
    }
    let k = Scalars::of(s);
    let mut m_new = vec![0f32; n];
    let mut v_new = vec![0f32; n];
    let mut pieces = Vec::with_capacity(vars.len());
    let (mut m_rest, mut v_rest) = (m_new.as_mut_slice(), v_new.as_mut_slice());
    let mut offset = 0;
    for var in vars {
        let len = var.elem_count();
        let (m_out, m_tail) = std::mem::take(&mut m_rest).split_at_mut(len);
        let (v_out, v_tail) = std::mem::take(&mut v_rest).split_at_mut(len);
        pieces.push((var, offset, m_out, v_out));
        (m_rest, v_rest) = (m_tail, v_tail);
        offset += len;
    }
    pieces
        .into_par_iter()
        .try_for_each(|(var, offset, m_out, v_out)| -> Result<()> {
            let range = offset..offset + m_out.len();
            let theta = {
                let (storage, layout) = var.as_tensor().storage_and_layout();
                let old = cpu_contiguous_f32(&storage, layout, "adamw: weight")?;
                k.update(
                    old,
                    &grads[range.clone()],
                    &m_old[range.clone()],
                    &v_old[range],
                    m_out,
                    v_out,
                )
            };
            var.set(&Tensor::from_vec(theta, var.shape(), &Device::Cpu)?)
        })?;
    Ok(Some((
        Tensor::from_vec(m_new, n, &Device::Cpu)?,
        Tensor::from_vec(v_new, n, &Device::Cpu)?,
    )))
}

/// The scalars as candle's `affine(mul, add)` uses them: both cast to f32.
struct Scalars {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    inv_correction1: f32,
    inv_correction2: f32,
    eps: f32,
    lr: f32,
    keep: Option<f32>,
}

impl Scalars {
    fn of(s: &StepScalars) -> Self {
        Self {
            beta1: s.beta1 as f32,
            one_minus_beta1: (1.0 - s.beta1) as f32,
            beta2: s.beta2 as f32,
            one_minus_beta2: (1.0 - s.beta2) as f32,
            inv_correction1: (1.0 / s.correction1) as f32,
            inv_correction2: (1.0 / s.correction2) as f32,
            eps: s.eps as f32,
            lr: s.lr as f32,
            keep: s.decay.map(|d| (1.0 - d) as f32),
        }
    }

    /// New weights for `theta`; the new moments go to `m_out`, `v_out`. Each line is one
    /// candle op of the composed step (`a * c` is `affine(c, 0)`: `a·c + 0`).
    fn update(
        &self,
        theta: &[f32],
        g: &[f32],
        m: &[f32],
        v: &[f32],
        m_out: &mut [f32],
        v_out: &mut [f32],
    ) -> Vec<f32> {
        let mut out = Vec::with_capacity(theta.len());
        for i in 0..theta.len() {
            let gi = g[i];
            let m1 = (m[i] * self.beta1 + 0.0) + (gi * self.one_minus_beta1 + 0.0);
            let v1 = (v[i] * self.beta2 + 0.0) + ((gi * gi) * self.one_minus_beta2 + 0.0);
            m_out[i] = m1;
            v_out[i] = v1;
            let m_hat = m1 * self.inv_correction1 + 0.0;
            let v_hat = v1 * self.inv_correction2 + 0.0;
            let update = m_hat / (v_hat.sqrt() * 1.0 + self.eps);
            let kept = match self.keep {
                Some(keep) => theta[i] * keep + 0.0,
                None => theta[i],
            };
            out.push(kept - (update * self.lr + 0.0));
        }
        out
    }
}
