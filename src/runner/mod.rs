//! runner
pub mod curve;
pub mod persist;
pub mod state;
pub mod stopping;
