//! Weights packed for decoding, kept only while a generation runs.
//!
//! A decoding step multiplies a few rows by every weight matrix, and reading each matrix in
//! place is slow (see [`pack_for_streaming`]). Packing costs a copy of the weights, so it is
//! made on a weight's first decoding product inside a [`DecodingScope`] and dropped when the
//! last scope ends: the memory is held only while generating, and training or scoring never
//! pays for it. Keys are candle tensor ids, which are never reused, so an entry cannot outlive
//! the meaning of its key within a scope.
use std::sync::Arc;

use candle_core::TensorId;

use super::scoped_copies::{Scope, ScopedCopies};
use super::skinny_matmul::pack_for_streaming;

/// At most this much packed memory (all weights of the scope together); weights past it are
/// read in place, so a model with more than 2 GiB of f32 weights gets only part of the gain
/// and never doubles its memory. SmolLM2-135M packs 537 MB.
static PACKED: ScopedCopies = ScopedCopies::new(2 << 30);

/// While one of these is alive, decoding products use packed weights.
pub type DecodingScope = Scope;

/// Start packing weights for decoding (until the returned scope, and every other, is dropped).
pub fn decoding_scope() -> DecodingScope {
    PACKED.scope()
}

/// The packed form of weight `id` (`w [k, n]`, contiguous), packing it now if needed; `None`
/// outside a decoding scope, past the memory budget, or with `LAB_UNFUSED=decode_pack`.
pub fn packed(id: TensorId, w: &[f32], k: usize, n: usize) -> Option<Arc<Vec<f32>>> {
    if !super::fused_train::fused("decode_pack") {
        return None;
    }
    PACKED.get_or_make(id, std::mem::size_of_val(w), || pack_for_streaming(w, k, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn decoding_products_inside_a_scope_read_the_packed_weight_and_agree_bitwise(
    ) -> candle_core::Result<()> {
        if !super::super::skinny_matmul::available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return Ok(());
        }
        let dev = Device::Cpu;
        // 100 columns: two full panels and a padded one with a tail past the last vector.
        let (m, k, n) = (16, 96, 100);
        let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (k, n), &dev)?;
        let outside = super::super::frozen::frozen_matmul(&x, &w)?;
        let inside = {
            let _scope = decoding_scope();
            let y = super::super::frozen::frozen_matmul(&x, &w)?;
            assert!(PACKED.holds(w.id()), "the weight was packed");
            y
        };
        let (a, b) = (outside.to_vec2::<f32>()?, inside.to_vec2::<f32>()?);
        assert_eq!(a, b, "the same arithmetic in the same order");
        let plain = x.matmul(&w)?;
        let diff = crate::models::cpu_slice::max_abs_diff(&inside, &plain);
        assert!(diff < 1e-4, "differs from candle's matmul by {diff}");
        Ok(())
    }
}
