//! Small helpers shared by every module: atomic file writes, progress bars.
pub mod atomic;
pub mod progress;

pub use atomic::{atomic_write, atomic_write_string};
