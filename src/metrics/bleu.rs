//! BLEU exactly as sacrebleu 2.6 computes it: the `13a` tokenizer (tokenizer_13a.py and
//! tokenizer_re.py, regexes included), clipped n-gram counts with per-n-gram maximum over
//! references, closest reference length (shorter on ties), `exp` smoothing. Scores are in
//! [0, 100].
use once_cell::sync::Lazy;
use regex::Regex;
use std::collections::HashMap;

use super::normalize::python_split;
use super::tokenize::TokenInterner;

const MAX_NGRAM_ORDER: usize = 4;

/// tokenizer_re.py's substitutions, applied in order.
static RE_13A: Lazy<[(Regex, &'static str); 4]> = Lazy::new(|| {
    let compile = |pattern: &str| Regex::new(pattern).expect("static regex");
    [
        (compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), " ${1} "),
        (compile(r"([^0-9])([\.,])"), "${1} ${2} "),
        (compile(r"([\.,])([^0-9])"), " ${1} ${2}"),
        (compile(r"([0-9])(-)"), "${1} ${2} "),
    ]
});

/// sacrebleu's `Tokenizer13a` (mteval-v13a.pl): returns the tokens of one segment.
pub fn tokenize_13a(line: &str) -> Vec<String> {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut text = format!(" {line} ");
    for (re, replacement) in RE_13A.iter() {
        text = re.replace_all(&text, *replacement).into_owned();
    }
    python_split(&text).map(str::to_string).collect()
}

/// sacrebleu's `_preprocess_segment` without lowercasing: strip trailing whitespace, tokenize.
fn preprocess(segment: &str) -> Vec<String> {
    tokenize_13a(segment.trim_end_matches(super::normalize::is_python_space))
}

/// An n-gram of interned token ids, padded with `PAD` after its `n` tokens.
type Ngram = [u32; MAX_NGRAM_ORDER];
const PAD: u32 = u32::MAX;
type NgramCounts = HashMap<Ngram, usize>;

fn order(gram: &Ngram) -> usize {
    gram.iter().take_while(|&&t| t != PAD).count()
}

/// Counts of every n-gram of order 1 to 4, as sacrebleu's `extract_all_word_ngrams`.
fn ngram_counts(tokens: &[u32]) -> NgramCounts {
    let mut counts = NgramCounts::new();
    for n in 1..=MAX_NGRAM_ORDER {
        if tokens.len() >= n {
            for window in tokens.windows(n) {
                let mut gram = [PAD; MAX_NGRAM_ORDER];
                gram[..n].copy_from_slice(window);
                *counts.entry(gram).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Sufficient statistics of one segment: lengths and per-order matches and totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BleuStats {
    pub hyp_len: usize,
    pub ref_len: usize,
    pub correct: [usize; MAX_NGRAM_ORDER],
    pub total: [usize; MAX_NGRAM_ORDER],
}

impl BleuStats {
    fn add(&mut self, other: &BleuStats) {
        self.hyp_len += other.hyp_len;
        self.ref_len += other.ref_len;
        for n in 0..MAX_NGRAM_ORDER {
            self.correct[n] += other.correct[n];
            self.total[n] += other.total[n];
        }
    }
}

/// sacrebleu's `_get_closest_ref_len`: closest length to the hypothesis, the shorter on ties.
fn closest_ref_len(hyp_len: usize, ref_lens: &[usize]) -> usize {
    let mut best: Option<(usize, usize)> = None;
    for &len in ref_lens {
        let diff = hyp_len.abs_diff(len);
        best = match best {
            None => Some((diff, len)),
            Some((d, l)) if diff < d || (diff == d && len < l) => Some((diff, len)),
            keep => keep,
        };
    }
    best.map_or(0, |(_, len)| len)
}

/// Statistics of one hypothesis against its references (n-gram counts merged by maximum).
pub fn segment_stats<S: AsRef<str>>(hypothesis: &str, references: &[S]) -> BleuStats {
    let mut interner = TokenInterner::default();
    let mut ref_ngrams = NgramCounts::new();
    let mut ref_lens = Vec::with_capacity(references.len());
    for reference in references {
        let tokens = interner.ids_of(preprocess(reference.as_ref()));
        ref_lens.push(tokens.len());
        for (gram, count) in ngram_counts(&tokens) {
            let slot = ref_ngrams.entry(gram).or_insert(0);
            *slot = (*slot).max(count);
        }
    }
    let hyp_tokens = interner.ids_of(preprocess(hypothesis));
    let mut stats = BleuStats {
        hyp_len: hyp_tokens.len(),
        ref_len: closest_ref_len(hyp_tokens.len(), &ref_lens),
        ..BleuStats::default()
    };
    for (gram, count) in ngram_counts(&hyp_tokens) {
        let n = order(&gram) - 1;
        stats.total[n] += count;
        if let Some(&in_ref) = ref_ngrams.get(&gram) {
            stats.correct[n] += count.min(in_ref);
        }
    }
    stats
}

/// sacrebleu's `my_log`: log with log(0) floored to -9999999999.
fn floored_log(x: f64) -> f64 {
    if x == 0.0 {
        -9_999_999_999.0
    } else {
        x.ln()
    }
}

/// sacrebleu's `BLEU.compute_bleu` with `smooth_method="exp"`.
pub fn bleu_from_stats(stats: &BleuStats, effective_order: bool) -> f64 {
    let (sys_len, ref_len) = (stats.hyp_len, stats.ref_len);
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    if stats.correct.iter().all(|&c| c == 0) {
        return 0.0;
    }
    let mut precisions = [0.0f64; MAX_NGRAM_ORDER];
    let mut smooth_mteval = 1.0f64;
    let mut eff_order = MAX_NGRAM_ORDER;
    for n in 1..=MAX_NGRAM_ORDER {
        let (correct, total) = (stats.correct[n - 1], stats.total[n - 1]);
        if total == 0 {
            break;
        }
        if effective_order {
            eff_order = n;
        }
        precisions[n - 1] = if correct == 0 {
            smooth_mteval *= 2.0;
            100.0 / (smooth_mteval * total as f64)
        } else {
            100.0 * correct as f64 / total as f64
        };
    }
    let log_sum: f64 = precisions[..eff_order]
        .iter()
        .map(|&p| floored_log(p))
        .sum();
    bp * (log_sum / eff_order as f64).exp()
}

/// sacrebleu's `sentence_bleu(hyp, refs)` with its defaults (13a, exp smoothing, effective
/// order), in [0, 100].
pub fn sentence_bleu(hypothesis: &str, references: &[&str]) -> f64 {
    bleu_from_stats(&segment_stats(hypothesis, references), true)
}

/// sacrebleu's `corpus_bleu` with its defaults (13a, exp smoothing, no effective order), in
/// [0, 100]. `references[i]` holds every reference of hypothesis `i` (any number, as
/// sacrebleu allows with `None` in its reference streams).
pub fn corpus_bleu<H: AsRef<str>, R: AsRef<str>>(hypotheses: &[H], references: &[Vec<R>]) -> f64 {
    let stats: Vec<BleuStats> = hypotheses
        .iter()
        .zip(references)
        .map(|(hypothesis, refs)| segment_stats(hypothesis.as_ref(), refs))
        .collect();
    corpus_bleu_from_stats(&stats)
}

/// Corpus BLEU (no effective order) from per-segment statistics, in [0, 100].
pub fn corpus_bleu_from_stats(stats: &[BleuStats]) -> f64 {
    let mut total = BleuStats::default();
    for s in stats {
        total.add(s);
    }
    bleu_from_stats(&total, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> String {
        tokenize_13a(s).join(" ")
    }

    #[test]
    fn tokenizer_13a_matches_mteval_rules() {
        assert_eq!(toks("Hello, world!"), "Hello , world !");
        // Periods and commas between digits stay; a dash after a digit is split off.
        assert_eq!(
            toks("$5,000.00 on 10/30-01."),
            "$ 5,000.00 on 10 / 30 - 01 ."
        );
        // Apostrophes are kept; a period after a non-digit is split off.
        assert_eq!(toks("don't u.s."), "don't u . s .");
        assert_eq!(toks("a &amp; b &lt;c&gt;"), "a & b < c >");
        assert_eq!(toks("line-\nbreak\nhere <skipped>"), "linebreak here");
    }

    #[test]
    fn identical_sentences_score_100() {
        let s = sentence_bleu("the cat sat on the mat", &["the cat sat on the mat"]);
        assert!((s - 100.0).abs() < 1e-9);
    }

    #[test]
    fn no_match_scores_zero_and_closest_ref_breaks_ties_short() {
        assert_eq!(sentence_bleu("xyz", &["abc"]), 0.0);
        assert_eq!(closest_ref_len(4, &[6, 2, 5]), 5);
        assert_eq!(closest_ref_len(4, &[6, 2]), 2);
    }

    #[test]
    fn exp_smoothing_on_a_known_case() {
        // hyp "a b c" vs ref "a b d": 1-grams 2/3, 2-grams 1/2, 3-grams 0/1 → 100/(2*1).
        // Effective order 3, no brevity penalty.
        let expected = ((200.0f64 / 3.0).ln() + 50.0f64.ln() + 50.0f64.ln()) / 3.0;
        let s = sentence_bleu("a b c", &["a b d"]);
        assert!((s - expected.exp()).abs() < 1e-9, "{s}");
    }
}
