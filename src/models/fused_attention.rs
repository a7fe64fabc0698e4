//! The decoder's masked attention `softmax(scale · q kᵀ + mask) v` as one op with its own
//! backward pass, on the CPU in f32.
//!
//! As candle ops, attention at 8 × 256 tokens took a fifth of a LoRA training step for under
//! a tenth of its FLOPs: each product is one multi-threaded gemm call per (row, head) group,
//! the causal half of every score matrix is computed and then masked away, and the backward
//! pass runs six more such products and four element-wise passes. Here one task per (row,
//! key/value head) runs over rayon's threads; per block of 64 queries, single-threaded gemms
//! cover only the keys up to the block's last visible one (the mask of every row is read
//! first), the softmax runs in place, and the backward uses the stored probabilities with
//! `Σ_j p·dp = dO·O` (no extra pass over the score matrix). Results equal the composed ops;
//! the skipped keys are the ones the mask gives exactly zero weight.
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

use super::cpu_gemm::{self, Mat};
use super::cpu_slice::{contiguous_f32, cpu_contiguous_f32};

/// Queries per block: gemm's register tile is 64 rows high on AVX-512.
const BLOCK: usize = 64;

/// A mask value at or below this hides the key (the decoder masks with -1e30).
const HIDDEN: f32 = -1.0e29;

/// Shapes of one call: `q [b, h, t, d]`, `k`/`v` `[b, kvh, keys, d]`, the mask
/// `[b, 1, mask_rows, keys]` with `mask_rows` 1 (shared by all queries) or `t`.
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    h: usize,
    kvh: usize,
    t: usize,
    keys: usize,
    d: usize,
    mask_rows: usize,
}

impl Dims {
    fn rep(&self) -> usize {
        self.h / self.kvh
    }
}

/// Where the key/value rows of a (row, head) pair start in a possibly strided `[b, kvh,
/// keys, d]` tensor (a KV cache's view): rows must be contiguous, `d` values each.
#[derive(Clone, Copy, Debug)]
struct HeadRows {
    start: usize,
    batch_stride: usize,
    head_stride: usize,
    row_stride: usize,
}

impl HeadRows {
    fn of(layout: &Layout, what: &str) -> Result<Self> {
        let stride = layout.stride();
        if stride.len() != 4 || (stride[3] != 1 && layout.dims()[3] > 1) {
            candle_core::bail!("fused attention: {what} must have contiguous head rows");
        }
        Ok(Self {
            start: layout.start_offset(),
            batch_stride: stride[0],
            head_stride: stride[1],
            row_stride: stride[2],
        })
    }

    fn at(&self, bi: usize, head: usize) -> usize {
        self.start + bi * self.batch_stride + head * self.head_stride
    }
}

struct FusedAttention {
    mask: Tensor,
    scale: f32,
    /// Keep the probabilities for the backward pass (training).
    keep: bool,
    /// `[b, h, t, keys]` probabilities and per-query key limits, from the forward pass.
    saved: Mutex<Option<(Vec<f32>, Vec<usize>)>>,
}

fn f32_values<'a>(storage: &'a CpuStorage, what: &str) -> Result<&'a [f32]> {
    match storage {
        CpuStorage::F32(values) => Ok(values),
        _ => candle_core::bail!("fused attention: {what} must be f32"),
    }
}

/// `dst (rows × cols, row stride dst_rs) (+)= beta · lhs · rhs` where element (i, p) of lhs
/// is `lhs[i·lhs_rs + p·lhs_cs]` and (p, j) of rhs is `rhs[p·rhs_rs + j·rhs_cs]`.
#[allow(clippy::too_many_arguments)]
fn product(
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    (rows, cols, inner): (usize, usize, usize),
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    beta: f32,
) {
    // Every caller's views are in bounds by construction: a failure here is a bug.
    let lhs = Mat::strided(lhs, rows, inner, lhs_rs, lhs_cs).expect("attention: lhs view");
    let rhs = Mat::strided(rhs, inner, cols, rhs_rs, rhs_cs).expect("attention: rhs view");
    cpu_gemm::product_on_this_thread(dst, dst_rs, accumulate, lhs, rhs, beta)
        .expect("attention: dst view");
}

/// For every (row, query): one past the last key the mask shows; all keys when it shows none
/// (such a row is uniform over every key, as the composed softmax makes it).
fn key_limits(mask: &[f32], dims: Dims) -> Vec<usize> {
    let mut limits = Vec::with_capacity(dims.b * dims.t);
    for bi in 0..dims.b {
        for i in 0..dims.t {
            let row = if dims.mask_rows == 1 { 0 } else { i };
            let at = (bi * dims.mask_rows + row) * dims.keys;
            let visible = mask[at..at + dims.keys].iter().rposition(|&m| m > HIDDEN);
            limits.push(visible.map_or(dims.keys, |j| j + 1));
        }
    }
    limits
}

impl FusedAttention {
    fn dims(&self, q: &Layout, k: &Layout, v: &Layout) -> Result<Dims> {
        let (b, h, t, d) = q.shape().dims4()?;
        let (kb, kvh, keys, kd) = k.shape().dims4()?;
        let (mb, _, mask_rows, mask_keys) = self.mask.dims4()?;
        if kb != b
            || kd != d
            || v.dims() != k.dims()
            || kvh == 0
            || h % kvh != 0
            || mb != b
            || mask_keys != keys
            || (mask_rows != 1 && mask_rows != t)
        {
            candle_core::bail!(
                "fused attention: q {:?}, k {:?}, v {:?}, mask {:?} do not fit together",
                q.dims(),
                k.dims(),
                v.dims(),
                self.mask.dims()
            );
        }
        Ok(Dims {
            b,
            h,
            kvh,
            t,
            keys,
            d,
            mask_rows,
        })
    }
}

impl CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(
        &self,
        q_storage: &CpuStorage,
        q_layout: &Layout,
        k_storage: &CpuStorage,
        k_layout: &Layout,
        v_storage: &CpuStorage,
        v_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = self.dims(q_layout, k_layout, v_layout)?;
        let Dims { t, keys, d, .. } = dims;
        let rep = dims.rep();
        let q = contiguous_f32(q_storage, q_layout, "fused attention: q")?;
        let (k, v) = (f32_values(k_storage, "k")?, f32_values(v_storage, "v")?);
        let (k_rows, v_rows) = (HeadRows::of(k_layout, "k")?, HeadRows::of(v_layout, "v")?);
        let (mask_storage, mask_layout) = self.mask.storage_and_layout();
        let mask = cpu_contiguous_f32(&mask_storage, mask_layout, "fused attention: the mask")?;
        let limits = key_limits(mask, dims);
        let tasks = dims.b * dims.kvh;
        let mut out = vec![0f32; q.len()];
        // Each task's share of the probabilities when they are kept, an empty slice otherwise.
        let mut probs = vec![0f32; if self.keep { q.len() / d * keys } else { 0 }];
        let probs_per_task: Vec<&mut [f32]> = if self.keep {
            probs.chunks_mut(rep * t * keys).collect()
        } else {
            (0..tasks).map(|_| Default::default()).collect()
        };
        out.par_chunks_mut(rep * t * d)
            .zip(probs_per_task)
            .enumerate()
            .for_each(|(task, (out, probs))| {
                let (bi, g) = (task / dims.kvh, task % dims.kvh);
                let k = &k[k_rows.at(bi, g)..];
                let v = &v[v_rows.at(bi, g)..];
                let mut scratch = if self.keep {
                    Vec::new()
                } else {
                    vec![0f32; BLOCK * keys]
                };
                for r in 0..rep {
                    let hq = g * rep + r;
                    let q = &q[(bi * dims.h + hq) * t * d..][..t * d];
                    let out = &mut out[r * t * d..][..t * d];
                    for start in (0..t).step_by(BLOCK) {
                        let rows = BLOCK.min(t - start);
                        let row_limits = &limits[bi * t + start..][..rows];
                        let cols = row_limits.iter().copied().max().unwrap_or(0);
                        let scores: &mut [f32] = if self.keep {
                            &mut probs[(r * t + start) * keys..][..rows * keys]
                        } else {
                            &mut scratch[..rows * keys]
                        };
                        // scores = scale · q kᵀ over the visible keys.
                        product(
                            scores,
                            keys,
                            false,
                            (rows, cols, d),
                            &q[start * d..],
                            (d, 1),
                            k,
                            (1, k_rows.row_stride),
                            self.scale,
                        );
                        for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
                            let query = start + i;
                            let mask_row = if dims.mask_rows == 1 { 0 } else { query };
                            let m = &mask[(bi * dims.mask_rows + mask_row) * keys..][..cols];
                            let row = &mut row[..cols];
                            row.iter_mut().zip(m).for_each(|(s, m)| *s += m);
                            super::fast_exp::softmax_row_in_place(row);
                        }
                        product(
                            &mut out[start * d..],
                            d,
                            false,
                            (rows, d, cols),
                            scores,
                            (keys, 1),
                            v,
                            (v_rows.row_stride, 1),
                            1.0,
                        );
                    }
                }
            });
        if self.keep {
            *self.saved.lock().expect("attention state") = Some((probs, limits));
        }
        Ok((CpuStorage::F32(out), q_layout.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        grad_out: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some((probs, limits)) = self.saved.lock().expect("attention state").take() else {
            candle_core::bail!("fused attention: backward without a training forward pass");
        };
        let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
        let grad_out = grad_out.contiguous()?;
        let dims = self.dims(q.layout(), k.layout(), v.layout())?;
        let Dims { t, keys, d, .. } = dims;
        let rep = dims.rep();
        let out = out.contiguous()?;
        // Read in place (the contiguous calls above copy only non-contiguous views).
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (os, ol) = out.storage_and_layout();
        let (gs, gl) = grad_out.storage_and_layout();
        let qv = cpu_contiguous_f32(&qs, ql, "fused attention backward: q")?;
        let kv = cpu_contiguous_f32(&ks, kl, "fused attention backward: k")?;
        let vv = cpu_contiguous_f32(&vs, vl, "fused attention backward: v")?;
        let ov = cpu_contiguous_f32(&os, ol, "fused attention backward: output")?;
        let gv = cpu_contiguous_f32(&gs, gl, "fused attention backward: gradient")?;
        let mut grad_q = vec![0f32; qv.len()];
        let mut grad_k = vec![0f32; kv.len()];
        let mut grad_v = vec![0f32; vv.len()];
        grad_q
            .par_chunks_mut(rep * t * d)
            .zip(grad_k.par_chunks_mut(keys * d))
            .zip(grad_v.par_chunks_mut(keys * d))
            .enumerate()
            .for_each(|(task, ((dq, dk), dv))| {
                let bi = task / dims.kvh;
                let k = &kv[task * keys * d..][..keys * d];
                let v = &vv[task * keys * d..][..keys * d];
                let mut ds = vec![0f32; BLOCK * keys];
                for r in 0..rep {
                    let head = task * rep + r;
                    let at = head * t * d;
                    let (q, o, go) = (&qv[at..at + t * d], &ov[at..at + t * d], &gv[at..]);
                    let dq = &mut dq[r * t * d..][..t * d];
                    let p = &probs[head * t * keys..][..t * keys];
                    for start in (0..t).step_by(BLOCK) {
                        let rows = BLOCK.min(t - start);
                        let cols = limits[bi * t + start..][..rows]
                            .iter()
                            .copied()
                            .max()
                            .unwrap_or(0);
                        let p = &p[start * keys..][..rows * keys];
                        let go = &go[start * d..][..rows * d];
                        // dv += pᵀ dO
                        product(dv, d, true, (cols, d, rows), p, (1, keys), go, (d, 1), 1.0);
                        // dp = dO vᵀ
                        let ds = &mut ds[..rows * keys];
                        product(ds, keys, false, (rows, cols, d), go, (d, 1), v, (1, d), 1.0);
                        // ds = scale · p ⊙ (dp − dO·O)
                        for i in 0..rows {
                            let dot: f32 = go[i * d..][..d]
                                .iter()
                                .zip(&o[(start + i) * d..][..d])
                                .map(|(a, b)| a * b)
                                .sum();
                            let (ds, p) = (&mut ds[i * keys..][..cols], &p[i * keys..][..cols]);
                            for (s, &p) in ds.iter_mut().zip(p) {
                                *s = self.scale * p * (*s - dot);
                            }
                        }
                        // dq = ds k, dk += dsᵀ q
                        let dq = &mut dq[start * d..];
                        product(dq, d, false, (rows, d, cols), ds, (keys, 1), k, (d, 1), 1.0);
                        let q = &q[start * d..];
                        product(dk, d, true, (cols, d, rows), ds, (1, keys), q, (d, 1), 1.0);
                    }
                }
            });
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(grad_q, q.shape(), dev)?),
            Some(Tensor::from_vec(grad_k, k.shape(), dev)?),
            Some(Tensor::from_vec(grad_v, v.shape(), dev)?),
        ))
    }
}

/// `softmax(scale · q kᵀ + mask) v` per head, for `q [b, h, t, d]`, `k`/`v` `[b, kvh, keys,
/// d]` (query heads `g·h/kvh ..` share key/value head `g`) and an additive `mask [b, 1, t or
/// 1, keys]` (0, or -1e30 to hide a key): `[b, h, t, d]`. One fused op on the CPU in f32
/// (`train` keeps what its backward pass needs); `None` elsewhere, or when switched off with
/// `LAB_UNFUSED=attention`, for the caller's composed ops.
pub fn fused_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
    train: bool,
) -> Result<Option<Tensor>> {
    let cpu_f32 = [q, k, v, mask]
        .iter()
        .all(|x| x.device().is_cpu() && x.dtype() == candle_core::DType::F32);
    // Empty queries or keys: nothing to split into tasks; the composed ops handle them.
    let empty = q.dim(2)? == 0 || k.dim(2)? == 0;
    if !cpu_f32 || empty || !super::fused_train::fused("attention") {
        return Ok(None);
    }
    let op = FusedAttention {
        mask: mask.contiguous()?,
        scale: scale as f32,
        keep: train,
        saved: Mutex::new(None),
    };
    Ok(Some(q.contiguous()?.apply_op3(k, v, op)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::cpu_slice::max_abs_diff as max_diff;
    use candle_core::{Device, Var, D};

    const MASKED: f32 = -1.0e30;

    /// The formula with plain candle ops: key/value heads repeated, softmax, product.
    fn composed(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Tensor {
        let rep = q.dim(1).unwrap() / k.dim(1).unwrap();
        let repeat = |x: &Tensor| {
            let (b, kvh, n, d) = x.dims4().unwrap();
            x.unsqueeze(2)
                .unwrap()
                .expand((b, kvh, rep, n, d))
                .unwrap()
                .reshape((b, kvh * rep, n, d))
                .unwrap()
        };
        let scores = (q.matmul(&repeat(k).t().unwrap()).unwrap() * scale)
            .unwrap()
            .broadcast_add(mask)
            .unwrap();
        candle_nn::ops::softmax(&scores, D::Minus1)
            .unwrap()
            .matmul(&repeat(v))
            .unwrap()
    }

    /// Causal over `keys` positions for the last `t` queries, the first `pad[row]` keys of
    /// each row hidden (left padding: those queries see nothing at all).
    fn causal_mask(pad: &[usize], t: usize, keys: usize) -> Tensor {
        let mut data = vec![MASKED; pad.len() * t * keys];
        for (r, &p) in pad.iter().enumerate() {
            for i in 0..t {
                let qi = keys - t + i;
                for j in p..=qi {
                    data[(r * t + i) * keys + j] = 0.0;
                }
            }
        }
        Tensor::from_vec(data, (pad.len(), 1, t, keys), &Device::Cpu).unwrap()
    }

    #[test]
    fn forward_and_gradients_match_the_composed_ops() {
        let dev = Device::Cpu;
        // Two query heads per key/value head; 70 queries span two blocks; row 1 is left
        // padded (its first 5 queries see no key at all).
        let (b, h, kvh, t, d) = (2, 4, 2, 70, 8);
        let randn = |shape: (usize, usize, usize, usize)| {
            Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev).unwrap()).unwrap()
        };
        let (q, k, v) = (
            randn((b, h, t, d)),
            randn((b, kvh, t, d)),
            randn((b, kvh, t, d)),
        );
        let mask = causal_mask(&[0, 5], t, t);
        let scale = 0.3;
        let fused = fused_attention(&q, &k, &v, &mask, scale, true)
            .unwrap()
            .expect("CPU f32 takes the fused op");
        let plain = composed(&q, &k, &v, &mask, scale);
        assert!(max_diff(&fused, &plain) < 1e-5, "forward differs");
        // A loss that weighs every output differently.
        let weights = Tensor::randn(0f32, 1.0, (b, h, t, d), &dev).unwrap();
        let loss = |out: &Tensor| (out * &weights).unwrap().sum_all().unwrap();
        let g_fused = loss(&fused).backward().unwrap();
        let g_plain = loss(&plain).backward().unwrap();
        for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
            let (a, p) = (g_fused.get(x).unwrap(), g_plain.get(x).unwrap());
            let diff = max_diff(a, p);
            assert!(diff < 1e-4, "gradient of {name} differs by {diff}");
        }
    }

    #[test]
    fn reads_a_strided_cache_view_with_one_mask_row() {
        let dev = Device::Cpu;
        // A decode step: one query against 9 cached keys held in a buffer with spare room.
        let (b, h, kvh, keys, d) = (3, 6, 3, 9, 4);
        let q = Tensor::randn(0f32, 1.0, (b, h, 1, d), &dev).unwrap();
        let buffer = Tensor::randn(0f32, 1.0, (b, kvh, 16, d), &dev).unwrap();
        let k = buffer.narrow(2, 0, keys).unwrap();
        let v = (buffer.narrow(2, 3, keys).unwrap() * 2.0).unwrap();
        let mask = causal_mask(&[0, 2, 8], 1, keys);
        let fused = fused_attention(&q, &k, &v, &mask, 0.5, false)
            .unwrap()
            .unwrap();
        let plain = composed(&q, &k, &v, &mask, 0.5);
        assert!(max_diff(&fused, &plain) < 1e-5);
    }

    #[test]
    fn skips_only_keys_the_mask_hides() {
        // Row 0 sees keys 0..=2 of 5; row 1 sees none (so all of them, uniformly).
        let mask = [
            0.0, 0.0, 0.0, MASKED, MASKED, MASKED, MASKED, MASKED, MASKED, MASKED,
        ];
        let dims = Dims {
            b: 1,
            h: 1,
            kvh: 1,
            t: 2,
            keys: 5,
            d: 1,
            mask_rows: 2,
        };
        assert_eq!(key_limits(&mask, dims), vec![3, 5]);
    }
}
