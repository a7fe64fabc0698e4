//! atgen-lab: active learning for text generation.
//!
//! Data flows one way: `config → data → models → strategy → labeller → runner → report`,
//! with `metrics` used by the runner and by strategies. `cli` only parses arguments.

// candle training with glibc malloc spends about a third of its time in page faults.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod cli;
pub mod config;
pub mod data;
pub mod labeller;
pub mod metrics;
pub mod models;
pub mod report;
pub mod runner;
pub mod strategy;
pub mod util;
pub mod web;
