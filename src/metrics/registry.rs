//! Every metric by name, as experiment files and `lab metrics` refer to them.
//!
//! Scales: ROUGE, exact match, GSM8K accuracy and BERTScore are in [0, 1]; `sacrebleu` and
//! `sentence_bleu` are in [0, 100]; `pred_words` / `ref_words` are word counts and
//! `length_ratio` is a plain ratio.
use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::bertscore::{bertscore, TokenEmbedder};
use super::rouge::{f1_multi, RougeType};
use super::{bleu, exact, lengths};

/// Scores of one metric: the dataset-level value and one value per example.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricScores {
    /// Dataset-level value: the mean of `per_example`, except `sacrebleu` (corpus BLEU).
    pub corpus: f64,
    pub per_example: Vec<f64>,
}

/// A registered metric: its name, the range of its values and what it measures.
pub struct MetricInfo {
    pub name: &'static str,
    pub scale: &'static str,
    pub about: &'static str,
    /// Whether each example needs at least one reference.
    needs_references: bool,
}

const fn info(
    name: &'static str,
    scale: &'static str,
    about: &'static str,
    needs_references: bool,
) -> MetricInfo {
    MetricInfo {
        name,
        scale,
        about,
        needs_references,
    }
}

const METRICS: &[MetricInfo] = &[
    info(
        "exact_match",
        "0-1",
        "SQuAD-normalised exact match, best reference",
        true,
    ),
    info(
        "exact_match_strict",
        "0-1",
        "exact string match (surrounding whitespace ignored)",
        true,
    ),
    info(
        "gsm8k_accuracy",
        "0-1",
        "final numeric answer (after the first ####, else the last number) matches",
        true,
    ),
    info(
        "rouge1",
        "0-1",
        "ROUGE-1 F1 (rouge-score: Porter stemmer, ASCII letters and digits only), best reference",
        true,
    ),
    info(
        "rouge2",
        "0-1",
        "ROUGE-2 F1 (rouge-score: Porter stemmer, ASCII letters and digits only), best reference",
        true,
    ),
    info(
        "rougeL",
        "0-1",
        "ROUGE-L F1 (rouge-score: Porter stemmer, ASCII letters and digits only), best reference",
        true,
    ),
    info(
        "rougeLsum",
        "0-1",
        "ROUGE-Lsum F1 over newline-split sentences (ASCII letters and digits only)",
        true,
    ),
    info(
        "sacrebleu",
        "0-100",
        "corpus BLEU (sacrebleu 13a, exp smoothing)",
        true,
    ),
    info(
        "sentence_bleu",
        "0-100",
        "mean sentence BLEU (sacrebleu, effective order)",
        true,
    ),
    info(
        "bertscore_minilm",
        "0-1",
        "BERTScore F1, all-MiniLM-L6-v2 last layer, no idf or rescaling, texts cut at 512 word pieces (as bert_score)",
        true,
    ),
    info(
        "llm_judge",
        "1-5",
        "G-Eval style score by an LLM judge ([eval.judge]); computed by the runner",
        true,
    ),
    info(
        "pred_words",
        "words",
        "mean number of words in predictions",
        false,
    ),
    info(
        "ref_words",
        "words",
        "mean number of words in references",
        false,
    ),
    info(
        "length_ratio",
        "ratio",
        "mean of prediction words / reference words",
        false,
    ),
];

const NAMES: &[&str] = &[
    "exact_match",
    "exact_match_strict",
    "gsm8k_accuracy",
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeLsum",
    "sacrebleu",
    "sentence_bleu",
    "bertscore_minilm",
    "llm_judge",
    "pred_words",
    "ref_words",
    "length_ratio",
];

/// Refuse, before any training, references a metric cannot score: every test reference
/// needs a GSM8K answer for `gsm8k_accuracy`. `source` names where the rows came from.
/// Returns warnings about references a metric would silently score 0: ROUGE reads ASCII
/// letters and digits only (as rouge-score), so text in other scripts has no tokens.
pub fn check_references(
    metrics: &[String],
    test: &[crate::data::Example],
    source: &str,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if let Some(rouge) = metrics.iter().find(|m| m.starts_with("rouge")) {
        let references: Vec<&String> = test.iter().flat_map(|e| &e.references).collect();
        let tokenless = references
            .iter()
            .filter(|r| !r.trim().is_empty() && super::tokenize::rouge_tokens(r).is_empty())
            .count();
        if tokenless > 0 {
            warnings.push(format!(
                "{tokenless} of {} test references ({source}) have no ASCII letters or digits, \
                 all that `{rouge}` reads (as rouge-score does): their ROUGE is 0 whatever the \
                 model writes. For text in other scripts use sentence_bleu, sacrebleu or \
                 bertscore_minilm",
                references.len()
            ));
        }
    }
    if !metrics.iter().any(|m| m == "gsm8k_accuracy") {
        return Ok(warnings);
    }
    for example in test {
        if let Some(bad) = example
            .references
            .iter()
            .find(|r| exact::gsm8k_answer(r).is_none())
        {
            bail!(
                "metric `gsm8k_accuracy`: test example id {} ({source}) has the reference {:?} \
                 with no answer in it; it needs `#### <number>` or a number. Fix that row, \
                 point data.reference_fields at the answer, or drop the metric",
                example.id,
                bad.chars().take(80).collect::<String>()
            );
        }
    }
    Ok(warnings)
}

/// Every registered metric name.
pub fn names() -> &'static [&'static str] {
    NAMES
}

/// Whether `name` is a registered metric.
pub fn is_known(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Name, scale and description of a registered metric.
pub fn info_of(name: &str) -> Option<&'static MetricInfo> {
    METRICS.iter().find(|m| m.name == name)
}

/// The registered name closest to `name` (edit distance, case-insensitive).
pub fn nearest_name(name: &str) -> &'static str {
    let lowered = name.to_lowercase();
    NAMES
        .iter()
        .copied()
        .min_by_key(|known| strsim::levenshtein(&lowered, &known.to_lowercase()))
        .unwrap_or(NAMES[0])
}

fn unknown(name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "unknown metric `{name}`; did you mean `{}`? Known metrics: {}",
        nearest_name(name),
        NAMES.join(", ")
    )
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Compute metric `name` over aligned predictions and references (`references[i]` holds every
/// reference of example `i`). `embedder` is needed only by `bertscore_minilm`.
pub fn compute(
    name: &str,
    predictions: &[String],
    references: &[Vec<String>],
    embedder: Option<&dyn TokenEmbedder>,
) -> Result<MetricScores> {
    let metric = info_of(name).ok_or_else(|| unknown(name))?;
    if predictions.len() != references.len() {
        bail!(
            "metric `{name}`: {} predictions but {} reference lists; they must be aligned one to one",
            predictions.len(),
            references.len()
        );
    }
    if metric.needs_references {
        if let Some(row) = references.iter().position(Vec::is_empty) {
            bail!("metric `{name}`: example {row} (0-based) has no reference; every example needs at least one");
        }
    }
    let per_example = |f: &(dyn Fn(&str, &[String]) -> f64 + Sync)| -> Vec<f64> {
        predictions
            .par_iter()
            .zip(references.par_iter())
            .map(|(p, r)| f(p, r))
            .collect()
    };
    let mut corpus_bleu: Option<f64> = None;
    let per_example: Vec<f64> = match name {
        "exact_match" => per_example(&|p, r| exact::exact_match(p, r)),
        "exact_match_strict" => per_example(&|p, r| exact::exact_match_strict(p, r)),
        "gsm8k_accuracy" => predictions
            .iter()
            .zip(references)
            .enumerate()
            .map(|(row, (p, r))| {
                exact::gsm8k_accuracy(p, r)
                    .with_context(|| format!("metric `gsm8k_accuracy`, example {row} (0-based)"))
            })
            .collect::<Result<_>>()?,
        "rouge1" | "rouge2" | "rougeL" | "rougeLsum" => {
            let kind = RougeType::parse(name).ok_or_else(|| unknown(name))?;
            per_example(&|p, r| f1_multi(kind, r, p))
        }
        "sacrebleu" | "sentence_bleu" => {
            // Tokenize once: the same statistics give sentence and corpus BLEU.
            let stats: Vec<bleu::BleuStats> = predictions
                .par_iter()
                .zip(references.par_iter())
                .map(|(p, r)| bleu::segment_stats(p, r))
                .collect();
            if name == "sacrebleu" {
                corpus_bleu = Some(bleu::corpus_bleu_from_stats(&stats));
            }
            stats
                .iter()
                .map(|s| bleu::bleu_from_stats(s, true))
                .collect()
        }
        "bertscore_minilm" => {
            let embedder = embedder.context(
                "metric `bertscore_minilm` needs the MiniLM encoder's token embeddings, but no \
                 embedder was given; pass one (the encoder implements metrics::TokenEmbedder) \
                 or drop the metric",
            )?;
            bertscore(embedder, predictions, references)?
        }
        "llm_judge" => bail!(
            "metric `llm_judge` asks an LLM to score each prediction: the runner computes it \
             from the experiment's [eval.judge] table (it needs the inputs too), so it cannot \
             be computed here"
        ),
        "pred_words" => per_example(&|p, _| lengths::pred_words(p)),
        "ref_words" => per_example(&|_, r| lengths::ref_words(r)),
        "length_ratio" => per_example(&|p, r| lengths::length_ratio(p, r)),
        _ => return Err(unknown(name)),
    };
    let corpus = corpus_bleu.unwrap_or_else(|| mean(&per_example));
    Ok(MetricScores {
        corpus,
        per_example,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// References ROUGE cannot read (no ASCII letters or digits) are counted in a warning;
    /// other metrics, and readable references, give none.
    #[test]
    fn references_rouge_cannot_read_are_warned_about() {
        let example = |id, reference: &str| crate::data::Example {
            id,
            input: "x".into(),
            output: reference.into(),
            references: vec![reference.into()],
        };
        let test = vec![
            example(1, "我喜欢猫"),
            example(2, "Café au lait"),
            example(3, "🙂"),
        ];
        let warnings = check_references(&strings(&["rougeL"]), &test, "t.jsonl").unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("2 of 3 test references (t.jsonl)")
                && warnings[0].contains("`rougeL`"),
            "{warnings:?}"
        );
        assert!(check_references(&strings(&["sentence_bleu"]), &test, "t")
            .unwrap()
            .is_empty());
        assert!(check_references(&strings(&["rouge1"]), &test[1..2], "t")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn every_name_has_info_and_computes() {
        assert_eq!(names().len(), METRICS.len());
        assert!(names().iter().zip(METRICS).all(|(n, m)| *n == m.name));
        let preds = strings(&["the 3 cats sat", "#### 4"]);
        let refs = vec![
            strings(&["the 3 cats sat"]),
            strings(&["2 + 2 = 4\n#### 4"]),
        ];
        for name in names() {
            assert!(is_known(name));
            assert!(info_of(name).is_some(), "{name} has no info");
            if *name == "bertscore_minilm" {
                continue;
            }
            if *name == "llm_judge" {
                // Needs the inputs and a judge LLM: the runner computes it, this says so.
                let err = compute(name, &preds, &refs, None).unwrap_err().to_string();
                assert!(err.contains("[eval.judge]"), "{err}");
                continue;
            }
            let scores = compute(name, &preds, &refs, None).unwrap();
            assert_eq!(scores.per_example.len(), 2, "{name}");
        }
    }

    #[test]
    fn corpus_is_mean_or_corpus_bleu() {
        let preds = strings(&["a b c", "x y"]);
        let refs = vec![strings(&["a b c"]), strings(&["p q"])];
        let em = compute("exact_match", &preds, &refs, None).unwrap();
        assert_eq!(em.per_example, vec![1.0, 0.0]);
        assert_eq!(em.corpus, 0.5);
        let bleu = compute("sacrebleu", &preds, &refs, None).unwrap();
        assert!((bleu.corpus - bleu::corpus_bleu(&preds, &refs)).abs() < 1e-12);
        assert!((bleu.per_example[0] - 100.0).abs() < 1e-9);
    }

    #[test]
    fn errors_are_clear() {
        let err = compute("rogue2", &[], &[], None).unwrap_err().to_string();
        assert!(err.contains("did you mean `rouge2`"), "{err}");
        let err = compute(
            "bertscore_minilm",
            &strings(&["a"]),
            &[strings(&["a"])],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("needs the MiniLM encoder"), "{err}");
        let err = compute("rouge1", &strings(&["a"]), &[], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 predictions but 0 reference lists"), "{err}");
        let err = compute("rouge1", &strings(&["a"]), &[vec![]], None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("example 0 (0-based) has no reference"),
            "{err}"
        );
        let err = compute(
            "gsm8k_accuracy",
            &strings(&["1"]),
            &[strings(&["none"])],
            None,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("example 0"), "{err:#}");
        assert_eq!(nearest_name("ROUGEL"), "rougeL");
    }
}
