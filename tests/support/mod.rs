//! Shared by the integration tests: the mock API server, a tiny-model experiment, small builders.
#![allow(dead_code)]
pub mod crash_runs;
pub mod llm_cell;
pub mod mock_batch;
pub mod mock_chat;
pub mod mock_openai;
pub mod report_curves;
pub mod runner_e2e;
pub mod shipped_strategies;
pub mod tiny_decoder;
pub mod tiny_run;

use atgen_lab::data::Example;
use atgen_lab::labeller::llm::{LlmLabellerConfig, Provider};
use std::path::{Path, PathBuf};

pub fn example(id: u64, input: &str) -> Example {
    Example {
        id,
        input: input.to_string(),
        output: String::new(),
        references: vec![String::new()],
    }
}

/// Inputs with distinct first words, so each expected label is distinct.
pub fn emails(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| {
            example(
                i as u64,
                &format!(
                    "Meeting number {i} moved to Tuesday at {} pm. Please confirm by email.",
                    i % 12 + 1
                ),
            )
        })
        .collect()
}

/// A config for the mock server: key from `key_var`, fast retries, the cache in `cache`.
pub fn config(
    provider: Provider,
    base_url: &str,
    model: &str,
    key_var: &str,
    cache: &Path,
) -> LlmLabellerConfig {
    let mut c = LlmLabellerConfig::new(provider, model);
    c.base_url = Some(base_url.to_string());
    c.api_key_env = Some(key_var.to_string());
    c.price_input_per_mtok = 0.15;
    c.price_output_per_mtok = 0.6;
    c.max_tokens = 64;
    c.timeout_s = 5.0;
    c.retry_base_s = 0.01;
    c.retry_max_s = 0.05;
    c.max_retries = 4;
    c.batch_poll_s = 0.01;
    c.batch_poll_max_s = 0.02;
    c.cache_dir = Some(cache.to_path_buf());
    c
}

/// Every file under `dir` (folders walked, not listed).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Every file under `dir`, read as text (lossy).
pub fn all_file_text(dir: &Path) -> Vec<(String, String)> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (
                p.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        })
        .collect()
}
