//! runner
pub mod curve;
pub mod stopping;
