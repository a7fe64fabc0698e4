//! Text helpers for scripts: words, stems, n-grams, sentence BLEU and ROUGE, counts over
//! stemmed documents, and the lexical support measures HADAS uses (how much of an output is
//! absent from its input).
use crate::metrics::rouge::{score_multi, RougeType};
use crate::strategy::context::{Ctx, GenerationsRef, View};
use crate::strategy::kernel_api::timed;
use crate::strategy::sandbox::within_data_limits;
use crate::strategy::types::{array_to_strings, strings_to_array, FloatVec, RhaiResult};
use once_cell::sync::Lazy;
use regex::Regex;
use rhai::{Array, Dynamic, Engine, NativeCallContext, INT};
use std::collections::HashSet;
use std::sync::Arc;

static WORD: Lazy<Regex> = Lazy::new(|| Regex::new(r"\w+").expect("static regex"));

/// Per document, its (stemmed) words.
#[derive(Clone, Debug)]
pub struct Docs(pub Arc<Vec<Vec<String>>>);

/// Lowercase `\w+` tokens.
pub fn words(text: &str) -> Vec<String> {
    WORD.find_iter(&text.to_lowercase())
        .map(|m| m.as_str().to_string())
        .collect()
}

/// Space-joined n-grams of order `n`.
pub fn ngrams(words: &[String], n: usize) -> Vec<String> {
    if n == 0 || words.len() < n {
        return Vec::new();
    }
    words.windows(n).map(|w| w.join(" ")).collect()
}

/// English function words (NLTK's list), removed before counting content words.
#[rustfmt::skip]
const STOP_WORDS: &[&str] = &[
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours",
    "yourself", "yourselves", "he", "him", "his", "himself", "she", "her", "hers", "herself",
    "it", "its", "itself", "they", "them", "their", "theirs", "themselves", "what", "which",
    "who", "whom", "this", "that", "these", "those", "am", "is", "are", "was", "were", "be",
    "been", "being", "have", "has", "had", "having", "do", "does", "did", "doing", "a", "an",
    "the", "and", "but", "if", "or", "because", "as", "until", "while", "of", "at", "by", "for",
    "with", "about", "against", "between", "into", "through", "during", "before", "after",
    "above", "below", "to", "from", "up", "down", "in", "out", "on", "off", "over", "under",
    "again", "further", "then", "once", "here", "there", "when", "where", "why", "how", "all",
    "any", "both", "each", "few", "more", "most", "other", "some", "such", "no", "nor", "not",
    "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will", "just", "don",
    "should", "now",
];

static STOP: Lazy<HashSet<&'static str>> = Lazy::new(|| STOP_WORDS.iter().copied().collect());

pub fn is_stop_word(w: &str) -> bool {
    STOP.contains(w)
}

/// Fraction of the hypothesis' content words (stemmed, stop words removed) absent from the
/// source; 0 for a hypothesis without content words.
pub fn novel_content_fraction(
    host_stem: &dyn Fn(&str) -> Vec<String>,
    hyp: &str,
    src: &str,
) -> f64 {
    let keep = |t: &str| -> Vec<String> {
        words(t)
            .into_iter()
            .filter(|w| !is_stop_word(w))
            .flat_map(|w| host_stem(&w))
            .collect()
    };
    let h = keep(hyp);
    if h.is_empty() {
        return 0.0;
    }
    let s: HashSet<String> = keep(src).into_iter().collect();
    h.iter().filter(|w| !s.contains(*w)).count() as f64 / h.len() as f64
}

/// Fraction of the hypothesis' stemmed bigrams absent from the source; 0 without bigrams.
pub fn novel_bigram_fraction(host_stem: &dyn Fn(&str) -> Vec<String>, hyp: &str, src: &str) -> f64 {
    let h = ngrams(&host_stem(hyp), 2);
    if h.is_empty() {
        return 0.0;
    }
    let s: HashSet<String> = ngrams(&host_stem(src), 2).into_iter().collect();
    h.iter().filter(|g| !s.contains(*g)).count() as f64 / h.len() as f64
}

/// A lexical novelty measure of a hypothesis against its source, given a stemmer.
type Novelty = fn(&dyn Fn(&str) -> Vec<String>, &str, &str) -> f64;

fn pairwise(c: &Ctx, hyps: &Array, srcs: &Array, what: &str, f: Novelty) -> RhaiResult<FloatVec> {
    let h = array_to_strings(hyps, what)?;
    let s = array_to_strings(srcs, what)?;
    pairwise_texts(c, h, s, what, f)
}

fn pairwise_texts(
    c: &Ctx,
    h: Vec<String>,
    s: Vec<String>,
    what: &str,
    f: Novelty,
) -> RhaiResult<FloatVec> {
    if h.len() != s.len() {
        return Err(format!("{what}: {} hypotheses for {} sources", h.len(), s.len()).into());
    }
    let host = c.host();
    let stem = |t: &str| host.stem_words(t);
    Ok(FloatVec::new(timed(|| {
        h.iter().zip(&s).map(|(a, b)| f(&stem, a, b)).collect()
    })))
}

/// Per document, the fraction of its distinct n-grams that no document of `seen` has; 0 for a
/// document with no n-gram of order `n`.
pub fn novel_ngram_fraction(docs: &[Vec<String>], seen: &[Vec<String>], n: usize) -> Vec<f64> {
    let known: HashSet<String> = seen.iter().flat_map(|d| ngrams(d, n)).collect();
    docs.iter()
        .map(|d| {
            let own: HashSet<String> = ngrams(d, n).into_iter().collect();
            if own.is_empty() {
                0.0
            } else {
                own.iter().filter(|g| !known.contains(*g)).count() as f64 / own.len() as f64
            }
        })
        .collect()
}

fn rouge_type(kind: &str) -> RhaiResult<RougeType> {
    RougeType::parse(kind).ok_or_else(|| {
        format!("rouge: unknown kind `{kind}`: use rouge1 … rouge9, rougeL or rougeLsum").into()
    })
}

/// A reference argument: one string, or an array of strings (the best F1 counts).
fn references(r: &Dynamic, what: &str) -> RhaiResult<Vec<String>> {
    if let Some(s) = r.clone().try_cast::<rhai::ImmutableString>() {
        return Ok(vec![s.to_string()]);
    }
    match r.clone().try_cast::<Array>() {
        Some(a) => array_to_strings(&a, what),
        None => Err(format!(
            "{what}: a reference is a string or an array of strings, not {}",
            r.type_name()
        )
        .into()),
    }
}

/// The first sample of each item of `gen` and the inputs of `view`: a whole pool's texts stay
/// on the host side, where an array of them handed to the script could exceed the sandbox's
/// `max_string_size`, which counts an array's strings together.
fn outputs_and_inputs(gen: &GenerationsRef, view: &View) -> (Vec<String>, Vec<String>) {
    let outputs = gen
        .0
        .per_item
        .iter()
        .map(|s| s.first().map(|r| r.text.clone()).unwrap_or_default())
        .collect();
    (outputs, view.0.iter().map(|e| e.input.clone()).collect())
}

fn bertscore_precision(c: &Ctx, h: Vec<String>, r: Vec<String>) -> RhaiResult<FloatVec> {
    if h.len() != r.len() {
        return Err(format!(
            "bertscore_precision: {} hypotheses for {} references",
            h.len(),
            r.len()
        )
        .into());
    }
    c.host()
        .bertscore_precision(&h, &r)
        .map(FloatVec::new)
        .map_err(|e| format!("bertscore_precision failed: {e:#}").into())
}

pub fn register(engine: &mut Engine) {
    register_support_measures(engine);
    engine.register_type_with_name::<Docs>("Docs");
    engine
        .register_fn("words", |cx: NativeCallContext, t: &str| {
            within_data_limits(&cx, strings_to_array(&words(t)))
        })
        .register_fn(
            "ngrams",
            |cx: NativeCallContext, w: Array, n: INT| -> RhaiResult<Array> {
                let w = array_to_strings(&w, "ngrams")?;
                within_data_limits(&cx, strings_to_array(&ngrams(&w, n.max(0) as usize)))
            },
        )
        .register_fn("len", |d: &mut Docs| d.0.len() as INT)
        // Words per document.
        .register_fn("lengths", |d: &mut Docs| {
            FloatVec::new(d.0.iter().map(|w| w.len() as f64).collect())
        })
        .register_fn(
            "novel_ngram_fraction",
            |d: &mut Docs, seen: Docs, n: INT| -> RhaiResult<FloatVec> {
                if n < 1 {
                    return Err(format!("novel_ngram_fraction: n = {n}, must be at least 1").into());
                }
                Ok(FloatVec::new(timed(|| {
                    novel_ngram_fraction(&d.0, &seen.0, n as usize)
                })))
            },
        )
        // rouge-score's F1 (with its stemmer, as the rouge metrics), best over the references.
        .register_fn(
            "rouge",
            |_c: &mut Ctx, kind: &str, hyp: &str, refs: Dynamic| -> RhaiResult<f64> {
                let refs = references(&refs, "rouge")?;
                Ok(score_multi(rouge_type(kind)?, &refs, hyp).fmeasure)
            },
        )
        // Pairwise: `refs[i]` (a string or an array of strings) for `hyps[i]`.
        .register_fn(
            "rouge",
            |_c: &mut Ctx, kind: &str, hyps: Array, refs: Array| -> RhaiResult<FloatVec> {
                let kind = rouge_type(kind)?;
                let h = array_to_strings(&hyps, "rouge")?;
                if h.len() != refs.len() {
                    return Err(format!(
                        "rouge: {} hypotheses for {} references",
                        h.len(),
                        refs.len()
                    )
                    .into());
                }
                let r = refs
                    .iter()
                    .map(|r| references(r, "rouge"))
                    .collect::<RhaiResult<Vec<_>>>()?;
                Ok(FloatVec::new(timed(|| {
                    h.iter()
                        .zip(&r)
                        .map(|(h, r)| score_multi(kind, r, h).fmeasure)
                        .collect()
                })))
            },
        )
        .register_fn("stem", |cx: NativeCallContext, c: &mut Ctx, t: &str| {
            within_data_limits(&cx, strings_to_array(&c.host().stem_words(t)))
        })
        // Stemmed words of each input of the view (or of each text).
        .register_fn("stemmed", |c: &mut Ctx, v: View| {
            let h = c.host();
            Docs(Arc::new(
                v.0.iter().map(|e| h.stem_words(&e.input)).collect(),
            ))
        })
        .register_fn("stemmed", |c: &mut Ctx, t: Array| -> RhaiResult<Docs> {
            let h = c.host();
            let t = array_to_strings(&t, "stemmed")?;
            Ok(Docs(Arc::new(timed(|| {
                t.iter().map(|s| h.stem_words(s)).collect()
            }))))
        })
        .register_fn(
            "sentence_bleu",
            |c: &mut Ctx, hyp: &str, refs: Array| -> RhaiResult<f64> {
                let r = array_to_strings(&refs, "sentence_bleu")?;
                let r: Vec<&str> = r.iter().map(String::as_str).collect();
                Ok(c.host().sentence_bleu(hyp, &r))
            },
        )
        .register_fn("to_string", |d: &mut Docs| format!("Docs({})", d.0.len()))
        .register_fn("to_debug", |d: &mut Docs| format!("Docs({})", d.0.len()));
}

/// HADAS's measures of how much of an output its source supports, on arrays of texts or on
/// (generations, view): each item's first sample against its input.
fn register_support_measures(engine: &mut Engine) {
    engine
        .register_fn(
            "novel_content_fraction",
            |c: &mut Ctx, h: Array, s: Array| {
                pairwise(c, &h, &s, "novel_content_fraction", novel_content_fraction)
            },
        )
        .register_fn(
            "novel_content_fraction",
            |c: &mut Ctx, g: GenerationsRef, v: View| {
                let (h, s) = outputs_and_inputs(&g, &v);
                pairwise_texts(c, h, s, "novel_content_fraction", novel_content_fraction)
            },
        )
        .register_fn(
            "novel_bigram_fraction",
            |c: &mut Ctx, h: Array, s: Array| {
                pairwise(c, &h, &s, "novel_bigram_fraction", novel_bigram_fraction)
            },
        )
        .register_fn(
            "novel_bigram_fraction",
            |c: &mut Ctx, g: GenerationsRef, v: View| {
                let (h, s) = outputs_and_inputs(&g, &v);
                pairwise_texts(c, h, s, "novel_bigram_fraction", novel_bigram_fraction)
            },
        )
        .register_fn(
            "bertscore_precision",
            |c: &mut Ctx, h: Array, r: Array| -> RhaiResult<FloatVec> {
                let h = array_to_strings(&h, "bertscore_precision")?;
                let r = array_to_strings(&r, "bertscore_precision")?;
                bertscore_precision(c, h, r)
            },
        )
        .register_fn(
            "bertscore_precision",
            |c: &mut Ctx, g: GenerationsRef, v: View| -> RhaiResult<FloatVec> {
                let (h, r) = outputs_and_inputs(&g, &v);
                bertscore_precision(c, h, r)
            },
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_ngrams() {
        assert_eq!(
            words("Hello, World_2 it's"),
            ["hello", "world_2", "it", "s"]
        );
        let w: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(ngrams(&w, 2), ["a b", "b c"]);
        assert!(ngrams(&w, 4).is_empty());
    }

    #[test]
    fn novelty_counts_only_unsupported_content() {
        let stem = |t: &str| words(t);
        // "cats" and "sleep" are in the source; "dogs" is not; "the" is a stop word.
        let f = novel_content_fraction(&stem, "the cats sleep with dogs", "cats sleep all day");
        assert!((f - 1.0 / 3.0).abs() < 1e-12, "{f}");
        let b = novel_bigram_fraction(&stem, "cats sleep all", "cats sleep");
        assert!((b - 0.5).abs() < 1e-12, "{b}");
    }
}
