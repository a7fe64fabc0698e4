//! Build-time advice only. `--features mkl` links Intel MKL that intel-mkl-src finds through
//! MKLROOT, pkg-config or /opt/intel; when it finds none it tries a download and, failing
//! that, the build stops much later at the link with undefined `sgemm_` and no hint why.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MKLROOT");
    if std::env::var_os("CARGO_FEATURE_MKL").is_some()
        && std::env::var_os("MKLROOT").is_none()
        && !std::path::Path::new("/opt/intel").exists()
    {
        println!(
            "cargo:warning=--features mkl: MKLROOT is not set and there is no /opt/intel, so \
             the link fails with undefined `sgemm_` unless intel-mkl-src can download MKL. \
             Run `bash scripts/fetch-mkl.sh`, then build with MKLROOT=$PWD/target/mkl."
        );
    }
}
