//! Reading predictions and references for `lab metrics` from JSONL, JSON, CSV or plain text.
//!
//! Fields are addressed by path: `subject`, `answer.value`, `annotations.0` (list index). A JSON
//! value may be a string or a list of strings (several references). Rows are kept in file order
//! so predictions and references are matched by position.
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;

/// One record of an input file: its 1-based line (or row) number and its fields.
struct Record {
    line: usize,
    value: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    JsonLines,
    Json,
    Csv,
    Text,
}

fn format_of(path: &Path) -> Result<Format> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    Ok(match extension.as_str() {
        "jsonl" | "ndjson" => Format::JsonLines,
        "json" => Format::Json,
        "csv" => Format::Csv,
        "txt" => Format::Text,
        _ => bail!(
            "{}: cannot tell the format from the extension `.{extension}`; use .jsonl, .json, \
             .csv or .txt (one text per line)",
            path.display()
        ),
    })
}

/// The file's text without a leading byte-order mark (editors on Windows write one), or an
/// error naming the first line that is not UTF-8.
fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    crate::util::text::utf8_text(crate::util::text::without_bom(bytes)).map_err(|at| {
        anyhow::anyhow!(
            "{} line {}, column {}: byte 0x{:02X} is not UTF-8 text; save the file as UTF-8 \
             (e.g. `iconv -f latin1 -t utf-8`)",
            path.display(),
            at.line,
            at.column,
            at.byte
        )
    })
}

fn read_records(path: &Path, format: Format) -> Result<Vec<Record>> {
    let text = read_text(path)?;
    match format {
        Format::JsonLines => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                let value = serde_json::from_str(l).with_context(|| {
                    format!("{} line {}: not valid JSON", path.display(), i + 1)
                })?;
                Ok(Record { line: i + 1, value })
            })
            .collect(),
        Format::Json => {
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not valid JSON", path.display()))?;
            let Value::Array(items) = value else {
                bail!("{}: expected a JSON array of records", path.display());
            };
            Ok(items
                .into_iter()
                .enumerate()
                .map(|(i, value)| Record { line: i + 1, value })
                .collect())
        }
        Format::Csv => {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let headers = reader
                .headers()
                .with_context(|| format!("{}: cannot read the CSV header", path.display()))?
                .clone();
            reader
                .records()
                .enumerate()
                .map(|(i, row)| {
                    // Row 1 is the header, so data row i is on line i + 2.
                    let row =
                        row.with_context(|| format!("{} row {}: bad CSV", path.display(), i + 2))?;
                    let object = headers
                        .iter()
                        .zip(row.iter())
                        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                        .collect();
                    Ok(Record {
                        line: i + 2,
                        value: Value::Object(object),
                    })
                })
                .collect()
        }
        Format::Text => Ok(text
            .lines()
            .enumerate()
            .map(|(i, l)| Record {
                line: i + 1,
                value: Value::String(l.to_string()),
            })
            .collect()),
    }
}

/// Follow a dotted path through objects and list indexes. A key that itself contains dots is
/// found too, because the whole remaining path is tried as a key first.
fn resolve<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(found) = value.as_object().and_then(|o| o.get(path)) {
        return Some(found);
    }
    let (head, rest) = path.split_once('.')?;
    let next = match value {
        Value::Object(o) => o.get(head)?,
        Value::Array(items) => items.get(head.parse::<usize>().ok()?)?,
        _ => return None,
    };
    resolve_step(next, rest)
}

fn resolve_step<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if let Value::Array(items) = value {
        if let Ok(index) = path.parse::<usize>() {
            return items.get(index);
        }
    }
    resolve(value, path)
}

fn available_fields(value: &Value) -> String {
    match value {
        Value::Object(o) => o.keys().cloned().collect::<Vec<_>>().join(", "),
        _ => "(the record is not an object)".to_string(),
    }
}

/// The value of `field` in a record; `None` as field means the default name, or the only
/// field when the record has exactly one.
fn field_value<'v>(
    path: &Path,
    record: &'v Record,
    field: Option<&str>,
    default: &str,
    flag: &str,
) -> Result<&'v Value> {
    if let Value::String(_) = record.value {
        return Ok(&record.value);
    }
    let name = field.unwrap_or(default);
    if let Some(found) = resolve_step(&record.value, name) {
        return Ok(found);
    }
    if field.is_none() {
        if let Value::Object(o) = &record.value {
            if o.len() == 1 {
                return Ok(o
                    .values()
                    .next()
                    .expect("an object of length 1 has a value"));
            }
        }
    }
    let keys = match &record.value {
        Value::Object(o) => o.keys().map(String::as_str).collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    // Suggest a field only when it looks like a misspelling of the requested one.
    let hint = keys
        .iter()
        .map(|k| (strsim::levenshtein(k, name), k))
        .filter(|(distance, _)| *distance <= 2.max(name.chars().count() / 3))
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    bail!(
        "{} line {}: no field `{name}`{hint} (fields: {}); choose one with {flag}",
        path.display(),
        record.line,
        available_fields(&record.value)
    )
}

fn texts_of(path: &Path, line: usize, name: &str, value: &Value) -> Result<Vec<String>> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => bail!(
                    "{} line {line}: `{name}` item {i} is {other}, expected a string",
                    path.display()
                ),
            })
            .collect(),
        other => bail!(
            "{} line {line}: `{name}` is {other}, expected a string or a list of strings",
            path.display()
        ),
    }
}

/// One prediction per record from `field` (default `prediction`, or the only field).
pub fn read_predictions(path: &Path, field: Option<&str>) -> Result<Vec<String>> {
    let records = read_records(path, format_of(path)?)?;
    records
        .iter()
        .map(|record| {
            let value = field_value(path, record, field, "prediction", "--prediction-field")?;
            match value {
                Value::String(s) => Ok(s.clone()),
                other => bail!(
                    "{} line {}: prediction `{}` is {other}, expected a string",
                    path.display(),
                    record.line,
                    field.unwrap_or("prediction")
                ),
            }
        })
        .collect()
}

/// Every reference of every record: the strings (or lists of strings) of all `fields`, in
/// order (default `references`, or the only field).
pub fn read_references(path: &Path, fields: &[String]) -> Result<Vec<Vec<String>>> {
    let records = read_records(path, format_of(path)?)?;
    let fields: Vec<Option<&str>> = if fields.is_empty() {
        vec![None]
    } else {
        fields.iter().map(|f| Some(f.as_str())).collect()
    };
    records
        .iter()
        .map(|record| {
            let mut references = Vec::new();
            for field in &fields {
                let value = field_value(path, record, *field, "references", "--reference-fields")?;
                let name = field.unwrap_or("references");
                references.extend(texts_of(path, record.line, name, value)?);
            }
            if references.is_empty() {
                let names: Vec<&str> = fields.iter().map(|f| f.unwrap_or("references")).collect();
                bail!(
                    "{} line {}: no reference (`{}` is an empty list); every example needs at \
                     least one: fill it in, or name another field with --reference-fields",
                    path.display(),
                    record.line,
                    names.join("`, `")
                );
            }
            Ok(references)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn jsonl_paths_lists_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "d.jsonl",
            "{\"subject\": \"s1\", \"a\": [\"x\", \"y\"], \"n\": {\"v\": \"z\"}}\n\n\
             {\"subject\": \"s2\", \"a\": [\"u\"], \"n\": {\"v\": \"w\"}}\n",
        );
        assert_eq!(
            read_predictions(&p, Some("subject")).unwrap(),
            vec!["s1", "s2"]
        );
        let refs = read_references(&p, &["a.0".into(), "n.v".into()]).unwrap();
        assert_eq!(refs, vec![vec!["x", "z"], vec!["u", "w"]]);
        let all = read_references(&p, &["a".into()]).unwrap();
        assert_eq!(all, vec![vec!["x", "y"], vec!["u"]]);
        let single = write(&dir, "one.jsonl", "{\"text\": \"only\"}\n");
        assert_eq!(read_predictions(&single, None).unwrap(), vec!["only"]);
    }

    #[test]
    fn csv_and_text_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(&dir, "r.csv", "id,ref,alt\n1,\"a, b\",c\n2,d,e\n");
        let refs = read_references(&csv, &["ref".into(), "alt".into()]).unwrap();
        assert_eq!(refs, vec![vec!["a, b", "c"], vec!["d", "e"]]);
        let txt = write(&dir, "p.txt", "first\n\nthird\n");
        assert_eq!(
            read_predictions(&txt, None).unwrap(),
            vec!["first", "", "third"]
        );
    }

    #[test]
    fn bad_input_names_file_line_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "d.jsonl", "{\"subjet\": \"s\", \"x\": 1}\n");
        let err = read_predictions(&p, Some("subject"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1: no field `subject`; did you mean `subjet`? (fields: subjet, x)"),
            "{err}"
        );
        assert!(err.ends_with("choose one with --prediction-field"), "{err}");
        let err = read_references(&p, &[]).unwrap_err().to_string();
        assert!(err.contains("no field `references` (fields"), "{err}");
        let err = format!("{:#}", read_predictions(&p, Some("x")).unwrap_err());
        assert!(
            err.contains("line 1: prediction `x` is 1, expected a string"),
            "{err}"
        );
        let q = write(&dir, "e.jsonl", "{\"subject\": \"s\"}\n{bad\n");
        let err = read_predictions(&q, Some("subject"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("e.jsonl line 2: not valid JSON"), "{err}");
        let none = write(
            &dir,
            "n.jsonl",
            "{\"references\": [\"x\"]}\n{\"references\": []}\n",
        );
        let err = read_references(&none, &[]).unwrap_err().to_string();
        assert!(
            err.contains("n.jsonl line 2: no reference (`references` is an empty list)")
                && err.contains("--reference-fields"),
            "{err}"
        );
        let odd = write(&dir, "d.xlsx", "");
        let err = read_predictions(&odd, None).unwrap_err().to_string();
        assert!(err.contains("use .jsonl, .json, .csv or .txt"), "{err}");
    }

    /// A byte-order mark (Notepad's "UTF-8 with BOM") is not part of the first record: a
    /// prediction read from such a .txt file matched nothing before.
    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let txt = write(&dir, "p.txt", "\u{feff}hello\nworld\n");
        assert_eq!(
            read_predictions(&txt, None).unwrap(),
            vec!["hello", "world"]
        );
        let jsonl = write(&dir, "p.jsonl", "\u{feff}{\"prediction\": \"a\"}\n");
        assert_eq!(read_predictions(&jsonl, None).unwrap(), vec!["a"]);
        let json = write(&dir, "p.json", "\u{feff}[\"a\"]");
        assert_eq!(read_predictions(&json, None).unwrap(), vec!["a"]);
    }

    #[test]
    fn text_that_is_not_utf8_names_the_line_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.txt");
        std::fs::write(&path, b"ok\ncaf\xe9 au lait\n").unwrap();
        let err = format!("{:#}", read_predictions(&path, None).unwrap_err());
        assert!(
            err.contains("latin1.txt line 2, column 4: byte 0xE9 is not UTF-8 text")
                && err.contains("save the file as UTF-8"),
            "{err}"
        );
    }
}
