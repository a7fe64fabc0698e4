//! The f32 values behind a CPU tensor, read in place: what every fused CPU op starts from.
use candle_core::{CpuStorage, Layout, Result, Storage};

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

/// [`contiguous_f32`] of a tensor's storage (from `storage_and_layout`), which must be on the
/// CPU: for the operands a fused op reads besides its own inputs (a mask, saved tensors).
pub fn cpu_contiguous_f32<'a>(
    storage: &'a Storage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(cpu) => contiguous_f32(cpu, layout, what),
        _ => candle_core::bail!("{what} must be on the CPU"),
    }
}

/// The largest `|a − b|` over two f32 tensors of one shape (for tests).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("two f32 tensors of one shape")
}
