//! The f32 values behind a CPU tensor, read in place: what every fused CPU op starts from.
use candle_core::{CpuStorage, Layout, Result};

/// The values of a contiguous f32 CPU storage viewed through `layout`; an error naming `what`
/// (e.g. "rope: x") otherwise.
pub fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    match (layout.contiguous_offsets(), storage) {
        (Some((start, end)), CpuStorage::F32(all)) => Ok(&all[start..end]),
        _ => candle_core::bail!("{what} must be contiguous f32"),
    }
}
