//! Whether a name a script used is a misspelling of a host name. The experiment file's
//! `did_you_mean` allows two edits even in a three-letter word, which offers `pool` for
//! `ctx.foo` and `log` for `ctx.foo()`: a script's names are short, so here an edit must be
//! paid for by three letters of the name.
use strsim::damerau_levenshtein;

/// Edits a name of `len` letters may be away from a host name and still read as a typo of it:
/// one per three letters, so `pol` → `pool` and `generat` → `generate`, but nothing for `foo`
/// or a one- or two-letter name.
fn allowed_edits(len: usize) -> usize {
    len / 3
}

/// The candidate nearest `word` (case ignored) within `allowed_edits`, the first on a tie.
pub fn nearest<'a, S: AsRef<str>>(word: &str, candidates: &'a [S]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let limit = allowed_edits(lower.chars().count());
    candidates
        .iter()
        .map(|c| {
            (
                damerau_levenshtein(&lower, &c.as_ref().to_lowercase()),
                c.as_ref(),
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A candidate that is a whole word at the start of `word` (`embed` for `embeddings`,
/// `generate` for `generated`): long enough (four letters) not to be a chance match.
pub fn stem_of<'a, S: AsRef<str>>(word: &str, candidates: &'a [S]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .iter()
        .map(AsRef::as_ref)
        .filter(|c| c.chars().count() >= 4 && lower.starts_with(&c.to_lowercase()))
        .max_by_key(|c| c.len())
}

/// Whether `candidate` starts as `word` does: with the same first three letters, where a short
/// first word and its underscore (`to_`, `is_`) do not count, so `to_flot` shares `to_flo`
/// with `to_float` and `to_vec` shares nothing with `to_int`: `to_` alone says only that both
/// convert.
pub fn same_start(word: &str, candidate: &str) -> bool {
    let lower = word.to_lowercase();
    let skip = match lower.find('_') {
        Some(at) if at < 3 => at + 1,
        _ => 0,
    };
    let head: String = lower.chars().take(skip + 3).collect();
    head.chars().count() == skip + 3 && candidate.to_lowercase().starts_with(&head)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: &[&str] = &["pool", "labeled", "k", "seed", "log", "generate", "embed"];

    #[test]
    fn a_short_name_is_not_matched_two_edits_away() {
        assert_eq!(nearest("foo", CTX), None);
        assert_eq!(nearest("x", CTX), None);
        assert_eq!(nearest("pol", CTX), Some("pool"));
        assert_eq!(nearest("generat", CTX), Some("generate"));
        assert_eq!(nearest("Labled", CTX), Some("labeled"));
    }

    #[test]
    fn a_host_name_at_the_start_of_the_word_is_its_stem() {
        assert_eq!(stem_of("embeddings", CTX), Some("embed"));
        assert_eq!(
            stem_of("logits", CTX),
            None,
            "`log` is too short to be a stem"
        );
        assert_eq!(stem_of("foo", CTX), None);
    }

    #[test]
    fn a_short_first_word_is_not_a_shared_start() {
        assert!(same_start("to_flot", "to_float"));
        assert!(!same_start("to_vec", "to_int"));
        assert!(!same_start("to_flot", "to_int"));
        assert!(same_start("argsrot", "argsort_desc"));
        assert!(
            !same_start("to", "to_int"),
            "too short to share three letters"
        );
        assert!(!same_start("is_", "is_empty"));
    }
}
