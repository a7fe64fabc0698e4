//! Parity with the reference implementations: every `pair` line of
//! tests/fixtures/metrics_reference.jsonl (rouge-score 0.1.2 with the Porter stemmer, sacrebleu
//! 2.6 sentence_bleu) and its `corpus` line (sacrebleu corpus_bleu) must be reproduced: ROUGE to
//! 1e-6, BLEU to 1e-4.
use atgen_lab::metrics::rouge::{f1_multi, RougeType};
use atgen_lab::metrics::{compute, corpus_bleu, sentence_bleu};
use serde_json::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/metrics_reference.jsonl"
);
const ROUGE_TOLERANCE: f64 = 1e-6;
const BLEU_TOLERANCE: f64 = 1e-4;

fn strings(value: &Value, key: &str, line: usize) -> Vec<String> {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("line {line}: `{key}` is not a list"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("line {line}: `{key}` holds a non-string"))
                .to_string()
        })
        .collect()
}

fn number(value: &Value, key: &str, line: usize) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("line {line}: `{key}` is not a number"))
}

#[test]
fn every_fixture_value_matches_the_reference_implementations() {
    let text = std::fs::read_to_string(FIXTURE).expect("fixture is part of the repository");
    let mut pairs = 0;
    let mut matched_pairs = 0;
    let mut corpus_lines = 0;
    let mut failures = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let row: Value = serde_json::from_str(raw).unwrap_or_else(|e| panic!("line {line}: {e}"));
        match row["kind"].as_str() {
            Some("pair") => {
                pairs += 1;
                let hypothesis = row["hypothesis"].as_str().expect("hypothesis string");
                let references = strings(&row, "references", line);
                let mut ok = true;
                for name in ["rouge1", "rouge2", "rougeL", "rougeLsum"] {
                    let kind = RougeType::parse(name).expect("known rouge type");
                    let got = f1_multi(kind, &references, hypothesis);
                    let want = number(&row, name, line);
                    if (got - want).abs() > ROUGE_TOLERANCE {
                        ok = false;
                        failures.push(format!("line {line} {name}: got {got}, want {want}"));
                    }
                }
                let refs: Vec<&str> = references.iter().map(String::as_str).collect();
                let got = sentence_bleu(hypothesis, &refs);
                let want = number(&row, "sentence_bleu", line);
                if (got - want).abs() > BLEU_TOLERANCE {
                    ok = false;
                    failures.push(format!("line {line} sentence_bleu: got {got}, want {want}"));
                }
                matched_pairs += usize::from(ok);
            }
            Some("corpus") => {
                corpus_lines += 1;
                let hypotheses = strings(&row, "hypotheses", line);
                // One reference stream: reference i belongs to hypothesis i.
                let references: Vec<Vec<String>> = strings(&row, "references", line)
                    .into_iter()
                    .map(|r| vec![r])
                    .collect();
                assert_eq!(hypotheses.len(), references.len(), "line {line}");
                let want = number(&row, "corpus_bleu", line);
                let direct = corpus_bleu(&hypotheses, &references);
                let registry = compute("sacrebleu", &hypotheses, &references, None)
                    .expect("sacrebleu computes")
                    .corpus;
                for (how, got) in [("corpus_bleu", direct), ("registry sacrebleu", registry)] {
                    if (got - want).abs() > BLEU_TOLERANCE {
                        failures.push(format!("line {line} {how}: got {got}, want {want}"));
                    }
                }
            }
            other => panic!("line {line}: unexpected kind {other:?}"),
        }
    }
    eprintln!("metrics parity: {matched_pairs}/{pairs} pairs match, {corpus_lines} corpus line");
    assert_eq!(pairs, 128, "the fixture should hold 128 pairs");
    assert_eq!(corpus_lines, 1, "the fixture should hold one corpus line");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(matched_pairs, pairs);
}

#[test]
fn registry_rouge_agrees_with_direct_calls() {
    let text = std::fs::read_to_string(FIXTURE).expect("fixture is part of the repository");
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid json"))
        .filter(|v: &Value| v["kind"] == "pair")
        .collect();
    let predictions: Vec<String> = rows
        .iter()
        .map(|r| r["hypothesis"].as_str().expect("string").to_string())
        .collect();
    let references: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| strings(r, "references", i + 1))
        .collect();
    for name in ["rouge1", "rouge2", "rougeL", "rougeLsum"] {
        let scores = compute(name, &predictions, &references, None).expect("computes");
        let want: Vec<f64> = rows
            .iter()
            .map(|r| r[name].as_f64().expect("number"))
            .collect();
        for (got, want) in scores.per_example.iter().zip(&want) {
            assert!(
                (got - want).abs() <= ROUGE_TOLERANCE,
                "{name}: {got} vs {want}"
            );
        }
        let mean = want.iter().sum::<f64>() / want.len() as f64;
        assert!(
            (scores.corpus - mean).abs() <= ROUGE_TOLERANCE,
            "{name} corpus"
        );
    }
}

/// tests/fixtures/porter_nltk.tsv: 2,919 words from the AESLC and GSM8K texts (`\w+`,
/// lowercased) with their stems from NLTK 3.10's `PorterStemmer()`; the port must agree on all.
/// (During development the port was checked against NLTK on all 64,927 such words.)
#[test]
fn porter_stemmer_matches_nltk_on_corpus_vocabulary() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/porter_nltk.tsv"
    );
    let text = std::fs::read_to_string(path).expect("fixture is part of the repository");
    let mut wrong = Vec::new();
    let mut total = 0;
    for (index, line) in text.lines().enumerate() {
        let (word, expected) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("line {}: expected `word<TAB>stem`", index + 1));
        total += 1;
        let got = atgen_lab::metrics::porter::stem(word);
        if got != expected {
            wrong.push(format!("{word}: got {got}, NLTK gives {expected}"));
        }
    }
    assert!(total > 2000, "fixture too small: {total} words");
    assert!(
        wrong.is_empty(),
        "{} of {total} differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
