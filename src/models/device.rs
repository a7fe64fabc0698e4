//! Which device and number format the models run in: `model.device` and `model.dtype` of an
//! experiment, or the auto choice (the first CUDA GPU when this build has `--features cuda` and
//! the machine has one, else the CPU).
use anyhow::{bail, Result};
use candle_core::{DType, Device};

use crate::config::{DeviceKind, Dtype};

/// True when this binary was built with `--features cuda` and the CUDA driver library loads.
/// The build loads CUDA's libraries at run time, so a CUDA build still runs on the CPU of a
/// machine without a GPU instead of failing to start.
pub fn cuda_available() -> bool {
    #[cfg(feature = "cuda")]
    {
        // SAFETY: only tries to dlopen the driver library by its usual names.
        unsafe { candle_core::cuda_backend::cudarc::driver::sys::is_culib_present() }
    }
    #[cfg(not(feature = "cuda"))]
    {
        false
    }
}

/// Why this binary on this machine cannot use `kind`, found without opening a device (so
/// `lab check` and `lab bench` can say it before anything runs); `None` when it may work.
pub fn unusable_device(kind: DeviceKind) -> Option<String> {
    if kind != DeviceKind::Cuda {
        return None;
    }
    if !cfg!(feature = "cuda") {
        return Some(
            "device \"cuda\" asked for, but this binary was built without CUDA; rebuild with \
             `cargo build --release --features cuda` (needs nvcc: the CUDA toolkit, or \
             `bash scripts/fetch-cuda.sh`), or set device = \"cpu\" or \"auto\""
                .to_string(),
        );
    }
    if !cuda_available() {
        return Some(
            "device \"cuda\" asked for, but the CUDA driver library (libcuda.so) cannot be \
             loaded: check that an NVIDIA driver is installed and `nvidia-smi` works, or set \
             device = \"cpu\" or \"auto\""
                .to_string(),
        );
    }
    None
}

/// The device for `kind`; `Auto` falls back to the CPU when no GPU can be used.
pub fn resolve_device(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Auto => {
            if cuda_available() {
                if let Ok(device) = Device::new_cuda(0) {
                    return Ok(device);
                }
            }
            Ok(Device::Cpu)
        }
        DeviceKind::Cuda => {
            if let Some(problem) = unusable_device(kind) {
                bail!("{problem}");
            }
            Device::new_cuda(0).map_err(|e| {
                anyhow::anyhow!(
                    "device \"cuda\": cannot open CUDA device 0 ({e}); check `nvidia-smi` and that \
                     CUDA's libraries (libcublas, libcurand, libnvrtc) are on LD_LIBRARY_PATH"
                )
            })
        }
    }
}

/// The number format weights and activations are kept in.
pub fn resolve_dtype(dtype: Dtype) -> DType {
    match dtype {
        Dtype::F32 => DType::F32,
        Dtype::Bf16 => DType::BF16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available_and_auto_never_fails() {
        assert!(resolve_device(DeviceKind::Cpu).unwrap().is_cpu());
        let auto = resolve_device(DeviceKind::Auto).unwrap();
        assert_eq!(auto.is_cuda(), cuda_available());
        assert_eq!(resolve_dtype(Dtype::Bf16), DType::BF16);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_rebuild() {
        let err = resolve_device(DeviceKind::Cuda).unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
        assert!(!cuda_available());
    }
}
