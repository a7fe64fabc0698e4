//! Datasets: loading (JSONL, JSON, CSV, Parquet), field mapping, splits, test subsets.
//!
//! Ids are row indices within a split's file(s), so they survive subsampling and resume. The
//! test subset and the pool subsample are fixed by the dataset, not by the run seed.
pub mod example;
pub mod fields;
pub mod inspect;
pub mod layout;
pub mod parquet_rows;
pub mod render;
pub mod rows;
pub mod split;

pub use example::Example;
pub use layout::{find_split_files, SplitFiles};
pub use render::render_input;

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

use crate::config::{DataConfig, DataFormat, OnBadRow};
use fields::FieldMap;
use layout::Split;
use rows::{format_of, read_rows, row_unit};

/// A loaded dataset: `train` is the unlabeled pool (after `pool_size`), `test` the fixed test
/// subset (after `test_size`).
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub train: Vec<Example>,
    pub dev: Vec<Example>,
    pub test: Vec<Example>,
    /// Where the splits came from, for logs: "data/aeslc: train=train.jsonl, ...".
    pub source: String,
    pub files: SplitFiles,
    /// Train rows before the pool subsample (and after any split by ratio).
    pub train_rows: usize,
    /// Rows skipped under `on_bad_row = "skip"`, over all splits.
    pub skipped_rows: usize,
}

impl Dataset {
    /// sha256 over every example the experiment uses (pool, dev and test: ids, inputs,
    /// outputs, references), for telling whether a resumed cell still sees the same data.
    /// Each string is length-prefixed so moving text between fields changes the hash.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for (tag, split) in [
            ("train", &self.train),
            ("dev", &self.dev),
            ("test", &self.test),
        ] {
            hash.update(tag.as_bytes());
            hash.update((split.len() as u64).to_le_bytes());
            for e in split.iter() {
                hash.update(e.id.to_le_bytes());
                let texts = [&e.input, &e.output].into_iter().chain(&e.references);
                hash.update((e.references.len() as u64).to_le_bytes());
                for text in texts {
                    hash.update((text.len() as u64).to_le_bytes());
                    hash.update(text.as_bytes());
                }
            }
        }
        hex::encode(hash.finalize())
    }
}

/// Load the dataset `cfg` describes; a relative `data.path` is read from `base_dir`.
pub fn load_dataset(cfg: &DataConfig, base_dir: &Path) -> Result<Dataset> {
    let files = find_split_files(cfg, base_dir)?;
    let map = FieldMap {
        input: cfg.input_field.clone(),
        output: cfg.output_field.clone(),
        references: cfg.effective_reference_fields(),
    };
    let (mut train, train_skipped, train_read) = load_split(&files.train, cfg, &map)?;
    let (mut dev, dev_skipped, _) = load_split(&files.dev, cfg, &map)?;
    let (mut test, test_skipped, test_read) = load_split(&files.test, cfg, &map)?;
    let skipped_rows = train_skipped + dev_skipped + test_skipped;
    let shown = |paths: &[PathBuf]| -> String {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        names.join(" + ")
    };
    // An empty file is named as such, not taken for a field mapping to fix.
    const NO_ROWS: &str =
        "has no rows (the file is empty, or holds only blank lines or a CSV header)";
    if train_read == 0 {
        bail!(
            "the train split {} {NO_ROWS}: put the examples there, or point data.path (or data.train) at the file that has them",
            shown(&files.train)
        );
    }
    if test_read == 0 && !files.test.is_empty() {
        bail!(
            "the test split {} {NO_ROWS}: put the test examples there, or remove it and set data.test_ratio (e.g. 0.1) to split a test set from train",
            shown(&files.test)
        );
    }
    if train.is_empty() {
        bail!(
            "the train split {} gave 0 usable rows (all {train_skipped} skipped as bad): check the field mapping (data.input_field = `{}`, data.output_field = `{}`) against the fields its rows have",
            shown(&files.train),
            cfg.input_field,
            cfg.output_field
        );
    }

    if cfg.test_ratio.is_some() && !files.test.is_empty() {
        bail!(
            "`data.test_ratio` is set but {} has a test split ({}); remove data.test_ratio to use it",
            cfg.path.display(),
            files.test[0].display()
        );
    }
    if cfg.dev_ratio.is_some() && !files.dev.is_empty() {
        bail!(
            "`data.dev_ratio` is set but {} has a dev split ({}); remove data.dev_ratio to use it",
            cfg.path.display(),
            files.dev[0].display()
        );
    }
    let test_ratio = cfg.test_ratio.unwrap_or(0.0);
    let dev_ratio = cfg.dev_ratio.unwrap_or(0.0);
    if test_ratio > 0.0 || dev_ratio > 0.0 {
        let (rest, split_dev, split_test) =
            split::split_by_ratio(train, test_ratio, dev_ratio, &files.name);
        train = rest;
        if test_ratio > 0.0 {
            test = split_test;
        }
        if dev_ratio > 0.0 {
            dev = split_dev;
        }
    }
    if test.is_empty() && !files.test.is_empty() {
        bail!(
            "the test split {} gave 0 usable rows ({test_skipped} skipped): check the field mapping (data.input_field = `{}`, data.output_field = `{}`) against the fields its rows have",
            shown(&files.test),
            cfg.input_field,
            cfg.output_field
        );
    }
    if test.is_empty() {
        bail!(
            "{} has no test split: add a test.* file, set `data.test` to one, or set `data.test_ratio` (e.g. 0.1) to split it from train",
            cfg.path.display()
        );
    }
    if let Some(n) = cfg.test_size {
        if n > test.len() {
            bail!(
                "`data.test_size` = {n} but the test split has only {}; lower it or remove it",
                rows(test.len())
            );
        }
        test = split::fixed_subset(test, n, &files.name, "test-subset");
    }
    let train_rows = train.len();
    if let Some(n) = cfg.pool_size {
        if n > train.len() {
            bail!(
                "`data.pool_size` = {n} but the train split has only {}; lower it or remove it",
                rows(train.len())
            );
        }
        train = split::fixed_subset(train, n, &files.name, "pool");
    }
    if train.is_empty() {
        bail!(
            "{}: the train split (the pool) is empty",
            cfg.path.display()
        );
    }
    Ok(Dataset {
        name: files.name.clone(),
        source: describe(cfg, &files),
        files,
        train,
        dev,
        test,
        train_rows,
        skipped_rows,
    })
}

fn rows(n: usize) -> String {
    format!("{n} row{}", if n == 1 { "" } else { "s" })
}

/// What to do about a row that cannot be read: usually fix it, but a `data.format` that
/// contradicts the file's extension misreads every row.
fn unreadable_advice(path: &Path, configured: DataFormat) -> String {
    match format_of(path, DataFormat::Auto) {
        Ok(by_extension) if configured != DataFormat::Auto && by_extension != configured => {
            let name = |f: DataFormat| format!("{f:?}").to_lowercase();
            format!(
                "data.format = \"{}\" reads this {} file as {}: remove data.format (or set it \
                 to \"{}\") unless the file really is {}",
                name(configured),
                name(by_extension),
                name(configured),
                name(by_extension),
                name(configured)
            )
        }
        _ => "Fix the row, or set data.on_bad_row = \"skip\" to leave out the rows that \
              cannot be read"
            .to_string(),
    }
}

/// Read the rows of one split (its shards in order) into examples; ids count rows across
/// shards. Returns the examples, how many rows were skipped and how many were read.
fn load_split(
    paths: &[PathBuf],
    cfg: &DataConfig,
    map: &FieldMap,
) -> Result<(Vec<Example>, usize, u64)> {
    const SHOWN_WARNINGS: usize = 5;
    let mut examples = Vec::new();
    let mut skipped = 0;
    let mut next_id = 0u64;
    for path in paths {
        let format = format_of(path, cfg.format)?;
        let unit = row_unit(format);
        let mut skipped_here = 0;
        for row in read_rows(path, format)? {
            let id = next_id;
            next_id += 1;
            // A row that cannot be read (invalid JSON, a CSV row of the wrong width) is fixed
            // in the file; another field mapping cannot help it.
            let (result, readable) = match row.value {
                Ok(value) => (fields::to_example(&value, id, map), true),
                Err(why) => (Err(why), false),
            };
            match (result, cfg.on_bad_row) {
                (Ok(example), _) => examples.push(example),
                // A field missing from the very first row is a mapping to fix, not a row to
                // skip (skipping would drop them all).
                (Err(why), OnBadRow::Fail) if examples.is_empty() && skipped == 0 && why.contains(" is missing") => bail!(
                    "{} {unit} {}: {why}. Set data.input_field, data.output_field or data.reference_fields to fields the rows have",
                    path.display(),
                    row.number
                ),
                (Err(why), OnBadRow::Fail) if !readable => bail!(
                    "{} {unit} {}: {why}. {}",
                    path.display(),
                    row.number,
                    unreadable_advice(path, cfg.format)
                ),
                (Err(why), OnBadRow::Fail) => bail!(
                    "{} {unit} {}: {why}. Fix the row, map other fields (data.input_field, data.output_field, data.reference_fields), or set data.on_bad_row = \"skip\"",
                    path.display(),
                    row.number
                ),
                (Err(why), OnBadRow::Skip) => {
                    if skipped_here < SHOWN_WARNINGS {
                        eprintln!("warning: {} {unit} {}: {why}; row skipped", path.display(), row.number);
                    }
                    skipped_here += 1;
                }
            }
        }
        if skipped_here > SHOWN_WARNINGS {
            eprintln!(
                "warning: {}: {} more bad rows skipped ({skipped_here} in all)",
                path.display(),
                skipped_here - SHOWN_WARNINGS
            );
        }
        skipped += skipped_here;
    }
    Ok((examples, skipped, next_id))
}

fn describe(cfg: &DataConfig, files: &SplitFiles) -> String {
    let names = |split: Split, paths: &[PathBuf]| {
        let shown: Vec<String> = paths
            .iter()
            .map(|p| {
                p.file_name().map_or_else(
                    || p.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            })
            .collect();
        let label = match split {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        };
        match (shown.len(), split) {
            (0, Split::Test) if cfg.test_ratio.is_some() => {
                format!("test=split from train ({})", cfg.test_ratio.unwrap_or(0.0))
            }
            (0, Split::Dev) if cfg.dev_ratio.is_some() => {
                format!("dev=split from train ({})", cfg.dev_ratio.unwrap_or(0.0))
            }
            (0, _) => format!("{label}=none"),
            _ => format!("{label}={}", shown.join("+")),
        }
    };
    format!(
        "{}: {}, {}, {}",
        cfg.path.display(),
        names(Split::Train, &files.train),
        names(Split::Dev, &files.dev),
        names(Split::Test, &files.test)
    )
}

#[cfg(test)]
mod tests;
