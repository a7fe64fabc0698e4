//! RoPE and RMSNorm as single ops with their own backward pass, for training on the CPU.
//!
//! candle's fused kernels for both have no backward, so training used the composed forms,
//! which keep every intermediate until the step ends: five half- or full-size copies of q and k
//! per layer for RoPE, three copies of the hidden state per norm. These ops keep only their
//! output (their input is alive anyway) and make one pass instead of five.
use candle_core::{
    CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Storage, Tensor, D,
};
use rayon::prelude::*;

use super::cpu_slice::contiguous_f32;

/// Every name `fused` is asked about, i.e. every op `LAB_UNFUSED=<name,...>` (or `all`) can
/// turn back into candle's composed ones, to compare speed and memory side by side with
/// `lab bench-host`:
/// - `softmax`, `rope`, `norm`, `swiglu`, `gelu`, `exp`, `attention`, `skinny`: the fused
///   CPU kernels of those ops;
/// - `lora`: the LoRA op; `lora_whole`: the adapter's input product `x @ aᵀ` runs outside the
///   LoRA op again; `dropout`: LoRA dropout runs as candle ops before the adapter instead of
///   inside the LoRA op; `merge`: merging an adapter uses candle's ops;
/// - `packed`: the encoder pads its batches again; `dense`: the encoder's bias, residual, GELU
///   and norm run as passes of their own after each product;
/// - `last`: the decoder's last layer runs on every position; `decode_pack`: decoding reads
///   weights in place instead of packed copies; `prefix`: generation runs every prompt whole
///   instead of sharing their common opening; `compact_head`: decoding steps read the LM head
///   in f32 instead of its exact int8 form;
/// - `split`: the gemm crate threads each product itself instead of one thread per column
///   block; `grad_transpose`: input gradients read frozen weights through a transposed view
///   instead of a contiguous copy; `panels`: training's and scoring's products with frozen
///   weights go through the gemm crate, which packs the weight at every call, instead of
///   reading panels packed once;
/// - `worker`: a command's work runs on the main thread instead of a thread of rayon's pool;
///   `first_iteration`: every cell fine-tunes and evaluates its own iteration 0 instead of
///   taking an identical one computed by an earlier cell of the experiment; `adamw`: the
///   optimizer step and gradient norm run as composed candle ops instead of one pass each on
///   the CPU.
///
/// A test checks that every `fused("…")` in src/ names one of these.
pub const UNFUSED_NAMES: &[&str] = &[
    "softmax",
    "lora",
    "lora_whole",
    "rope",
    "norm",
    "swiglu",
    "gelu",
    "skinny",
    "exp",
    "attention",
    "packed",
    "last",
    "decode_pack",
    "compact_head",
    "dense",
    "split",
    "dropout",
    "merge",
    "prefix",
    "grad_transpose",
    "panels",
    "worker",
    "first_iteration",
    "adamw",
];

/// False when `LAB_UNFUSED` names `op` (one of [`UNFUSED_NAMES`]) or `all`: run candle's
/// composed ops instead of the fused path. `check_unfused_env` refuses unknown names up front.
pub fn fused(op: &str) -> bool {
    static UNFUSED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let off = UNFUSED.get_or_init(|| {
        std::env::var("LAB_UNFUSED")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .collect()
    });
    !off.iter().any(|o| o == op || o == "all")
}

/// Refuse a `LAB_UNFUSED` that names an op no fused path checks: a typo would otherwise
/// leave everything fused and make an A/B comparison look like "no difference".
pub fn check_unfused_env() -> anyhow::Result<()> {
    check_unfused(std::env::var("LAB_UNFUSED").ok().as_deref())
}

/// The check behind [`check_unfused_env`], on the variable's value (`None`: not set).
pub fn check_unfused(value: Option<&str>) -> anyhow::Result<()> {
    let Some(value) = value else {
        return Ok(());
    };
    for name in value.split(',').map(str::trim) {
        if name.is_empty() || name == "all" || UNFUSED_NAMES.contains(&name) {
            continue;
        }
        let hint = crate::config::diagnose::did_you_mean(name, UNFUSED_NAMES);
        anyhow::bail!(
            "LAB_UNFUSED={value}: `{name}` is not an op that can be unfused; {hint}use \
             comma-separated names from: {}, or all (or unset LAB_UNFUSED)",
            UNFUSED_NAMES.join(", ")
        );
    }
    Ok(())
}

/// Rotary embedding of `x [b, heads, t, d]` with per-row `cos`/`sin [b, t, d/2]`
/// (the non-interleaved layout: the first half pairs with the second).
struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// The backward pass is the same rotation by the opposite angle.
    inverse: bool,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope-with-backward"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, h, t, d) = layout.shape().dims4()?;
        let half = d / 2;
        let x = contiguous_f32(storage, layout, "rope: x")?;
        if self.cos.len() != b * t * half {
            candle_core::bail!("rope: cos/sin do not match x {:?}", layout.shape());
        }
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .enumerate()
            .for_each(|(row, (o, x))| {
                let (bi, ti) = (row / (h * t), row % t);
                let at = (bi * t + ti) * half;
                let (c, s) = (&self.cos[at..at + half], &self.sin[at..at + half]);
                for i in 0..half {
                    let (x1, x2, s) = (x[i], x[i + half], sign * s[i]);
                    o[i] = x1 * c[i] - x2 * s;
                    o[i + half] = x2 * c[i] + x1 * s;
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad_y: &Tensor) -> Result<Option<Tensor>> {
        let back = Rope {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            inverse: !self.inverse,
        };
        Ok(Some(grad_y.contiguous()?.apply_op1(back)?))
    }
}

/// RoPE with a backward pass: one op on the CPU in f32, the composed form elsewhere.
pub fn rope_train(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let cpu_f32 = matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32;
    if cpu_f32 && x.rank() == 4 && cos.rank() == 3 && fused("rope") {
        let (b, _, t, d) = x.dims4()?;
        if cos.dims3()? == (b, t, d / 2) && d % 2 == 0 {
            return x.contiguous()?.apply_op1(Rope {
                cos: cos.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
                sin: sin.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
                inverse: false,
            });
        }
    }
    rope_composed(x, cos, sin)
}

/// The textbook form, `x ⊙ cos + rotate_half(x) ⊙ sin`.
pub fn rope_composed(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
    let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
}

/// `x / rms(x) ⊙ w` over the last dimension, with a frozen `w` (norm weights are not trained).
struct RmsNormOp {
    weight: Vec<f32>,
    eps: f32,
}

impl CustomOp1 for RmsNormOp {
    fn name(&self) -> &'static str {
        "rms-norm-with-backward"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = self.weight.len();
        let x = contiguous_f32(storage, layout, "rms norm: x")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .for_each(|(o, x)| {
                let ms = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
                let r = 1.0 / (ms + self.eps).sqrt();
                for ((o, x), w) in o.iter_mut().zip(x).zip(&self.weight) {
                    *o = x * r * w;
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    /// dx = r·(g⊙w) − x·r³·mean((g⊙w)⊙x), with r = 1/√(mean(x²)+ε).
    fn bwd(&self, x: &Tensor, _y: &Tensor, grad_y: &Tensor) -> Result<Option<Tensor>> {
        let d = self.weight.len();
        let x = &x.detach();
        let w = Tensor::from_slice(&self.weight, d, x.device())?;
        let gw = grad_y.broadcast_mul(&w)?;
        let r = ((x.sqr()?.sum_keepdim(D::Minus1)? / d as f64)? + self.eps as f64)?
            .sqrt()?
            .recip()?;
        let dot = ((&gw * x)?.sum_keepdim(D::Minus1)? / d as f64)?;
        let first = gw.broadcast_mul(&r)?;
        let second = x.broadcast_mul(&(dot * r.powf(3.0)?)?)?;
        Ok(Some((first - second)?))
    }
}

/// RMSNorm with a backward pass for `x [..., d]` and a frozen weight `[d]`: one op on the CPU in
/// f32, candle's composed form elsewhere.
pub fn rms_norm_train(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let cpu_f32 = matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32;
    if cpu_f32 && weight.rank() == 1 && x.dim(D::Minus1)? == weight.dim(0)? && fused("norm") {
        return x.contiguous()?.apply_op1(RmsNormOp {
            weight: weight.to_dtype(DType::F32)?.to_vec1()?,
            eps: eps as f32,
        });
    }
    candle_nn::ops::rms_norm_slow(x, weight, eps as f32)
}

/// `silu(gate) ⊙ up`, the gated MLP's product, keeping only its output for the backward pass
/// (the composed form also keeps `silu(gate)`, a full `[tokens, intermediate]` tensor).
struct SwiGlu;

impl candle_core::CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu-with-backward"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = contiguous_f32(gate, gate_layout, "swiglu: gate")?;
        let u = contiguous_f32(up, up_layout, "swiglu: up")?;
        if gate_layout.shape() != up_layout.shape() {
            candle_core::bail!(
                "swiglu: gate {:?} and up {:?} differ",
                gate_layout.shape(),
                up_layout.shape()
            );
        }
        let mut out = vec![0f32; g.len()];
        let fast_exp = fused("exp");
        out.par_chunks_mut(4096)
            .zip(g.par_chunks(4096).zip(u.par_chunks(4096)))
            .for_each(|(o, (g, u))| {
                if fast_exp {
                    super::fast_exp::silu_mul(g, u, o);
                } else {
                    for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                        *o = g / (1.0 + (-g).exp()) * u;
                    }
                }
            });
        Ok((CpuStorage::F32(out), gate_layout.shape().clone()))
    }

    /// d gate = g ⊙ up ⊙ σ(gate)·(1 + gate·(1 − σ(gate))), d up = g ⊙ silu(gate).
    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (gate, up) = (gate.detach(), up.detach());
        if let Some(grads) = swiglu_backward_cpu(&gate, &up, grad)? {
            return Ok(grads);
        }
        let sig = candle_nn::ops::sigmoid(&gate)?;
        let silu = (&gate * &sig)?;
        let dsilu = (&sig * ((&gate * (1.0 - &sig)?)? + 1.0)?)?;
        let d_gate = ((grad * &up)? * dsilu)?;
        let d_up = (grad * silu)?;
        Ok((Some(d_gate), Some(d_up)))
    }
}

/// The SwiGLU backward in one pass over contiguous f32 CPU tensors (`None` otherwise, or when
/// `LAB_UNFUSED=exp` asks for candle's composed ops).
#[allow(clippy::type_complexity)]
fn swiglu_backward_cpu(
    gate: &Tensor,
    up: &Tensor,
    grad: &Tensor,
) -> Result<Option<(Option<Tensor>, Option<Tensor>)>> {
    let cpu_f32 = [gate, up, grad]
        .iter()
        .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32);
    if !cpu_f32 || !fused("exp") || gate.shape() != up.shape() || gate.shape() != grad.shape() {
        return Ok(None);
    }
    let shape = gate.shape().clone();
    // Read in place (a copy only for a non-contiguous gradient).
    let (gate, up, grad) = (gate.contiguous()?, up.contiguous()?, grad.contiguous()?);
    let (gs, gl) = gate.storage_and_layout();
    let (us, ul) = up.storage_and_layout();
    let (rs, rl) = grad.storage_and_layout();
    let (Storage::Cpu(gs), Storage::Cpu(us), Storage::Cpu(rs)) = (&*gs, &*us, &*rs) else {
        return Ok(None);
    };
    let g = contiguous_f32(gs, gl, "swiglu backward: gate")?;
    let u = contiguous_f32(us, ul, "swiglu backward: up")?;
    let gr = contiguous_f32(rs, rl, "swiglu backward: grad")?;
    let (mut d_gate, mut d_up) = (vec![0f32; g.len()], vec![0f32; g.len()]);
    d_gate
        .par_chunks_mut(4096)
        .zip(d_up.par_chunks_mut(4096))
        .zip(
            g.par_chunks(4096)
                .zip(u.par_chunks(4096))
                .zip(gr.par_chunks(4096)),
        )
        .for_each(|((dg, du), ((g, u), gr))| super::fast_exp::silu_mul_backward(g, u, gr, dg, du));
    Ok(Some((
        Some(Tensor::from_vec(d_gate, shape.clone(), gate.device())?),
        Some(Tensor::from_vec(d_up, shape, gate.device())?),
    )))
}

/// `silu(gate) ⊙ up` with a backward pass: one op on the CPU in f32, composed elsewhere.
pub fn swiglu_train(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let cpu_f32 = matches!(gate.device(), Device::Cpu)
        && gate.dtype() == DType::F32
        && up.dtype() == DType::F32
        && gate.shape() == up.shape();
    if cpu_f32 && fused("swiglu") {
        return gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu);
    }
    candle_nn::ops::silu(gate)? * up
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    use crate::models::cpu_slice::max_abs_diff as max_diff;

    #[test]
    fn unfused_names_are_checked() {
        assert!(check_unfused(None).is_ok());
        assert!(check_unfused(Some("")).is_ok());
        assert!(check_unfused(Some("all")).is_ok());
        assert!(check_unfused(Some("softmax, adamw,first_iteration")).is_ok());
        let err = check_unfused(Some("softmax,sofmax"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("LAB_UNFUSED=softmax,sofmax"), "{err}");
        assert!(err.contains("`sofmax` is not an op"), "{err}");
        assert!(err.contains("did you mean `softmax`?"), "{err}");
        assert!(err.contains(&UNFUSED_NAMES.join(", ")), "{err}");
        let err = check_unfused(Some("worker,xyz")).unwrap_err().to_string();
        assert!(err.contains("`xyz`"), "{err}");
    }

    /// Every name passed to `fused` in src/ is in UNFUSED_NAMES and every entry is used, so the
    /// check and `lab bench-host --help` list exactly the names that do something.
    #[test]
    fn unfused_names_match_the_calls_in_src() {
        fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for piece in text.split("fused(\"").skip(1) {
                        let name = piece.split('"').next().unwrap_or_default();
                        if !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        {
                            found.push(name.to_string());
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        found.sort();
        found.dedup();
        let mut listed: Vec<String> = UNFUSED_NAMES.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(found, listed);
    }

    #[test]
    fn rope_values_and_gradient_equal_the_composed_form() -> Result<()> {
        let dev = Device::Cpu;
        let (b, h, t, d) = (2, 3, 4, 8);
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, h, t, d), &dev)?)?;
        let angles = Tensor::randn(0f32, 2.0, (b, t, d / 2), &dev)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        let up = Tensor::randn(0f32, 1.0, (b, h, t, d), &dev)?;
        let fused = rope_train(x.as_tensor(), &cos, &sin)?;
        let composed = rope_composed(x.as_tensor(), &cos, &sin)?;
        assert!(max_diff(&fused, &composed) < 1e-5);
        let gf = (fused * &up)?.sum_all()?.backward()?;
        let gc = (composed * &up)?.sum_all()?.backward()?;
        let d = max_diff(gf.get(&x).unwrap(), gc.get(&x).unwrap());
        assert!(d < 1e-5, "gradient differs by {d}");
        Ok(())
    }

    #[test]
    fn rms_norm_values_and_gradient_equal_the_composed_form() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 3.0, (2, 5, 16), &dev)?)?;
        let w = Tensor::randn(1f32, 0.5, 16, &dev)?;
        let up = Tensor::randn(0f32, 1.0, (2, 5, 16), &dev)?;
        let fused = rms_norm_train(x.as_tensor(), &w, 1e-5)?;
        let composed = candle_nn::ops::rms_norm_slow(x.as_tensor(), &w, 1e-5)?;
        assert!(max_diff(&fused, &composed) < 1e-5);
        let gf = (fused * &up)?.sum_all()?.backward()?;
        let gc = (composed * &up)?.sum_all()?.backward()?;
        let d = max_diff(gf.get(&x).unwrap(), gc.get(&x).unwrap());
        assert!(d < 1e-5, "gradient differs by {d}");
        Ok(())
    }

    #[test]
    fn swiglu_values_and_gradients_equal_the_composed_form() -> Result<()> {
        let dev = Device::Cpu;
        let gate = Var::from_tensor(&Tensor::randn(0f32, 3.0, (5, 24), &dev)?)?;
        let up = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 24), &dev)?)?;
        let w = Tensor::randn(0f32, 1.0, (5, 24), &dev)?;
        let fused = swiglu_train(gate.as_tensor(), up.as_tensor())?;
        let composed = (candle_nn::ops::silu(gate.as_tensor())? * up.as_tensor())?;
        assert!(max_diff(&fused, &composed) < 1e-5);
        let gf = (fused * &w)?.sum_all()?.backward()?;
        let gc = (composed * &w)?.sum_all()?.backward()?;
        for v in [&gate, &up] {
            let d = max_diff(gf.get(v).unwrap(), gc.get(v).unwrap());
            assert!(d < 1e-5, "gradient differs by {d}");
        }
        Ok(())
    }
}
