//! Length statistics in whitespace-separated words: how long predictions are, how long the
//! references are, and their ratio (a quick check for truncated or rambling generations).
use super::normalize::python_split;

/// Words in the prediction (whitespace-separated).
pub fn pred_words(prediction: &str) -> f64 {
    python_split(prediction).count() as f64
}

/// Mean number of words over the references (0 when there are none).
pub fn ref_words<S: AsRef<str>>(references: &[S]) -> f64 {
    if references.is_empty() {
        return 0.0;
    }
    let total: usize = references
        .iter()
        .map(|r| python_split(r.as_ref()).count())
        .sum();
    total as f64 / references.len() as f64
}

/// `pred_words / ref_words`; when the references are empty (0 words) the ratio is taken
/// against 1 word so an empty reference does not produce infinity.
pub fn length_ratio<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    pred_words(prediction) / ref_words(references).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_and_ratio() {
        assert_eq!(pred_words("  one two\nthree "), 3.0);
        assert_eq!(ref_words(&["a b", "a b c d"]), 3.0);
        assert_eq!(length_ratio("one two three", &["a b", "a b c d"]), 1.0);
        assert_eq!(length_ratio("one two", &[""]), 2.0);
        assert_eq!(ref_words::<&str>(&[]), 0.0);
    }
}
