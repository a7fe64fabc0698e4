//! The experiment runner: per-cell results files and resume (`persist`, `state`, `curve`),
//! stopping criteria, batch sharding, progress display and the `lab bench` status table.
pub mod curve;
pub mod driver;
#[cfg(test)]
mod driver_tests;
pub mod persist;
pub mod progress;
pub mod shard;
pub mod state;
pub mod status;
pub mod stopping;
