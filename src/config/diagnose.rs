//! Error messages that point into the experiment file: the file, the dotted key path
//! (`train.learning_rate`), the line, and for a misspelt key or value the nearest valid one.
//!
//! serde reports only the offending byte span; to name the key we re-read the document into a
//! tree of spanned keys and find the key or value that covers the span.
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;

/// The text an experiment was parsed from, kept to locate keys in later error messages.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// Every key in the document with the span of the key and of its value.
    fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        if let Ok(root) = toml::from_str::<Node>(&self.text) {
            collect(&root, "", &mut out);
        }
        out
    }

    /// Path of the most specific key or value covering `span`, e.g. `strategy[1].params.k`.
    /// A span on a key wins over one on a table that holds it.
    pub fn key_at(&self, span: &Range<usize>) -> Option<String> {
        let covers = |r: &Range<usize>| r.start <= span.start && span.end <= r.end.max(r.start + 1);
        let entries = self.entries();
        let smallest = |pick: &dyn Fn(&Entry) -> Option<Range<usize>>| {
            entries
                .iter()
                .filter_map(|e| pick(e).filter(|r| covers(r)).map(|r| (r.len(), &e.path)))
                .min_by_key(|(len, _)| *len)
                .map(|(_, path)| path.clone())
        };
        smallest(&|e| e.key_span.clone()).or_else(|| smallest(&|e| Some(e.value_span.clone())))
    }

    /// 1-based line where a dotted key path (as written by `key_at`, `[i]` for array items) is
    /// set, or where its nearest enclosing table is.
    pub fn line_of_key(&self, path: &str) -> Option<usize> {
        let entries = self.entries();
        let mut probe = path.to_string();
        loop {
            if let Some(e) = entries.iter().find(|e| e.path == probe) {
                let at = e.key_span.as_ref().unwrap_or(&e.value_span).start;
                return Some(self.line_of(at));
            }
            let cut = probe.rfind(['.', '['])?;
            probe.truncate(cut);
        }
    }
}

/// Turn a serde error from parsing `source` into advice that names the file, key and line.
pub fn explain(err: &toml::de::Error, source: &Source) -> anyhow::Error {
    anyhow::anyhow!("{}", explain_in(err, source, source).1)
}

/// [`explain`] for an error found in `working`, a rewrite of `original` (the file the user
/// wrote, with keys already reported left out): the key is found in `working`, its line in
/// `original`. Returns the key path (None for a syntax error) and the message.
pub fn explain_in(
    err: &toml::de::Error,
    working: &Source,
    original: &Source,
) -> (Option<String>, String) {
    let file = original.path.display();
    let message = err.message().trim();
    let Some(span) = err.span() else {
        return (None, format!("{file}: {message}"));
    };
    let Some(key) = working.key_at(&span) else {
        // The document is not valid TOML, so there is no key to name.
        let source = working;
        let line = source.line_of(span.start);
        let column = span.start - source.text[..span.start].rfind('\n').map_or(0, |i| i + 1) + 1;
        return (
            None,
            format!("{file} line {line}, column {column}: invalid TOML: {message}"),
        );
    };
    let line = if std::ptr::eq(working, original) || working.text == original.text {
        working.line_of(span.start)
    } else {
        original.line_of_key(&key).unwrap_or(1)
    };
    let text = if let Some(rest) = message.strip_prefix("unknown field ") {
        let (word, valid) = split_expected(rest);
        let advice = match suggest(&word, &valid) {
            Some(best) => format!("did you mean `{best}`?"),
            None if valid.is_empty() => "this table takes no keys".to_string(),
            None => format!("valid keys here: {}", valid.join(", ")),
        };
        format!("unknown key `{key}` in {file} line {line}; {advice}")
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (word, valid) = split_expected(rest);
        let hint = suggest(&word, &valid)
            .map(|best| format!(" (did you mean `{best}`?)"))
            .unwrap_or_default();
        format!(
            "`{key}` in {file} line {line}: unknown value `{word}`; valid values: {}{hint}",
            valid.join(", ")
        )
    } else if let Some(rest) = message.strip_prefix("missing field ") {
        let field = rest.trim_matches('`');
        let full = if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
        let (key, message) = (
            full.clone(),
            format!("`{full}` is required but missing in {file} (table at line {line})"),
        );
        return (Some(key), message);
    } else if message.starts_with("invalid type: map, expected a sequence") {
        let table = key.rsplit('.').next().unwrap_or(&key);
        format!(
            "`{key}` in {file} line {line}: expected a list of tables; write each entry under its own [[{table}]] header (double brackets)"
        )
    } else {
        format!(
            "`{key}` in {file} line {line}: {}",
            plain_type_error(message)
        )
    };
    (Some(key), text)
}

/// serde's "invalid type: floating point `2.5`, expected usize" in the words of the file:
/// "expected a whole number like 3 (got 2.5)"; a negative count says it must not be.
fn plain_type_error(message: &str) -> String {
    let Some((got, expected)) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.split_once(", expected "))
    else {
        return message.to_string();
    };
    let got_value = got
        .split_once(' ')
        .map_or(got, |(_, value)| value)
        .trim_start_matches("point ")
        .trim_matches('`');
    let got_value = if got.starts_with("string ") {
        got_value.to_string()
    } else if got == "map" {
        "a table".to_string()
    } else if got == "sequence" {
        "a list".to_string()
    } else {
        got_value.to_string()
    };
    let whole = matches!(expected, "usize" | "u64" | "u32" | "u16" | "u8");
    if whole && got.starts_with("integer ") && got_value.starts_with('-') {
        return format!("must be a whole number ≥ 0, not negative (got {got_value})");
    }
    let wanted = match expected {
        _ if whole => "a whole number ≥ 0, like 3".to_string(),
        "i64" | "i32" => "a whole number, like 3".to_string(),
        "f64" | "f32" => "a number, like 0.5".to_string(),
        "a string" | "a borrowed string" | "a path string" => {
            "text in quotes, like \"…\"".to_string()
        }
        "a boolean" => "true or false".to_string(),
        "a sequence" => "a list in brackets, like [0, 1]".to_string(),
        other => other.to_string(),
    };
    format!("expected {wanted} (got {got_value})")
}

/// "did you mean `x`? " when `word` is close to one of `candidates`, else "".
pub fn did_you_mean<S: AsRef<str>>(word: &str, candidates: &[S]) -> String {
    suggest(word, candidates)
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default()
}

/// The nearest candidate to `word` by edit distance, if it is close enough to be a typo.
/// Case is ignored so `rouge_l` finds `rougeL` rather than `rouge1`.
pub fn suggest<'a, S: AsRef<str>>(word: &str, candidates: &'a [S]) -> Option<&'a str> {
    let limit = 2.max(word.chars().count() / 3);
    let word = word.to_lowercase();
    candidates
        .iter()
        .map(|c| {
            let distance = strsim::damerau_levenshtein(&word, &c.as_ref().to_lowercase());
            (distance, c.as_ref())
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Split serde's "`word`, expected one of `a`, `b`" into the word and the valid names.
fn split_expected(rest: &str) -> (String, Vec<String>) {
    let mut quoted = rest.split('`').skip(1).step_by(2).map(str::to_string);
    let word = quoted.next().unwrap_or_default();
    (word, quoted.collect())
}

/// Where a message about `key` should point: "FILE line N" when the key can be found.
pub fn location(source: Option<&Source>, key: &str) -> String {
    match source {
        Some(src) => match src.line_of_key(key) {
            Some(line) => format!("{} line {line}", src.path.display()),
            None => src.path.display().to_string(),
        },
        None => "the experiment".to_string(),
    }
}

struct Entry {
    path: String,
    /// None for an item of an array.
    key_span: Option<Range<usize>>,
    value_span: Range<usize>,
}

/// The document's shape with spans and nothing else.
enum Node {
    Table(Vec<(Spanned<String>, Spanned<Node>)>),
    Array(Vec<Spanned<Node>>),
    Leaf,
}

fn collect(node: &Node, prefix: &str, out: &mut Vec<Entry>) {
    match node {
        Node::Table(entries) => {
            for (key, value) in entries {
                let path = if prefix.is_empty() {
                    key.get_ref().clone()
                } else {
                    format!("{prefix}.{}", key.get_ref())
                };
                out.push(Entry {
                    path: path.clone(),
                    key_span: Some(key.span()),
                    value_span: value.span(),
                });
                collect(value.get_ref(), &path, out);
            }
        }
        Node::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{prefix}[{i}]");
                if !matches!(item.get_ref(), Node::Leaf) {
                    out.push(Entry {
                        path: path.clone(),
                        key_span: None,
                        value_span: item.span(),
                    });
                    collect(item.get_ref(), &path, out);
                }
            }
        }
        Node::Leaf => {}
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any TOML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value::<Spanned<Node>>()?));
                }
                Ok(Node::Table(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Node>>()? {
                    items.push(item);
                }
                Ok(Node::Array(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}
