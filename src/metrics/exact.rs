//! Exact-match metrics and GSM8K answer accuracy. Every value is 0 or 1 per example.
use anyhow::{bail, Result};
use once_cell::sync::Lazy;
use regex::Regex;

use super::normalize::normalize_answer;

/// 1 when the prediction equals any reference after SQuAD normalisation (lowercase, no ASCII
/// punctuation, no articles a/an/the, single spaces), else 0.
pub fn exact_match<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    let predicted = normalize_answer(prediction);
    let hit = references
        .iter()
        .any(|r| normalize_answer(r.as_ref()) == predicted);
    f64::from(u8::from(hit))
}

/// 1 when the prediction equals any reference character for character, ignoring only leading
/// and trailing whitespace (generations usually end with a newline or space), else 0.
pub fn exact_match_strict<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    let predicted = prediction.trim();
    let hit = references.iter().any(|r| r.as_ref().trim() == predicted);
    f64::from(u8::from(hit))
}

static NUMBER: Lazy<Regex> = Lazy::new(|| {
    Regex::new(r"[-−]?\$?(?:[0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+)").expect("static regex")
});

/// Canonical form of a number, so equal values compare equal: no `,` or `$`, an ASCII minus,
/// no leading zeros, no trailing fractional zeros (`18.00` → `18`, `3.50` → `3.5`,
/// `.5` → `0.5`, `-0` → `0`).
fn canonical_number(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .filter(|c| !matches!(c, ',' | '$'))
        .map(|c| if c == '−' { '-' } else { c })
        .collect();
    let cleaned = cleaned.trim().trim_end_matches('.');
    let (negative, digits) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, cleaned),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        // Not a plain number (text after `####`): compared as written.
        return cleaned.to_string();
    }
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let mut out = if whole.is_empty() { "0" } else { whole }.to_string();
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
    if negative && out != "0" {
        out.insert(0, '-');
    }
    out
}

/// The final answer of a GSM8K-style solution: the first number after the first `####` (or
/// the text after it when it holds no number), else the last number anywhere in the text.
/// `None` when there is neither. The first `####`, as OpenAI's and lm-eval's extractors take:
/// a model that answers and then invents another question with its own `####` is scored on
/// its answer.
pub fn gsm8k_answer(text: &str) -> Option<String> {
    if let Some(position) = text.find("####") {
        let tail = &text[position + 4..];
        if let Some(number) = NUMBER.find(tail) {
            return Some(canonical_number(number.as_str()));
        }
        let rest = canonical_number(tail.lines().next().unwrap_or(""));
        if !rest.is_empty() {
            return Some(rest);
        }
    }
    NUMBER
        .find_iter(text)
        .last()
        .map(|m| canonical_number(m.as_str()))
}

/// 1 when the prediction's GSM8K answer equals the answer of any reference, else 0. A reference
/// without an answer is an error (the data is wrong, not the model).
pub fn gsm8k_accuracy<S: AsRef<str>>(prediction: &str, references: &[S]) -> Result<f64> {
    let predicted = gsm8k_answer(prediction);
    let mut hit = false;
    for reference in references {
        let Some(expected) = gsm8k_answer(reference.as_ref()) else {
            bail!(
                "reference {:?} has no answer: expected `#### <number>` or a number in the text",
                reference.as_ref()
            );
        };
        hit |= predicted.as_deref() == Some(expected.as_str());
    }
    Ok(f64::from(u8::from(hit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match_normalises_case_punctuation_and_articles() {
        assert_eq!(exact_match("The Eiffel Tower.", &["eiffel tower"]), 1.0);
        assert_eq!(exact_match("an  apple", &["Apple!"]), 1.0);
        assert_eq!(exact_match("apples", &["apple", "pear"]), 0.0);
        assert_eq!(exact_match("pear", &["apple", "a pear"]), 1.0);
        assert_eq!(exact_match::<&str>("pear", &[]), 0.0);
    }

    #[test]
    fn strict_match_only_ignores_surrounding_whitespace() {
        assert_eq!(exact_match_strict("Paris\n", &["Paris"]), 1.0);
        assert_eq!(exact_match_strict("paris", &["Paris"]), 0.0);
        assert_eq!(exact_match_strict("Paris.", &["Paris"]), 0.0);
    }

    #[test]
    fn gsm8k_answers_are_extracted_and_canonicalised() {
        let gold = "She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18";
        assert_eq!(gsm8k_answer(gold).as_deref(), Some("18"));
        assert_eq!(
            gsm8k_answer("so the answer is $1,250.00.").as_deref(),
            Some("1250")
        );
        assert_eq!(gsm8k_answer("#### -3.50").as_deref(), Some("-3.5"));
        for (written, canonical) in [
            ("#### 3.50", "3.5"),
            ("#### .5", "0.5"),
            ("#### -0", "0"),
            ("#### 05", "5"),
            ("#### −3", "-3"),
            ("#### 0.0", "0"),
            ("#### 1,000.10", "1000.1"),
        ] {
            assert_eq!(
                gsm8k_answer(written).as_deref(),
                Some(canonical),
                "{written}"
            );
        }
        // The first `####` is the answer; what a model invents after it is not.
        let rambling = "clips in May.\n#### 72\n\nQuestion: Weng earns $12\nAnswer: 10\n#### 10";
        assert_eq!(gsm8k_answer(rambling).as_deref(), Some("72"));
        assert_eq!(gsm8k_answer("5 apples and 7 pears").as_deref(), Some("7"));
        assert_eq!(gsm8k_answer("no numbers here"), None);
    }

    #[test]
    fn gsm8k_accuracy_compares_answers() {
        let gold = ["Janet sells 9 eggs.\n#### 18"];
        assert_eq!(
            gsm8k_accuracy("She makes $18.00 per day.", &gold).unwrap(),
            1.0
        );
        assert_eq!(gsm8k_accuracy("#### 18.0", &gold).unwrap(), 1.0);
        assert_eq!(gsm8k_accuracy("The answer is 19", &gold).unwrap(), 0.0);
        assert_eq!(gsm8k_accuracy("I don't know", &gold).unwrap(), 0.0);
        // The last number wins when there is no ####.
        assert_eq!(gsm8k_accuracy("18 is wrong, it is 20", &gold).unwrap(), 0.0);
        let err = gsm8k_accuracy("18", &["no answer"]).unwrap_err();
        assert!(err.to_string().contains("has no answer"), "{err}");
    }
}
