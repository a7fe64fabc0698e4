//! `lab data FILE.toml`: what an experiment's data looks like before anything runs — the files,
//! split sizes, length statistics and a few inputs exactly as the model will get them.
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::PathBuf;

use super::{load_dataset, render_input, Dataset, Example};
use crate::config::{load_experiment, DataConfig};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  lab data experiments/quickstart.toml --examples 5\n\nA relative data.path is read from the current folder, then from the experiment file's folder."
)]
pub struct DataArgs {
    /// Experiment file (.toml) whose `[data]` table to load.
    pub file: PathBuf,
    /// How many rendered examples to show.
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
}

pub fn run(args: &DataArgs) -> Result<()> {
    let exp = load_experiment(&args.file)?;
    let base = super::layout::find_experiment_data_base(&exp.data.path, &args.file)?;
    let dataset = load_dataset(&exp.data, &base)
        .with_context(|| format!("loading the data of {}", args.file.display()))?;
    print!("{}", summary(&dataset, &exp.data, args.examples));
    Ok(())
}

/// min / mean / median / max of a list of lengths.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LengthStats {
    pub min: usize,
    pub mean: f64,
    pub median: f64,
    pub max: usize,
}

impl LengthStats {
    pub fn of(lengths: &[usize]) -> Option<Self> {
        if lengths.is_empty() {
            return None;
        }
        let mut sorted = lengths.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2] as f64
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0
        };
        Some(Self {
            min: sorted[0],
            mean: sorted.iter().sum::<usize>() as f64 / n as f64,
            median,
            max: sorted[n - 1],
        })
    }
}

/// A length of one example, e.g. its input's word count.
type Measure = fn(&Example) -> usize;

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// The report `lab data` prints.
pub fn summary(dataset: &Dataset, cfg: &DataConfig, shown: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "dataset {}", dataset.name);
    let _ = writeln!(out, "source  {}", dataset.source);
    for (label, paths) in [
        ("train", &dataset.files.train),
        ("dev", &dataset.files.dev),
        ("test", &dataset.files.test),
    ] {
        for path in paths.iter() {
            let _ = writeln!(out, "file    {label:<5} {}", path.display());
        }
    }
    let _ = writeln!(out);
    let pool_note = if dataset.train.len() == dataset.train_rows {
        String::new()
    } else {
        format!(" (pool subsample of {} train rows)", dataset.train_rows)
    };
    let _ = writeln!(out, "pool  {:>7}{pool_note}", dataset.train.len());
    let _ = writeln!(out, "dev   {:>7}", dataset.dev.len());
    let _ = writeln!(out, "test  {:>7}", dataset.test.len());
    if dataset.skipped_rows > 0 {
        let _ = writeln!(out, "skipped bad rows: {}", dataset.skipped_rows);
    }
    for (label, examples) in [("pool", &dataset.train), ("test", &dataset.test)] {
        let _ = writeln!(
            out,
            "\nlengths ({label})      min     mean   median      max"
        );
        let columns: [(&str, Measure); 4] = [
            ("input words", |e| words(&e.input)),
            ("input chars", |e| chars(&e.input)),
            ("output words", |e| words(&e.output)),
            ("output chars", |e| chars(&e.output)),
        ];
        for (name, measure) in columns {
            let lengths: Vec<usize> = examples.iter().map(measure).collect();
            if let Some(s) = LengthStats::of(&lengths) {
                let _ = writeln!(
                    out,
                    "  {name:<16} {:>7} {:>8.1} {:>8.1} {:>8}",
                    s.min, s.mean, s.median, s.max
                );
            }
        }
        let refs: Vec<usize> = examples.iter().map(|e| e.references.len()).collect();
        if let Some(s) = LengthStats::of(&refs) {
            let _ = writeln!(
                out,
                "  {:<16} {:>7} {:>8.1} {:>8.1} {:>8}",
                "references", s.min, s.mean, s.median, s.max
            );
        }
    }
    if let Some(system) = &cfg.system_prompt {
        let _ = writeln!(out, "\nsystem prompt: {system}");
    }
    for example in dataset.train.iter().take(shown) {
        let _ = writeln!(out, "\n--- pool example id {} ---", example.id);
        let _ = writeln!(
            out,
            "{}",
            render_input(&cfg.input_template, &example.input, cfg.max_input_chars)
        );
        let _ = writeln!(out, "--- output: {}", example.output);
        if example.references.len() > 1 {
            let _ = writeln!(out, "--- references: {}", example.references.join(" | "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_stats_handle_odd_and_even_counts() {
        let s = LengthStats::of(&[5, 1, 3]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1, 3.0, 5));
        assert!((s.mean - 3.0).abs() < 1e-12);
        let s = LengthStats::of(&[4, 1, 2, 10]).unwrap();
        assert_eq!((s.median, s.mean), (3.0, 4.25));
        assert_eq!(LengthStats::of(&[]), None);
    }
}
