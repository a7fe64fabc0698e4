//! A host with fixed answers, so strategy tests and `lab check` know the right selection
//! without a model. Unlisted texts get deterministic values derived from a hash of the text.
use crate::data::Example;
use crate::strategy::host::{EmbedModel, GenOpts, GenerationRecord, Generations, StrategyHost};
use crate::strategy::text::words;
use crate::strategy::Matrix;
use anyhow::Result;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub struct FakeHost {
    embeddings: HashMap<String, Vec<f32>>,
    greedy: HashMap<String, GenerationRecord>,
    base_greedy: HashMap<String, GenerationRecord>,
    samples: HashMap<String, Vec<String>>,
    bertscore: HashMap<String, f64>,
    dims: usize,
    /// Items passed to `generate`, summed over calls (to test caching).
    pub generated_items: AtomicUsize,
    /// Texts passed to `embed`, summed over calls.
    pub embedded_texts: AtomicUsize,
    /// The options of every `generate` call, in order (to test a strategy's defaults).
    pub generate_options: std::sync::Mutex<Vec<GenOpts>>,
}

fn hash_bytes(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl FakeHost {
    /// Unlisted texts get `dims`-wide hashed embeddings.
    pub fn new(dims: usize) -> Self {
        Self {
            dims: dims.max(1),
            ..Self::default()
        }
    }

    /// A fixed embedding for a text (normalised on the way out).
    pub fn with_embedding(mut self, text: &str, v: Vec<f32>) -> Self {
        self.embeddings.insert(text.into(), v);
        self
    }

    /// The greedy output of the current model for an input.
    pub fn with_greedy(
        mut self,
        input: &str,
        text: &str,
        logprobs: Vec<f32>,
        entropies: Vec<f32>,
    ) -> Self {
        let r = GenerationRecord {
            text: text.into(),
            token_logprobs: logprobs,
            entropies,
        };
        self.greedy.insert(input.into(), r);
        self
    }

    /// The greedy output of the base model for an input.
    pub fn with_base_greedy(mut self, input: &str, text: &str, logprobs: Vec<f32>) -> Self {
        let n = logprobs.len();
        let r = GenerationRecord {
            text: text.into(),
            token_logprobs: logprobs,
            entropies: vec![0.0; n],
        };
        self.base_greedy.insert(input.into(), r);
        self
    }

    /// Samples returned for stochastic decoding (cycled up to `n`).
    pub fn with_samples(mut self, input: &str, samples: &[&str]) -> Self {
        self.samples.insert(
            input.into(),
            samples.iter().map(|s| s.to_string()).collect(),
        );
        self
    }

    /// BERTScore precision returned for a hypothesis.
    pub fn with_bertscore(mut self, hyp: &str, p: f64) -> Self {
        self.bertscore.insert(hyp.into(), p);
        self
    }

    /// Unlisted inputs: up to 6 input words from a hashed offset, sometimes with a word the
    /// input lacks, so lexical strategies see differences.
    fn hashed_record(input: &str) -> GenerationRecord {
        let h = hash_bytes(input);
        let steps = 3 + (h[0] % 5) as usize;
        let w = words(input);
        let start = if w.is_empty() {
            0
        } else {
            h[20] as usize % w.len()
        };
        let mut text: Vec<String> = w.iter().skip(start).take(6).cloned().collect();
        if h[21].is_multiple_of(2) {
            text.push("unsupported".into());
        }
        GenerationRecord {
            text: text.join(" "),
            token_logprobs: (0..steps).map(|t| -(h[1 + t] as f32) / 64.0).collect(),
            entropies: (0..steps).map(|t| h[10 + t] as f32 / 64.0).collect(),
        }
    }

    /// Unlisted inputs: sample `i` is the greedy text of `input` + `i`, so samples disagree
    /// by a hashed amount.
    fn hashed_samples(input: &str, greedy: &str, n: usize) -> Vec<String> {
        let h = hash_bytes(input);
        (0..n)
            .map(|i| {
                if (h[22] as usize + i).is_multiple_of(3) {
                    greedy.to_string()
                } else {
                    Self::hashed_record(&format!("{input} {i}")).text
                }
            })
            .collect()
    }

    fn hashed_embedding(&self, text: &str) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.dims);
        let mut block = hash_bytes(text);
        while out.len() < self.dims {
            out.extend(block.iter().map(|&b| b as f32 / 255.0 - 0.5));
            block = Sha256::digest(block).into();
        }
        out.truncate(self.dims);
        out
    }
}

impl StrategyHost for FakeHost {
    fn generate(&self, items: &[Example], opts: &GenOpts, base: bool) -> Result<Arc<Generations>> {
        self.generated_items
            .fetch_add(items.len(), Ordering::Relaxed);
        self.generate_options
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(opts.clone());
        let stochastic = opts.temperature > 0.0 && opts.n > 1;
        let per_item = items
            .iter()
            .map(|e| {
                let fixed = if base {
                    &self.base_greedy
                } else {
                    &self.greedy
                };
                let greedy = fixed
                    .get(&e.input)
                    .or_else(|| self.greedy.get(&e.input))
                    .cloned()
                    .unwrap_or_else(|| Self::hashed_record(&e.input));
                if !stochastic {
                    return vec![greedy];
                }
                let texts = self
                    .samples
                    .get(&e.input)
                    .cloned()
                    .unwrap_or_else(|| Self::hashed_samples(&e.input, &greedy.text, opts.n));
                (0..opts.n)
                    .map(|i| GenerationRecord {
                        text: texts[i % texts.len()].clone(),
                        ..greedy.clone()
                    })
                    .collect()
            })
            .collect();
        Ok(Arc::new(Generations { per_item }))
    }

    fn score(&self, _items: &[Example], outputs: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(outputs
            .iter()
            .map(|o| vec![-1.0; words(o).len().max(1)])
            .collect())
    }

    fn embed(
        &self,
        texts: &[String],
        _model: EmbedModel,
        _key: Option<&str>,
    ) -> Result<Arc<Matrix>> {
        self.embedded_texts
            .fetch_add(texts.len(), Ordering::Relaxed);
        let rows: Vec<Vec<f32>> = texts
            .iter()
            .map(|t| {
                self.embeddings
                    .get(t)
                    .cloned()
                    .unwrap_or_else(|| self.hashed_embedding(t))
            })
            .collect();
        let mut m = Matrix::from_rows(&rows)?;
        m.l2_normalize_rows();
        Ok(Arc::new(m))
    }

    /// sacreBLEU's sentence BLEU from the metrics module (0–100).
    fn sentence_bleu(&self, hyp: &str, refs: &[&str]) -> f64 {
        crate::metrics::bleu::sentence_bleu(hyp, refs)
    }

    fn stem_words(&self, text: &str) -> Vec<String> {
        crate::metrics::tokenize::tokenize_words_stemmed(text)
    }

    /// The fixed value when listed, else the fraction of hypothesis words found in the
    /// reference (a lexical stand-in for token-embedding matching).
    fn bertscore_precision(&self, hyps: &[String], refs: &[String]) -> Result<Vec<f64>> {
        Ok(hyps
            .iter()
            .zip(refs)
            .map(|(h, r)| {
                if let Some(p) = self.bertscore.get(h) {
                    return *p;
                }
                let hw = words(h);
                let rw: std::collections::HashSet<String> = words(r).into_iter().collect();
                if hw.is_empty() {
                    return 0.0;
                }
                hw.iter().filter(|w| rw.contains(*w)).count() as f64 / hw.len() as f64
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bleu_is_one_for_identical_and_lower_for_different() {
        let h = FakeHost::new(4);
        let s = "the quick brown fox jumps over the lazy dog";
        assert!((h.sentence_bleu(s, &[s]) - 100.0).abs() < 1e-9);
        let d = h.sentence_bleu(s, &["a slow red fox walks under the busy cat"]);
        assert!(d < 30.0, "{d}");
        assert!(h.sentence_bleu("zebra", &["the cat"]) < 5.0);
    }
}
