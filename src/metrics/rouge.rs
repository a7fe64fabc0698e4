//! ROUGE-N, ROUGE-L and ROUGE-Lsum exactly as Google's rouge-score 0.1.2 computes them with
//! `use_stemmer=True` (rouge_scorer.py): same tokenizer, same LCS tie-breaking in the
//! summary-level union LCS, and multi-reference scoring by `score_multi` (the reference with
//! the highest F1 wins). All values are in [0, 1].
use std::collections::HashMap;

use super::tokenize::{rouge_tokens, TokenInterner};

/// Precision, recall and F1 of one ROUGE comparison, each in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RougeScore {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

impl RougeScore {
    const ZERO: RougeScore = RougeScore {
        precision: 0.0,
        recall: 0.0,
        fmeasure: 0.0,
    };

    fn from_precision_recall(precision: f64, recall: f64) -> Self {
        // rouge-score's scoring.fmeasure.
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        RougeScore {
            precision,
            recall,
            fmeasure,
        }
    }
}

/// Which ROUGE variant: `rouge1`, `rouge2`, … (n-gram overlap), `rougeL` (LCS over the whole
/// text) or `rougeLsum` (summary-level LCS over newline-separated sentences).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RougeType {
    N(usize),
    L,
    Lsum,
}

impl RougeType {
    /// Parse rouge-score's names: `rouge1`..`rouge9`, `rougeL`, `rougeLsum`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "rougeL" => Some(RougeType::L),
            "rougeLsum" => Some(RougeType::Lsum),
            _ => {
                let digits = name.strip_prefix("rouge")?;
                let n: usize = digits.parse().ok()?;
                (digits.len() == 1 && n > 0).then_some(RougeType::N(n))
            }
        }
    }
}

/// A text tokenized once, as interned token ids, whole and per newline-separated sentence.
struct Tokenized {
    tokens: Vec<u32>,
    sentences: Vec<Vec<u32>>,
}

/// ROUGE's tokens of `text`: one list, or one per non-empty line for rougeLsum.
fn tokenize(interner: &mut TokenInterner, text: &str, rouge_type: RougeType) -> Tokenized {
    match rouge_type {
        RougeType::Lsum => Tokenized {
            tokens: Vec::new(),
            // rouge-score: `text.split("\n")`, keeping non-empty lines.
            sentences: text
                .split('\n')
                .filter(|s| !s.is_empty())
                .map(|s| interner.ids_of(rouge_tokens(s)))
                .collect(),
        },
        _ => Tokenized {
            tokens: interner.ids_of(rouge_tokens(text)),
            sentences: Vec::new(),
        },
    }
}

/// ROUGE of one prediction against one target (reference).
pub fn score(rouge_type: RougeType, target: &str, prediction: &str) -> RougeScore {
    score_multi(rouge_type, &[target], prediction)
}

/// rouge-score's `score_multi`: score against every target and keep the one with the highest
/// F1 (the first on ties). No targets gives zero.
pub fn score_multi<S: AsRef<str>>(
    rouge_type: RougeType,
    targets: &[S],
    prediction: &str,
) -> RougeScore {
    let mut interner = TokenInterner::default();
    let predicted = tokenize(&mut interner, prediction, rouge_type);
    let mut best: Option<RougeScore> = None;
    for target in targets {
        let target = tokenize(&mut interner, target.as_ref(), rouge_type);
        let s = score_tokenized(rouge_type, &target, &predicted);
        if best.is_none_or(|b| s.fmeasure > b.fmeasure) {
            best = Some(s);
        }
    }
    best.unwrap_or(RougeScore::ZERO)
}

/// F1 of [`score_multi`], the number the metric registry reports.
pub fn f1_multi<S: AsRef<str>>(rouge_type: RougeType, targets: &[S], prediction: &str) -> f64 {
    score_multi(rouge_type, targets, prediction).fmeasure
}

fn score_tokenized(
    rouge_type: RougeType,
    target: &Tokenized,
    prediction: &Tokenized,
) -> RougeScore {
    match rouge_type {
        RougeType::N(n) => score_ngrams(
            &ngram_counts(&target.tokens, n),
            &ngram_counts(&prediction.tokens, n),
        ),
        RougeType::L => score_lcs(&target.tokens, &prediction.tokens),
        RougeType::Lsum => summary_level_lcs(&target.sentences, &prediction.sentences),
    }
}

fn ngram_counts(tokens: &[u32], n: usize) -> HashMap<&[u32], u32> {
    let mut counts = HashMap::new();
    if tokens.len() >= n {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

fn score_ngrams(target: &HashMap<&[u32], u32>, prediction: &HashMap<&[u32], u32>) -> RougeScore {
    let overlap: u32 = target
        .iter()
        .map(|(gram, &count)| count.min(prediction.get(gram).copied().unwrap_or(0)))
        .sum();
    let target_total: u32 = target.values().sum();
    let prediction_total: u32 = prediction.values().sum();
    let precision = f64::from(overlap) / f64::from(prediction_total.max(1));
    let recall = f64::from(overlap) / f64::from(target_total.max(1));
    RougeScore::from_precision_recall(precision, recall)
}

/// Length of the longest common subsequence, in two rows of the DP table.
fn lcs_length(a: &[u32], b: &[u32]) -> usize {
    let mut previous = vec![0usize; b.len() + 1];
    let mut current = vec![0usize; b.len() + 1];
    for &x in a {
        for (j, &y) in b.iter().enumerate() {
            current[j + 1] = if x == y {
                previous[j] + 1
            } else {
                previous[j + 1].max(current[j])
            };
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

fn score_lcs(target: &[u32], prediction: &[u32]) -> RougeScore {
    if target.is_empty() || prediction.is_empty() {
        return RougeScore::ZERO;
    }
    let lcs = lcs_length(target, prediction) as f64;
    RougeScore::from_precision_recall(lcs / prediction.len() as f64, lcs / target.len() as f64)
}

/// rouge-score's `lcs_ind`: the reference positions of one LCS, read back from the full table
/// with its exact tie-breaking (move left only when the left cell is strictly larger).
fn lcs_indices(reference: &[u32], candidate: &[u32]) -> Vec<usize> {
    let cols = candidate.len() + 1;
    let mut table = vec![0u32; (reference.len() + 1) * cols];
    for i in 1..=reference.len() {
        for j in 1..=candidate.len() {
            table[i * cols + j] = if reference[i - 1] == candidate[j - 1] {
                table[(i - 1) * cols + j - 1] + 1
            } else {
                table[(i - 1) * cols + j].max(table[i * cols + j - 1])
            };
        }
    }
    let (mut i, mut j) = (reference.len(), candidate.len());
    let mut indices = Vec::new();
    while i > 0 && j > 0 {
        if reference[i - 1] == candidate[j - 1] {
            indices.push(i - 1);
            i -= 1;
            j -= 1;
        } else if table[i * cols + j - 1] > table[(i - 1) * cols + j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    indices.reverse();
    indices
}

/// Summary-level LCS (ROUGE paper section 3.2) with ROUGE-1.5.5's guard against counting a
/// token more often than it occurs on either side.
fn summary_level_lcs(references: &[Vec<u32>], candidates: &[Vec<u32>]) -> RougeScore {
    if references.is_empty() || candidates.is_empty() {
        return RougeScore::ZERO;
    }
    let m: usize = references.iter().map(Vec::len).sum();
    let n: usize = candidates.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return RougeScore::ZERO;
    }
    let mut reference_counts: HashMap<u32, usize> = HashMap::new();
    let mut candidate_counts: HashMap<u32, usize> = HashMap::new();
    for &t in references.iter().flatten() {
        *reference_counts.entry(t).or_insert(0) += 1;
    }
    for &t in candidates.iter().flatten() {
        *candidate_counts.entry(t).or_insert(0) += 1;
    }
    let mut hits = 0usize;
    for reference in references {
        let mut union: Vec<usize> = candidates
            .iter()
            .flat_map(|c| lcs_indices(reference, c))
            .collect();
        union.sort_unstable();
        union.dedup();
        for index in union {
            let token = reference[index];
            let in_candidate = candidate_counts.entry(token).or_insert(0);
            let in_reference = reference_counts.entry(token).or_insert(0);
            if *in_candidate > 0 && *in_reference > 0 {
                hits += 1;
                *in_candidate -= 1;
                *in_reference -= 1;
            }
        }
    }
    RougeScore::from_precision_recall(hits as f64 / n as f64, hits as f64 / m as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f1(kind: &str, target: &str, prediction: &str) -> f64 {
        score(RougeType::parse(kind).unwrap(), target, prediction).fmeasure
    }

    #[test]
    fn parses_rouge_names() {
        assert_eq!(RougeType::parse("rouge2"), Some(RougeType::N(2)));
        assert_eq!(RougeType::parse("rougeLsum"), Some(RougeType::Lsum));
        assert_eq!(RougeType::parse("rouge0"), None);
        assert_eq!(RougeType::parse("rouge12"), None);
        assert_eq!(RougeType::parse("bleu"), None);
    }

    #[test]
    fn ngram_overlap_counts_clipped_matches() {
        // target: the cat sat (3 unigrams), prediction: the the cat (3): overlap the=1, cat=1.
        let s = score(RougeType::N(1), "the cat sat", "the the cat");
        assert!((s.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.recall - 2.0 / 3.0).abs() < 1e-12);
        // bigrams: {the cat, cat sat} vs {the the, the cat}: one match of two each.
        assert!((f1("rouge2", "the cat sat", "the the cat") - 0.5).abs() < 1e-12);
    }

    #[test]
    fn lcs_uses_order() {
        // LCS of "a b c d" and "b a d c" has length 2.
        let s = score(RougeType::L, "a b c d", "b a d c");
        assert!((s.fmeasure - 0.5).abs() < 1e-12);
        assert_eq!(f1("rougeL", "", "anything"), 0.0);
    }

    #[test]
    fn summary_level_lcs_unions_over_sentences() {
        // Sentence order does not matter at summary level, but does for plain rougeL.
        let lsum = f1("rougeLsum", "line one\nline two", "line two\nline one");
        assert!((lsum - 1.0).abs() < 1e-12);
        // LCS of "line one line two" and "line two line one" is 2 of 4 tokens.
        let l = f1("rougeL", "line one\nline two", "line two\nline one");
        assert!((l - 0.5).abs() < 1e-12);
    }

    #[test]
    fn multi_reference_takes_best_f1() {
        let refs = ["completely different", "holiday party"];
        assert_eq!(f1_multi(RougeType::N(1), &refs, "holiday party"), 1.0);
        assert_eq!(f1_multi::<&str>(RougeType::N(1), &[], "x"), 0.0);
    }
}
