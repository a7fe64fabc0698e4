//! Frozen weights prepared for training's products, kept only while training runs.
//!
//! Every frozen weight goes through two products per batch: the forward `x w` (`w` stored
//! `[in, out]` row-major) and the input gradient `g wᵀ`. Inside a [`TrainingScope`] both read
//! a copy made on the weight's first product and dropped when the last scope ends, so the
//! memory (about twice the model's linear weights) is held only while training:
//!
//! - With AVX-512, both read [`Panels`]: the layout the gemm crate's micro-kernel reads, which
//!   the gemm crate would otherwise copy the weight into at every product (8.4% of all samples
//!   in a perf profile of the quick start's training). Side by side
//!   (`cargo run --release --example panel_gemm_shapes`), products over panels ran 1.12–1.15×
//!   as fast at the quick start's ~140 rows and 1.02–1.06× at 296–2,048. `LAB_UNFUSED=panels`
//!   turns this off. Scoring keeps forward panels for the length of one call too
//!   ([`forward_scope`]).
//! - Without it (or with `LAB_UNFUSED=panels`), the input gradient reads a contiguous `[out,
//!   in]` transpose: through a transposed view the gemm crate packs the weight one value at a
//!   time (11% of all samples in the same profile, 89–125 GFLOP/s against 145–180 row-major).
//!   `LAB_UNFUSED=grad_transpose` turns that off too.
//!
//! Keys are candle tensor ids, which are never reused, so a merged weight (a new tensor) can
//! never be served its unmerged copy.
use std::sync::Arc;

use candle_core::TensorId;
use rayon::prelude::*;

use super::cpu_gemm::{self, Mat};
use super::panel_gemm::{self, Panels};
use super::scoped_copies::{Scope, ScopedCopies};

/// A frozen weight as a training product reads it.
#[derive(Debug)]
pub enum FrozenOperand {
    Panels(Panels),
    /// A contiguous row-major `[rows, cols]` matrix.
    RowMajor {
        values: Vec<f32>,
        rows: usize,
        cols: usize,
    },
}

impl FrozenOperand {
    /// `(rows, cols)` of the matrix it stands for.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Self::Panels(p) => (p.rows(), p.cols()),
            Self::RowMajor { rows, cols, .. } => (*rows, *cols),
        }
    }

    /// `β·x·self` into a fresh row-major buffer.
    pub fn product(&self, x: Mat, beta: f32) -> candle_core::Result<Vec<f32>> {
        let (k, n) = self.dims();
        match self {
            Self::RowMajor { values, .. } => {
                cpu_gemm::product(x, Mat::row_major(values, k, n)?, beta)
            }
            Self::Panels(panels) => {
                let len = x.rows() * n;
                let mut dst: Vec<f32> = Vec::with_capacity(len);
                // SAFETY: the spare capacity holds `len` values, which `panel_product` writes
                // without reading (accumulate false); only then does the length cover them.
                unsafe {
                    panel_product(dst.as_mut_ptr(), len, false, x, panels, beta)?;
                    dst.set_len(len);
                }
                Ok(dst)
            }
        }
    }

    /// `dst += β·x·self` for a row-major `dst` of `x.rows() × cols`.
    pub fn add_product(&self, dst: &mut [f32], x: Mat, beta: f32) -> candle_core::Result<()> {
        let (k, n) = self.dims();
        match self {
            Self::RowMajor { values, .. } => {
                cpu_gemm::add_product(dst, x, Mat::row_major(values, k, n)?, beta)
            }
            // SAFETY: a slice is valid for reads and writes of all its values.
            Self::Panels(panels) => unsafe {
                panel_product(dst.as_mut_ptr(), dst.len(), true, x, panels, beta)
            },
        }
    }
}

/// `dst (+)= β·x·panels` for a row-major `dst` of `dst_len` values, timed under
/// `LAB_GEMM_TRACE`.
///
/// # Safety
/// As [`panel_gemm::product_into`].
unsafe fn panel_product(
    dst: *mut f32,
    dst_len: usize,
    accumulate: bool,
    x: Mat,
    panels: &Panels,
    beta: f32,
) -> candle_core::Result<()> {
    let (m, k, n) = (x.rows(), panels.rows(), panels.cols());
    if x.cols() != k || dst_len != m * n {
        candle_core::bail!(
            "panel product: x [{m}, {}] times [{k}, {n}] into {dst_len} values",
            x.cols()
        );
    }
    let threads = cpu_gemm::threads_for(m, n, k);
    let traced = cpu_gemm::trace::enabled().then(std::time::Instant::now);
    // SAFETY: passed on from the caller; dst_len is m·n at row stride n.
    unsafe { panel_gemm::product_into(dst, dst_len, n, accumulate, x, panels, beta, threads)? };
    if let Some(start) = traced {
        cpu_gemm::trace::record_panels(m, n, k, accumulate, start.elapsed());
    }
    Ok(())
}

/// At most this much copied memory per kind (forward panels; backward panels or
/// transposes); weights past it are read as before, so a large model gets only part of the
/// gain. SmolLM2-135M keeps ~425 MB of forward panels (its linear layers) and ~415 MB for the
/// backward (every linear layer but the first layer's q, k, v, gate and up projections, whose
/// input needs no gradient; the tied LM head has its own transpose).
const BUDGET_BYTES: usize = 2 << 30;
static FORWARD: ScopedCopies<FrozenOperand> = ScopedCopies::new(BUDGET_BYTES);
static BACKWARD: ScopedCopies<FrozenOperand> = ScopedCopies::new(BUDGET_BYTES);

/// While one of these is alive, training's products read prepared copies of frozen weights.
pub struct TrainingScope {
    _forward: ForwardScope,
    _backward: Scope<FrozenOperand>,
}

/// While one of these is alive, forward products read panels of frozen weights.
pub type ForwardScope = Scope<FrozenOperand>;

/// Start keeping prepared weights for training's products (until the returned scope, and
/// every other, is dropped).
pub fn training_scope() -> TrainingScope {
    TrainingScope {
        _forward: forward_scope(),
        _backward: BACKWARD.scope(),
    }
}

/// Start keeping panels for forward products only: for work that multiplies every weight by
/// many rows more than once, as scoring a pool in batches does.
pub fn forward_scope() -> ForwardScope {
    FORWARD.scope()
}

/// Whether forward products and input gradients read panels. Not with `--features mkl`: that
/// build exists for Intel CPUs, where MKL's kernels outran the gemm crate's (README), and
/// panels have not been measured against MKL there.
pub(crate) fn panels_on() -> bool {
    !cfg!(feature = "mkl") && panel_gemm::available() && super::fused_train::fused("panels")
}

/// Panels of the row-major `w [k, n]` for forward products, made now if needed; `None`
/// outside a training scope, past the budget, without AVX-512 or with `LAB_UNFUSED=panels`.
pub fn forward(id: TensorId, w: &[f32], k: usize, n: usize) -> Option<Arc<FrozenOperand>> {
    if w.len() != k * n || !panels_on() {
        return None;
    }
    FORWARD.get_or_make(id, std::mem::size_of_val(w), || {
        FrozenOperand::Panels(Panels::from_row_major(w, k, n))
    })
}

/// `wᵀ [n, k]` for the row-major `w [k, n]`, as panels or else a contiguous transpose, made
/// now if needed; `None` outside a training scope, past the budget, or with
/// `LAB_UNFUSED=grad_transpose`.
pub fn transposed(id: TensorId, w: &[f32], k: usize, n: usize) -> Option<Arc<FrozenOperand>> {
    if w.len() != k * n || !super::fused_train::fused("grad_transpose") {
        return None;
    }
    BACKWARD.get_or_make(id, std::mem::size_of_val(w), || {
        if panels_on() {
            FrozenOperand::Panels(Panels::from_transposed(w, k, n))
        } else {
            FrozenOperand::RowMajor {
                values: transpose(w, k, n),
                rows: n,
                cols: k,
            }
        }
    })
}

/// Whether the current scopes hold a backward copy of weight `id` (for tests).
#[cfg(test)]
pub(crate) fn is_copied(id: TensorId) -> bool {
    BACKWARD.holds(id)
}

/// Whether the current scopes hold forward panels of weight `id` (for tests).
#[cfg(test)]
pub(crate) fn has_forward_panels(id: TensorId) -> bool {
    FORWARD.holds(id)
}

/// Side of the square tiles the transpose moves: 32 × 32 f32 is 4 KiB read and 4 KiB
/// written, so a tile's source rows and destination rows stay in L1 while it is copied.
const TILE: usize = 32;

/// `w [k, n]` row-major as `[n, k]` row-major, in parallel over bands of output rows.
pub fn transpose(w: &[f32], k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; k * n];
    if k == 0 || n == 0 {
        return out;
    }
    // Each band is TILE output rows (TILE columns of w), all k of them.
    out.par_chunks_mut(TILE * k)
        .enumerate()
        .for_each(|(band, rows)| {
            let j0 = band * TILE;
            let width = TILE.min(n - j0);
            for i0 in (0..k).step_by(TILE) {
                let height = TILE.min(k - i0);
                for i in i0..i0 + height {
                    let src = &w[i * n + j0..i * n + j0 + width];
                    for (dj, &v) in src.iter().enumerate() {
                        rows[dj * k + i] = v;
                    }
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_moves_every_value_for_ragged_shapes() {
        // Shapes with partial tiles on both sides, and single rows and columns.
        for (k, n) in [(1, 1), (1, 70), (70, 1), (33, 65), (64, 32), (100, 37)] {
            let w: Vec<f32> = (0..k * n).map(|v| v as f32).collect();
            let t = transpose(&w, k, n);
            for i in 0..k {
                for j in 0..n {
                    assert_eq!(t[j * k + i], w[i * n + j], "({i}, {j}) of {k} × {n}");
                }
            }
        }
    }

    #[test]
    fn copies_are_made_once_per_scope_and_refuse_a_mismatched_shape() -> candle_core::Result<()> {
        // Other tests may hold scopes of their own at the same time, so this one checks only
        // what holds inside its own scope.
        let dev = candle_core::Device::Cpu;
        let w: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let id = candle_core::Tensor::zeros(1, candle_core::DType::F32, &dev)?.id();
        let _scope = training_scope();
        let first = transposed(id, &w, 3, 4).expect("a copy inside the scope");
        assert_eq!(first.dims(), (4, 3));
        // Whatever form the copy takes, multiplying by it is multiplying by wᵀ: the unit rows
        // pick its rows.
        let identity = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let picked = first.product(Mat::row_major(&identity, 3, 4)?, 1.0)?;
        assert_eq!(picked, [0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0, 10.0]);
        let again = transposed(id, &w, 3, 4).expect("the same copy");
        assert!(Arc::ptr_eq(&first, &again), "copied once per scope");
        let other = candle_core::Tensor::zeros(1, candle_core::DType::F32, &dev)?.id();
        assert!(
            transposed(other, &w, 5, 4).is_none(),
            "12 values are not 5 × 4"
        );
        Ok(())
    }

    #[test]
    fn forward_panels_multiply_like_the_weight_and_accumulate() -> candle_core::Result<()> {
        if !panels_on() {
            eprintln!("skipped: no AVX-512F, or LAB_UNFUSED=panels");
            return Ok(());
        }
        let dev = candle_core::Device::Cpu;
        let (m, k, n) = (9, 5, 70);
        let w: Vec<f32> = (0..k * n).map(|v| (v % 13) as f32 - 6.0).collect();
        let x: Vec<f32> = (0..m * k).map(|v| (v % 7) as f32 - 3.0).collect();
        let id = candle_core::Tensor::zeros(1, candle_core::DType::F32, &dev)?.id();
        assert!(forward(id, &w, k, n).is_none(), "no panels outside a scope");
        let _scope = training_scope();
        let panels = forward(id, &w, k, n).expect("panels inside the scope");
        let xm = Mat::row_major(&x, m, k)?;
        let plain = cpu_gemm::product(xm, Mat::row_major(&w, k, n)?, 1.0)?;
        assert_eq!(
            panels.product(xm, 1.0)?,
            plain,
            "small integers: exact either way"
        );
        let mut twice = plain.clone();
        panels.add_product(&mut twice, xm, 1.0)?;
        let doubled: Vec<f32> = plain.iter().map(|v| 2.0 * v).collect();
        assert_eq!(twice, doubled);
        // x read through a view with a gap between rows.
        let wide: Vec<f32> = (0..m)
            .flat_map(|i| {
                let mut row = x[i * k..(i + 1) * k].to_vec();
                row.push(99.0);
                row
            })
            .collect();
        let strided = Mat::strided(&wide, m, k, k + 1, 1)?;
        assert_eq!(panels.product(strided, 1.0)?, plain);
        Ok(())
    }
}
