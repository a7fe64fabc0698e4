//! Datasets: loading (JSONL, JSON, CSV, Parquet), field mapping, splits, test subsets.
pub mod example;

pub use example::Example;
