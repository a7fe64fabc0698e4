//! runner
pub mod curve;
