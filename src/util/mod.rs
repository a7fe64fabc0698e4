//! Small helpers shared by every module: atomic file writes, progress bars, running work on
//! rayon's pool.
pub mod atomic;
pub mod progress;
pub mod text;
pub mod worker;

pub use atomic::{atomic_write, atomic_write_string};
