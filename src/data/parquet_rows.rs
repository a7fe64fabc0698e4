//! Parquet through the `parquet` crate's record API (no arrow): string, numeric, list and struct
//! columns become JSON values so nested field paths work the same as for JSON data.
use anyhow::{bail, Context, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use serde_json::{Map, Value};
use std::path::Path;

use super::rows::RawRow;

/// Every row of `path`. Any read error (a corrupt page, a bad row group) fails the whole file,
/// naming it: the row iterator cannot resume after an error (parquet 53 yields the same error
/// forever), so there is no row to skip past.
pub fn read_parquet(path: &Path) -> Result<Vec<RawRow>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open data file {}", path.display()))?;
    let reader = SerializedFileReader::new(file)
        .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
    let rows = reader
        .get_row_iter(None)
        .with_context(|| format!("{}: cannot read Parquet rows", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        match row {
            Ok(row) => out.push(RawRow {
                number: i + 1,
                value: Ok(row_to_json(&row)),
            }),
            Err(e) => bail!(
                "{}: the Parquet file is corrupt or unreadable at row {}: {e}",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(out)
}

fn row_to_json(row: &Row) -> Value {
    Value::Object(
        row.get_column_iter()
            .map(|(name, field)| (name.clone(), field_to_json(field)))
            .collect(),
    )
}

fn field_to_json(field: &Field) -> Value {
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(v) => (*v).into(),
        Field::Short(v) => (*v).into(),
        Field::Int(v) => (*v).into(),
        Field::Long(v) => (*v).into(),
        Field::UByte(v) => (*v).into(),
        Field::UShort(v) => (*v).into(),
        Field::UInt(v) => (*v).into(),
        Field::ULong(v) => (*v).into(),
        Field::Float16(v) => f64::from(f32::from(*v)).into(),
        Field::Float(v) => f64::from(*v).into(),
        Field::Double(v) => (*v).into(),
        Field::Str(s) => Value::String(s.clone()),
        // Binary columns without a UTF-8 annotation still usually hold text.
        Field::Bytes(b) => Value::String(String::from_utf8_lossy(b.data()).into_owned()),
        Field::Group(row) => row_to_json(row),
        Field::ListInternal(list) => {
            Value::Array(list.elements().iter().map(field_to_json).collect())
        }
        Field::MapInternal(map) => {
            let mut object = Map::new();
            for (k, v) in map.entries() {
                let key = match field_to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                object.insert(key, field_to_json(v));
            }
            Value::Object(object)
        }
        // Dates, timestamps and decimals are never text fields; keep their printed form.
        other => Value::String(other.to_string()),
    }
}
