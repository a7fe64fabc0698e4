//! Text normalisation shared by the metrics: SQuAD's `normalize_answer` and Python's notion of
//! whitespace (the references split with `str.split()`).
use once_cell::sync::Lazy;
use regex::Regex;

static ARTICLES: Lazy<Regex> = Lazy::new(|| Regex::new(r"\b(a|an|the)\b").expect("static regex"));

/// Python's `str.isspace`: Unicode White_Space plus the four ASCII separators U+001C..U+001F,
/// which Python counts as whitespace and Rust does not.
pub fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no argument: split on runs of whitespace, drop empty pieces.
pub fn python_split(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_python_space).filter(|t| !t.is_empty())
}

/// SQuAD's `normalize_answer`: lowercase, delete ASCII punctuation (`string.punctuation`),
/// replace the articles a/an/the with a space, collapse whitespace.
pub fn normalize_answer(text: &str) -> String {
    let lowered = text.to_lowercase();
    let without_punctuation: String = lowered
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    let without_articles = ARTICLES.replace_all(&without_punctuation, " ");
    python_split(&without_articles)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squad_normalisation() {
        assert_eq!(normalize_answer("The  Eiffel-Tower!"), "eiffeltower");
        assert_eq!(normalize_answer("an apple, a pear"), "apple pear");
        // Articles inside words stay.
        assert_eq!(normalize_answer("Theatre and anthem"), "theatre and anthem");
        assert_eq!(normalize_answer("  \t\n"), "");
    }

    #[test]
    fn python_whitespace_includes_ascii_separators() {
        let pieces: Vec<&str> = python_split("a\u{1f}b\u{a0} c\n").collect();
        assert_eq!(pieces, vec!["a", "b", "c"]);
    }
}
