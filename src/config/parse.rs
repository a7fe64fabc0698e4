//! Reading an experiment file so that every structural problem is reported at once, not only
//! the first one serde meets.
//!
//! serde stops at the first unknown key, wrong type or bad value. To find the next one, the
//! offending key is left out of the document (a missing required key is filled with an empty
//! value) and the document is read again; each problem is explained with its line in the file
//! as written. The experiment that finally parses has defaults where the bad keys were, so
//! later checks of the tables those keys are in would be judging values the user never wrote:
//! [`Parsed::affected`] tells callers which problems to leave out until these are fixed.
use std::path::Path;

use super::diagnose::{explain, explain_in, Source};
use super::Experiment;

/// More than this many problems in one file are not worth reading one by one.
const MOST_PROBLEMS: usize = 50;

pub struct Parsed {
    /// The experiment with the keys in `errors` left out (defaults in their place).
    pub experiment: Experiment,
    /// One message per problem, in file order, each naming the file, key and line.
    pub errors: Vec<String>,
    /// The dotted key paths of those problems (`train.lerning_rate`, `strategy[1].name`).
    pub keys: Vec<String>,
}

impl Parsed {
    /// Whether a problem about `key` (from later checks of the parsed experiment) may be an
    /// effect of a key left out here: it is about a key left out (now its default), or it
    /// weighs keys against each other (`own_value` false) in the same table as one
    /// (`al.iterations` left out makes `al` lack a stopping criterion) or in a table checked
    /// against one (`[al]` against `eval.metrics` and the labeller's prices). A problem with
    /// a value the user wrote (`al.query_size = 0`) stands.
    pub fn affected(&self, key: &str, own_value: bool) -> bool {
        if self.keys.iter().any(|left_out| left_out == key) {
            return true;
        }
        if own_value {
            return false;
        }
        let section = section_of(key);
        self.keys.iter().any(|left_out| {
            let left = section_of(left_out);
            left == section
                || section.starts_with(&format!("{left}["))
                || (section == "al" && matches!(left, "eval" | "labeller"))
        })
    }
}

/// The table a key belongs to for [`Parsed::affected`]: its first segment, or `strategy[i]`.
fn section_of(key: &str) -> &str {
    key.split('.').next().unwrap_or(key)
}

/// Parse `text` (read from `path`), collecting every structural problem. A TOML syntax error
/// is reported alone: after it the rest of the document cannot be read.
pub fn parse_all(text: &str, path: &Path) -> anyhow::Result<Parsed> {
    let original = Source {
        path: path.to_path_buf(),
        text: text.to_string(),
    };
    let mut table: toml::Table = toml::from_str(text).map_err(|e| explain(&e, &original))?;
    let mut working = original.clone();
    let mut found: Vec<(usize, String)> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    loop {
        let err = match toml::from_str::<Experiment>(&working.text) {
            Ok(experiment) => {
                found.sort_by_key(|(line, _)| *line);
                return Ok(Parsed {
                    experiment,
                    errors: found.into_iter().map(|(_, m)| m).collect(),
                    keys,
                });
            }
            Err(err) => err,
        };
        let (key, message) = explain_in(&err, &working, &original);
        let line = key
            .as_deref()
            .and_then(|k| original.line_of_key(k))
            .unwrap_or(usize::MAX);
        found.push((line, message));
        // Stop when the key cannot be taken out, would be taken out twice (no progress), or
        // the list is long enough.
        let Some(key) = key else { break };
        let missing = err.message().starts_with("missing field ");
        if keys.contains(&key)
            || found.len() >= MOST_PROBLEMS
            || !leave_out(&mut table, &key, missing)
        {
            break;
        }
        keys.push(key);
        match toml::to_string(&table) {
            Ok(text) => working.text = text,
            Err(_) => break,
        }
    }
    found.sort_by_key(|(line, _)| *line);
    let messages: Vec<String> = found.into_iter().map(|(_, m)| m).collect();
    anyhow::bail!("{}", messages.join("\n"))
}

/// Take the key at dotted `path` (`a.b[1].c`) out of `table`, or with `fill`, set it to an
/// empty string (a required key that is missing). False when the path leads nowhere.
fn leave_out(table: &mut toml::Table, path: &str, fill: bool) -> bool {
    let mut segments: Vec<(String, Option<usize>)> = Vec::new();
    for part in path.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => match rest.trim_end_matches(']').parse::<usize>() {
                Ok(i) => (name, Some(i)),
                Err(_) => return false,
            },
            None => (part, None),
        };
        segments.push((name.to_string(), index));
    }
    let Some(((last, last_index), parents)) = segments.split_last() else {
        return false;
    };
    let mut current = table;
    for (name, index) in parents {
        let value = match current.get_mut(name) {
            Some(v) => v,
            None => return false,
        };
        let value = match (value, index) {
            (toml::Value::Array(items), Some(i)) => match items.get_mut(*i) {
                Some(item) => item,
                None => return false,
            },
            (value, None) => value,
            _ => return false,
        };
        match value {
            toml::Value::Table(t) => current = t,
            _ => return false,
        }
    }
    if last_index.is_some() {
        // An item of an array is never taken out: the items after it would change index.
        return false;
    }
    if fill {
        current.insert(last.clone(), toml::Value::String(String::new()));
        true
    } else {
        current.remove(last).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_out_follows_tables_and_array_items() {
        let mut t: toml::Table =
            toml::from_str("[a]\nb = 1\n[[s]]\nn = 1\n[[s]]\nx = 2\n").unwrap();
        assert!(leave_out(&mut t, "a.b", false));
        assert!(leave_out(&mut t, "s[1].x", false));
        assert!(leave_out(&mut t, "s[1].name", true));
        assert!(!leave_out(&mut t, "s[7].x", false));
        assert!(!leave_out(&mut t, "a.zz", false));
        assert_eq!(
            toml::to_string(&t).unwrap(),
            "[a]\n\n[[s]]\nn = 1\n\n[[s]]\nname = \"\"\n"
        );
    }
}
