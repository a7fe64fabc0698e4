//! Field mapping: nested paths into a row (`answer.aliases`, `annotations.0`) and the
//! conversion of one row into an [`Example`].
use serde_json::Value;

use super::Example;

/// Which fields of a row make an example.
#[derive(Clone, Debug)]
pub struct FieldMap {
    pub input: String,
    pub output: String,
    pub references: Vec<String>,
}

/// The value at a dotted `path`: object keys by name, array items by index. A key that itself
/// contains dots (`"meta.title"`) is found too.
pub fn lookup<'a>(row: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = row.as_object().and_then(|o| o.get(path)) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    let child = match row {
        Value::Object(o) => o.get(head)?,
        Value::Array(items) => items.get(head.parse::<usize>().ok()?)?,
        _ => return None,
    };
    lookup_segments(child, rest)
}

fn lookup_segments<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    match value {
        Value::Array(items) => {
            let (head, rest) = path
                .split_once('.')
                .map_or((path, None), |(h, r)| (h, Some(r)));
            let item = items.get(head.parse::<usize>().ok()?)?;
            match rest {
                Some(rest) => lookup_segments(item, rest),
                None => Some(item),
            }
        }
        _ => lookup(value, path),
    }
}

/// " (the row has fields a, b; did you mean `a`?)" for a row object, else nothing. A name is
/// suggested only when it is closer to the path's first segment than that segment is long.
fn fields_hint(row: &Value, path: &str) -> String {
    let Value::Object(map) = row else {
        return String::new();
    };
    let names: Vec<&str> = map.keys().map(String::as_str).collect();
    let first = path.split('.').next().unwrap_or(path);
    let hint = crate::config::diagnose::suggest(first, &names)
        .filter(|name| {
            strsim::damerau_levenshtein(&first.to_lowercase(), &name.to_lowercase())
                < first.chars().count()
        })
        .map(|name| format!("; did you mean `{name}`?"))
        .unwrap_or_default();
    format!(" (the row has fields {}{hint})", names.join(", "))
}

/// Why `path` finds nothing when its first segment does exist, to follow the field's name: the
/// first step that fails inside a present value (": list `answers.text` has no item 0"), or
/// ": `answer` is null, so it has no `text`". `None` when the first segment itself is absent (then the
/// row's fields are the hint).
fn missing_inside(row: &Value, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('.').collect();
    let mut current = row;
    let mut i = 0;
    while i < segments.len() {
        let prefix = segments[..i].join(".");
        match current {
            Value::Object(object) => {
                // The longest run of segments that is a key, so dotted keys are found too.
                let found = (i + 1..=segments.len())
                    .rev()
                    .find_map(|j| object.get(&segments[i..j].join(".")).map(|v| (j, v)));
                match found {
                    Some((j, value)) => {
                        current = value;
                        i = j;
                    }
                    None if i == 0 => return None,
                    None => {
                        let names: Vec<&str> = object.keys().map(String::as_str).collect();
                        return Some(format!(
                            ": object `{prefix}` has no field `{}` (it has {})",
                            segments[i],
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ));
                    }
                }
            }
            Value::Array(items) => match segments[i].parse::<usize>() {
                Ok(n) if n < items.len() => {
                    current = &items[n];
                    i += 1;
                }
                Ok(n) => {
                    return Some(format!(
                        ": list `{prefix}` has no item {n} (it has {} item{})",
                        items.len(),
                        if items.len() == 1 { "" } else { "s" }
                    ))
                }
                Err(_) => {
                    return Some(format!(
                        ": `{prefix}` is a list, so `{}` cannot name a field in it; pick an item by number (`{prefix}.0`)",
                        segments[i]
                    ))
                }
            },
            other => {
                return Some(format!(
                    ": `{prefix}` is {}, so it has no `{}`",
                    kind(other),
                    segments[i]
                ))
            }
        }
    }
    None
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The text at `path`, which must be present and a non-empty string.
fn text_field(row: &Value, path: &str, role: &str) -> Result<String, String> {
    match lookup(row, path) {
        // Not "is missing": a path failing inside a present value is a row's content (an
        // empty list), not a mapping to fix.
        None => Err(match missing_inside(row, path) {
            Some(why) => format!("{role} field `{path}`{why}"),
            None => format!("{role} field `{path}` is missing{}", fields_hint(row, path)),
        }),
        // Present but empty: the row's value to fix or skip, not a mapping to change.
        Some(Value::Null) => Err(format!("{role} field `{path}` is null")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(format!("{role} field `{path}` is empty"))
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(_)) => Err(format!(
            "{role} field `{path}` is a list, expected text (pick one item with `{path}.0`)"
        )),
        Some(other) => Err(format!(
            "{role} field `{path}` is {}, expected text",
            kind(other)
        )),
    }
}

/// Texts under a reference path: a string, or a (nested) list of strings, flattened. A missing
/// or null reference field gives none (train rows often lack extra references).
fn reference_texts(row: &Value, path: &str, out: &mut Vec<String>) -> Result<(), String> {
    fn flatten(value: &Value, path: &str, out: &mut Vec<String>) -> Result<(), String> {
        match value {
            Value::Null => Ok(()),
            Value::String(s) => {
                if !s.trim().is_empty() {
                    out.push(s.clone());
                }
                Ok(())
            }
            Value::Array(items) => items.iter().try_for_each(|v| flatten(v, path, out)),
            other => Err(format!(
                "reference field `{path}` holds {}, expected text or a list of texts",
                kind(other)
            )),
        }
    }
    match lookup(row, path) {
        None => Ok(()),
        Some(v) => flatten(v, path, out),
    }
}

/// Build the example with id `id` from a row. References: the values of the reference fields
/// in order, flattened, without empty ones, with the output first when it is not among them.
pub fn to_example(row: &Value, id: u64, map: &FieldMap) -> Result<Example, String> {
    if !row.is_object() {
        return Err(format!(
            "the row is {}, expected an object with named fields",
            kind(row)
        ));
    }
    let input = text_field(row, &map.input, "input")?;
    let output = text_field(row, &map.output, "output")?;
    let mut references = Vec::new();
    for path in &map.references {
        reference_texts(row, path, &mut references)?;
    }
    if !references.contains(&output) {
        references.insert(0, output.clone());
    }
    Ok(Example {
        id,
        input,
        output,
        references,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(input: &str, output: &str, refs: &[&str]) -> FieldMap {
        FieldMap {
            input: input.into(),
            output: output.into(),
            references: refs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn nested_paths_reach_objects_lists_and_dotted_keys() {
        let row = json!({
            "q": {"text": "hi"},
            "answer": {"aliases": ["a", "b"], "value": "a"},
            "annotations": ["x", "y"],
            "meta.title": "dotted",
            "grid": [[1, 2], [3, 4]],
        });
        assert_eq!(lookup(&row, "q.text"), Some(&json!("hi")));
        assert_eq!(lookup(&row, "answer.aliases"), Some(&json!(["a", "b"])));
        assert_eq!(lookup(&row, "annotations.1"), Some(&json!("y")));
        assert_eq!(lookup(&row, "meta.title"), Some(&json!("dotted")));
        assert_eq!(lookup(&row, "grid.1.0"), Some(&json!(3)));
        assert_eq!(lookup(&row, "annotations.7"), None);
        assert_eq!(lookup(&row, "q.missing"), None);
    }

    #[test]
    fn references_flatten_lists_drop_empties_and_put_output_first() {
        let row = json!({"q": "question", "answer": {"value": "Paris", "aliases": ["paris", "", "Paris, France"]}});
        let ex = to_example(&row, 4, &map("q", "answer.value", &["answer.aliases"])).unwrap();
        assert_eq!(ex.id, 4);
        assert_eq!(ex.output, "Paris");
        assert_eq!(ex.references, vec!["Paris", "paris", "Paris, France"]);
        // Output already among the references: kept where it is, not repeated.
        let row = json!({"q": "q", "s": "b", "ann": ["a", "b"]});
        let ex = to_example(&row, 0, &map("q", "s", &["ann"])).unwrap();
        assert_eq!(ex.references, vec!["a", "b"]);
        // A missing extra reference field (train rows) gives just the output.
        let row = json!({"q": "q", "s": "b"});
        let ex = to_example(&row, 0, &map("q", "s", &["s", "ann"])).unwrap();
        assert_eq!(ex.references, vec!["b"]);
    }

    #[test]
    fn bad_fields_are_explained() {
        let m = map("q", "a", &["refs"]);
        let err = |row: Value| to_example(&row, 0, &m).unwrap_err();
        assert_eq!(
            err(json!({"answer": "x"})),
            "input field `q` is missing (the row has fields answer)"
        );
        assert_eq!(
            err(json!({"qq": "x", "zzz": "y"})),
            "input field `q` is missing (the row has fields qq, zzz)",
            "no suggestion as far from the name as it is long"
        );
        let long = map("question", "a", &[]);
        assert_eq!(
            to_example(&json!({"qestion": "x", "id": "y"}), 0, &long).unwrap_err(),
            "input field `question` is missing (the row has fields qestion, id; did you mean `qestion`?)"
        );
        assert_eq!(
            err(json!({"q": 3, "a": "x"})),
            "input field `q` is a number, expected text"
        );
        assert_eq!(
            err(json!({"q": "x", "a": "  "})),
            "output field `a` is empty"
        );
        assert!(err(json!({"q": "x", "a": ["y"]})).contains("pick one item with `a.0`"));
        assert_eq!(
            err(json!({"q": "x", "a": "y", "refs": [1]})),
            "reference field `refs` holds a number, expected text or a list of texts"
        );
        assert_eq!(
            err(json!(["q"])),
            "the row is a list, expected an object with named fields"
        );
    }

    #[test]
    fn a_path_failing_inside_a_present_value_says_where() {
        let m = map("q", "answers.text.0", &[]);
        let err = |row: Value| to_example(&row, 0, &m).unwrap_err();
        assert_eq!(
            err(json!({"q": "x", "answers": {"text": []}})),
            "output field `answers.text.0`: list `answers.text` has no item 0 (it has 0 items)"
        );
        assert_eq!(
            err(json!({"q": "x", "answers": {"start": [3]}})),
            "output field `answers.text.0`: object `answers` has no field `text` (it has start)"
        );
        assert_eq!(
            err(json!({"q": "x", "answers": "y"})),
            "output field `answers.text.0`: `answers` is text, so it has no `text`"
        );
        // The first segment absent: the row's fields, and no far-fetched suggestion.
        assert_eq!(
            err(json!({"q": "x", "id": "y"})),
            "output field `answers.text.0` is missing (the row has fields q, id)"
        );
    }
}
