//! Reading raw rows from JSONL, JSON, CSV and Parquet files into JSON values. A row that cannot
//! be read keeps its number and the reason, so the caller can fail or skip it by policy.
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::path::Path;

use crate::config::DataFormat;

/// One row of a data file: its 1-based number (line for JSONL/CSV, record for JSON and
/// Parquet) and its content, or why it could not be read.
#[derive(Debug)]
pub struct RawRow {
    pub number: usize,
    pub value: Result<Value, String>,
}

/// What a row number counts in `format`, for messages: "line 12", "record 3".
pub fn row_unit(format: DataFormat) -> &'static str {
    match format {
        DataFormat::Jsonl | DataFormat::Csv => "line",
        _ => "row",
    }
}

/// The format of `path`: `configured` unless it is `auto`, else decided by extension.
pub fn format_of(path: &Path, configured: DataFormat) -> Result<DataFormat> {
    if configured != DataFormat::Auto {
        return Ok(configured);
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(match ext.as_str() {
        "jsonl" | "ndjson" => DataFormat::Jsonl,
        "json" => DataFormat::Json,
        "csv" | "tsv" => DataFormat::Csv,
        "parquet" => DataFormat::Parquet,
        _ => bail!(
            "{}: cannot tell the data format from the extension; use .jsonl, .json, .csv, .tsv or .parquet, or set data.format",
            path.display()
        ),
    })
}

/// Read every row of `path`.
pub fn read_rows(path: &Path, format: DataFormat) -> Result<Vec<RawRow>> {
    match format_of(path, format)? {
        DataFormat::Jsonl => read_jsonl(path),
        DataFormat::Json => read_json(path),
        DataFormat::Csv => read_csv(path),
        DataFormat::Parquet => super::parquet_rows::read_parquet(path),
        DataFormat::Auto => unreachable!("format_of never returns Auto"),
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read data file {}", path.display()))?;
    Ok(crate::util::text::without_bom(bytes))
}

fn read_jsonl(path: &Path) -> Result<Vec<RawRow>> {
    Ok(jsonl_rows(&read_bytes(path)?))
}

/// One row per non-blank line, each decoded on its own, so a line with invalid UTF-8 is a bad
/// row with its number (skippable by policy), not a failed file.
fn jsonl_rows(bytes: &[u8]) -> Vec<RawRow> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, line)| (i, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.trim_ascii().is_empty())
        .map(|(i, line)| RawRow {
            number: i + 1,
            value: match std::str::from_utf8(line) {
                Ok(line) => serde_json::from_str(line).map_err(|e| json_row_error(&e)),
                Err(e) => Err(format!(
                    "invalid UTF-8 at byte {} of the line (the file must be UTF-8 text)",
                    e.valid_up_to() + 1
                )),
            },
        })
        .collect()
}

/// serde_json's message for one line of JSON Lines, with the position as a column: its own
/// "at line 1 column 28" counts within the line, which beside the file's line number reads as
/// a contradiction.
fn json_row_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let what = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(w, _)| w);
    format!("invalid JSON at column {}: {what}", e.column())
}

/// A JSON array of records, `{"data": [...]}` / `{"rows": [...]}`, or column-oriented
/// `{"field": [v1, v2, ...], ...}`. A `.json` file that is really JSON Lines is read as such.
fn read_json(path: &Path) -> Result<Vec<RawRow>> {
    let bytes = read_bytes(path)?;
    if bytes.trim_ascii().is_empty() {
        // An empty file has no rows; the caller says so naming it.
        return Ok(Vec::new());
    }
    let text = String::from_utf8_lossy(&bytes);
    if looks_like_jsonl(&text) && serde_json::from_slice::<Value>(&bytes).is_err() {
        return Ok(jsonl_rows(&bytes));
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(e) => bail!(
            "{}: invalid UTF-8 at byte {} (the file must be UTF-8 text)",
            path.display(),
            e.valid_up_to() + 1
        ),
    };
    let document: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => bail!("{}: invalid JSON: {e}", path.display()),
    };
    let records = match document {
        Value::Array(items) => items,
        Value::Object(mut object) => {
            // `data`/`rows` wrap records only when they hold objects; else they may be
            // columns of a column-oriented file.
            let wrapper = ["data", "rows"].into_iter().find(|key| {
                object
                    .get(*key)
                    .and_then(Value::as_array)
                    .is_some_and(|items| items.iter().all(Value::is_object))
            });
            if let Some(Value::Array(items)) = wrapper.and_then(|key| object.remove(key)) {
                items
            } else if !object.is_empty() && object.values().all(Value::is_array) {
                columns_to_records(path, object)?
            } else {
                bail!(
                    "{}: expected an array of records, {{\"data\": [...]}}, {{\"rows\": [...]}} or columns {{\"field\": [...]}}",
                    path.display()
                );
            }
        }
        _ => bail!(
            "{}: expected an array of records or an object",
            path.display()
        ),
    };
    Ok(records
        .into_iter()
        .enumerate()
        .map(|(i, value)| RawRow {
            number: i + 1,
            value: Ok(value),
        })
        .collect())
}

fn looks_like_jsonl(text: &str) -> bool {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first_two: Vec<_> = lines.by_ref().take(2).collect();
    first_two.len() == 2
        && first_two
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object()))
}

fn columns_to_records(path: &Path, columns: Map<String, Value>) -> Result<Vec<Value>> {
    let lengths: Vec<(String, usize)> = columns
        .iter()
        .map(|(k, v)| (k.clone(), v.as_array().map_or(0, Vec::len)))
        .collect();
    let n = lengths[0].1;
    if let Some((k, len)) = lengths.iter().find(|(_, len)| *len != n) {
        bail!(
            "{}: column `{k}` has {len} values but `{}` has {n}; column-oriented JSON needs equal lengths",
            path.display(),
            lengths[0].0
        );
    }
    let mut records = vec![Map::new(); n];
    for (key, column) in columns {
        if let Value::Array(values) = column {
            for (record, value) in records.iter_mut().zip(values) {
                record.insert(key.clone(), value);
            }
        }
    }
    Ok(records.into_iter().map(Value::Object).collect())
}

/// CSV (or TSV by extension, read without quoting) with a header row; every value is text.
/// Row numbers are the file's line numbers, counted from the byte where each record starts.
fn read_csv(path: &Path) -> Result<Vec<RawRow>> {
    let tab = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read data file {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(if tab { b'\t' } else { b',' })
        // TSV has no quoting: a `"` is text (quoting would strip it and merge rows).
        .quoting(!tab)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let header = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .clone();
    for (i, name) in header.iter().enumerate() {
        if header.iter().take(i).any(|earlier| earlier == name) {
            bail!(
                "{}: the header names column `{name}` twice; rename one of them so each field has one value",
                path.display()
            );
        }
    }
    // Lines before byte `byte`, counted incrementally (records come in file order).
    let (mut counted_to, mut newlines) = (0usize, 0usize);
    let mut line_at = |byte: u64| -> usize {
        // After a CRLF the reader places the next record at the `\n`; a record never starts
        // with a line break, so skip past them.
        let mut byte = (byte as usize).min(bytes.len());
        while byte < bytes.len() && matches!(bytes[byte], b'\r' | b'\n') {
            byte += 1;
        }
        if byte >= counted_to {
            newlines += bytes[counted_to..byte]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
        } else {
            newlines = bytes[..byte].iter().filter(|&&b| b == b'\n').count();
        }
        counted_to = byte;
        newlines + 1
    };
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let (number, value) = match record {
            Ok(record) => {
                let line = record.position().map_or(i + 2, |p| line_at(p.byte()));
                let value = if record.len() != header.len() {
                    Err(format!(
                        "has {} values but the header has {} columns",
                        record.len(),
                        header.len()
                    ))
                } else {
                    Ok(Value::Object(
                        header
                            .iter()
                            .zip(record.iter())
                            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                            .collect(),
                    ))
                };
                (line, value)
            }
            Err(e) => {
                let line = e.position().map_or(i + 2, |p| line_at(p.byte()));
                let why = match e.kind() {
                    csv::ErrorKind::Utf8 { err, .. } => format!(
                        "invalid UTF-8 in column `{}` (the file must be UTF-8 text: save it \
                         as UTF-8)",
                        header.get(err.field()).unwrap_or("?")
                    ),
                    _ => format!("invalid CSV: {e}"),
                };
                (line, Err(why))
            }
        };
        rows.push(RawRow { number, value });
    }
    Ok(rows)
}
