//! Word tokenizers: rouge-score's tokenizer (with its Porter stemming rule) and a `\w+`
//! tokenizer with stemming for strategies.
use once_cell::sync::Lazy;
use regex::Regex;
use std::cell::RefCell;
use std::collections::HashMap;

use super::porter;

/// Stemmed forms are cached per thread; the cache is dropped when it grows past this many words
/// so a long run over a huge vocabulary cannot grow memory without bound.
const STEM_CACHE_LIMIT: usize = 200_000;

thread_local! {
    static STEM_CACHE: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// Porter stem (NLTK_EXTENSIONS mode) through a per-thread cache.
pub fn stem_cached(word: &str) -> String {
    STEM_CACHE.with(|cache| {
        if let Some(hit) = cache.borrow().get(word) {
            return hit.clone();
        }
        let stemmed = porter::stem(word);
        let mut cache = cache.borrow_mut();
        if cache.len() >= STEM_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(word.to_string(), stemmed.clone());
        stemmed
    })
}

/// rouge-score 0.1.2's `tokenize(text, stemmer)`: lowercase, every run of characters outside
/// `[a-z0-9]` becomes a separator, and tokens longer than 3 characters are Porter-stemmed.
pub fn rouge_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(|t| {
            if t.len() > 3 {
                stem_cached(t)
            } else {
                t.to_string()
            }
        })
        .collect()
}

static WORD: Lazy<Regex> = Lazy::new(|| Regex::new(r"\w+").expect("static regex"));

/// Lowercased `\w+` words (Unicode), each Porter-stemmed: the word view strategies use for
/// n-gram overlap and diversity.
pub fn tokenize_words_stemmed(text: &str) -> Vec<String> {
    let lowered = text.to_lowercase();
    WORD.find_iter(&lowered)
        .map(|m| stem_cached(m.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rouge_tokens_follow_rouge_score() {
        // "u.s." splits at the dots; "could" (5 chars) is stemmed, "for" (3 chars) is not.
        assert_eq!(
            rouge_tokens("U.S. could be Target for terrorist attacks!"),
            vec![
                "u",
                "s",
                "could",
                "be",
                "target",
                "for",
                "terrorist",
                "attack"
            ]
        );
        // Non-ASCII letters are separators; digits stay.
        assert_eq!(
            rouge_tokens("Résumé 12/28 naïve"),
            vec!["r", "sum", "12", "28", "na", "ve"]
        );
        assert!(rouge_tokens(" ... ").is_empty());
    }

    #[test]
    fn stemmed_words_use_unicode_word_characters() {
        assert_eq!(
            tokenize_words_stemmed("Running, runs; café_bars"),
            vec!["run", "run", "café_bar"]
        );
    }
}

/// Gives each distinct token a small integer, in order of first sight, so that n-gram
/// counting and LCS compare integers instead of strings (one interner per segment).
#[derive(Default)]
pub(crate) struct TokenInterner {
    ids: HashMap<String, u32>,
}

impl TokenInterner {
    pub(crate) fn ids_of(&mut self, tokens: Vec<String>) -> Vec<u32> {
        tokens
            .into_iter()
            .map(|t| {
                let next = self.ids.len() as u32;
                *self.ids.entry(t).or_insert(next)
            })
            .collect()
    }
}
