//! Selection strategies: the Rhai engine, the host API, native kernels.
pub mod kernels;
pub mod matrix;

pub use matrix::Matrix;
