//! runner
pub mod curve;
pub mod persist;
pub mod shard;
pub mod state;
pub mod stopping;
