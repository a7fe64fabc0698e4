//! atgen-lab: active learning for text generation.
//!
//! Data flows one way: `config → data → models → strategy → labeller → runner → report`,
//! with `metrics` used by the runner and by strategies. `cli` only parses arguments.

// candle training with glibc malloc spends about a third of its time in page faults.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps freed memory mapped instead of handing it back to the OS after mimalloc's default
/// 10 ms. A training step frees and re-allocates gigabytes of activations; with purging on, every
/// step page-faults them back in and the kernel zeroes each page again: measured on 2 cores,
/// 2.7 M faults and 81 tokens/s against 14 k faults and 154 tokens/s (`lab bench-host --only
/// training`). The cost is that the resident size stays at its peak. An explicit
/// `MIMALLOC_PURGE_DELAY` in the environment wins.
pub fn tune_allocator() {
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads it on its next purge decision.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

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
