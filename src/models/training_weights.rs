//! Frozen weights copied as `[out, in]` for the backward pass, kept only while training runs.
//!
//! The forward products read each base weight stored `[in, out]` row-major, which the gemm
//! crate multiplies in place. The input gradient `g @ wᵀ` reads the same matrix through a
//! transposed view, and for that layout the gemm crate first packs it one value at a time
//! (a strided scalar gather: 11% of all samples in a perf profile of the quick start's
//! training). In the quick start's training those products ran at 89–125 GFLOP/s against
//! 145–180 for the same shapes row-major (`LAB_GEMM_TRACE`). A contiguous transposed copy
//! turns them into row-major products. It costs a copy of the weights, so it is made on a
//! weight's first backward product inside a [`TrainingScope`] and dropped when the last scope
//! ends: the memory is held only while training. Keys are candle tensor ids, which are never
//! reused, so a merged weight (a new tensor) can never be served its unmerged transpose.
use std::sync::Arc;

use candle_core::TensorId;
use rayon::prelude::*;

use super::scoped_copies::{Scope, ScopedCopies};

/// At most this much copied memory (all weights of the scope together); weights past it are
/// read through the transposed view as before, so a large model gets only part of the gain
/// and never doubles its memory. SmolLM2-135M copies ~415 MB (from its shapes: every linear
/// layer but the first layer's q, k, v, gate and up projections, whose input needs no
/// gradient; the tied LM head has its own transpose).
static COPIES: ScopedCopies = ScopedCopies::new(2 << 30);

/// While one of these is alive, input gradients read transposed copies of frozen weights.
pub type TrainingScope = Scope;

/// Start keeping transposed weights for the backward pass (until the returned scope, and
/// every other, is dropped).
pub fn training_scope() -> TrainingScope {
    COPIES.scope()
}

/// `w [k, n]` (row-major) as `[n, k]` row-major, copying it now if needed; `None` outside a
/// training scope, past the memory budget, or with `LAB_UNFUSED=grad_transpose`.
pub fn transposed(id: TensorId, w: &[f32], k: usize, n: usize) -> Option<Arc<Vec<f32>>> {
    if w.len() != k * n || !super::fused_train::fused("grad_transpose") {
        return None;
    }
    COPIES.get_or_make(id, std::mem::size_of_val(w), || transpose(w, k, n))
}

/// Whether the current scopes hold a copy of weight `id` (for tests).
#[cfg(test)]
pub(crate) fn is_copied(id: TensorId) -> bool {
    COPIES.holds(id)
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
        assert_eq!(
            &first[..],
            &[0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0, 10.0, 3.0, 7.0, 11.0]
        );
        let again = transposed(id, &w, 3, 4).expect("the same copy");
        assert!(Arc::ptr_eq(&first, &again), "copied once per scope");
        let other = candle_core::Tensor::zeros(1, candle_core::DType::F32, &dev)?.id();
        assert!(
            transposed(other, &w, 5, 4).is_none(),
            "12 values are not 5 × 4"
        );
        Ok(())
    }
}
