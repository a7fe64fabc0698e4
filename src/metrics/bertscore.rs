//! BERTScore F1 from contextual token embeddings: greedy matching by cosine similarity, no idf
//! weighting and no baseline rescaling (Zhang et al., 2020). Values lie in [-1, 1] and in
//! practice in [0, 1]; with several references the best F1 counts, as in `bert_score`.
use anyhow::{bail, Context, Result};

/// One text's token embeddings: every word piece the encoder saw, and which are content.
/// As in `bert_score`, `[CLS]` and `[SEP]` take part as matches for the other side's tokens
/// but carry no weight in the averages (its idf weights are 0 for them, with or without idf).
#[derive(Clone, Debug, Default)]
pub struct TokenVectors {
    pub vectors: Vec<Vec<f32>>,
    /// Per vector: true for a content token, false for a special one.
    pub content: Vec<bool>,
}

impl TokenVectors {
    /// Content tokens only (no special tokens to match against).
    pub fn content_only(vectors: Vec<Vec<f32>>) -> Self {
        let content = vec![true; vectors.len()];
        TokenVectors { vectors, content }
    }

    fn has_content(&self) -> bool {
        self.content.iter().any(|&c| c)
    }

    fn normalised(&self) -> Self {
        TokenVectors {
            vectors: self.vectors.iter().map(|v| unit(v)).collect(),
            content: self.content.clone(),
        }
    }
}

/// Anything that turns texts into one embedding per token (the encoder model implements it).
pub trait TokenEmbedder {
    fn token_embeddings(&self, texts: &[String]) -> Result<Vec<TokenVectors>>;
}

fn unit(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return vector.to_vec();
    }
    vector.iter().map(|x| x / norm).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// Mean over `from`'s content tokens of the best cosine similarity to any `to` token,
/// special tokens included (unit vectors in).
fn greedy_mean(from: &TokenVectors, to: &TokenVectors) -> f64 {
    let mut total = 0.0;
    let mut count = 0usize;
    for (a, _) in from.vectors.iter().zip(&from.content).filter(|(_, &c)| c) {
        total += to
            .vectors
            .iter()
            .map(|b| dot(a, b))
            .fold(f64::NEG_INFINITY, f64::max);
        count += 1;
    }
    total / count.max(1) as f64
}

/// BERTScore F1 of one candidate against one reference, from their token embeddings.
/// Zero when either side has no content tokens (`bert_score` warns and gives 0 too).
pub fn bertscore_f1(candidate: &TokenVectors, reference: &TokenVectors) -> f64 {
    if !candidate.has_content() || !reference.has_content() {
        return 0.0;
    }
    let (candidate, reference) = (candidate.normalised(), reference.normalised());
    let precision = greedy_mean(&candidate, &reference);
    let recall = greedy_mean(&reference, &candidate);
    if precision + recall == 0.0 {
        return 0.0;
    }
    2.0 * precision * recall / (precision + recall)
}

/// Per-example BERTScore F1 (max over each example's references). All texts are embedded in
/// one call so the embedder can batch them.
pub fn bertscore(
    embedder: &dyn TokenEmbedder,
    predictions: &[String],
    references: &[Vec<String>],
) -> Result<Vec<f64>> {
    let mut texts: Vec<String> = predictions.to_vec();
    for refs in references {
        texts.extend(refs.iter().cloned());
    }
    let embeddings = embedder
        .token_embeddings(&texts)
        .context("the token embedder failed while computing BERTScore")?;
    if embeddings.len() != texts.len() {
        bail!(
            "the token embedder returned {} embeddings for {} texts",
            embeddings.len(),
            texts.len()
        );
    }
    let (candidates, mut rest) = embeddings.split_at(predictions.len());
    let mut scores = Vec::with_capacity(predictions.len());
    for (candidate, refs) in candidates.iter().zip(references) {
        let (these, after) = rest.split_at(refs.len());
        rest = after;
        let best = these
            .iter()
            .map(|r| bertscore_f1(candidate, r))
            .fold(f64::NEG_INFINITY, f64::max);
        scores.push(if these.is_empty() { 0.0 } else { best });
    }
    Ok(scores)
}

/// BERTScore precision of each hypothesis against its paired reference text: the mean over
/// hypothesis tokens of the best cosine to any reference token (how much of the hypothesis
/// the reference supports). Zero when either side has no tokens. Used by HADAS with the
/// model input as the "reference".
pub fn bertscore_precision(
    embedder: &dyn TokenEmbedder,
    hypotheses: &[String],
    references: &[String],
) -> Result<Vec<f64>> {
    if hypotheses.len() != references.len() {
        bail!(
            "BERTScore precision needs one reference per hypothesis; got {} and {}",
            hypotheses.len(),
            references.len()
        );
    }
    let mut texts = hypotheses.to_vec();
    texts.extend(references.iter().cloned());
    let emb = embedder.token_embeddings(&texts)?;
    if emb.len() != texts.len() {
        bail!(
            "the token embedder returned {} embeddings for {} texts",
            emb.len(),
            texts.len()
        );
    }
    let (hyp, refs) = emb.split_at(hypotheses.len());
    Ok(hyp
        .iter()
        .zip(refs)
        .map(|(h, r)| {
            if !h.has_content() || !r.has_content() {
                return 0.0;
            }
            greedy_mean(&h.normalised(), &r.normalised())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Embeds each whitespace word as a one-hot vector over a tiny vocabulary, so cosine
    /// similarity is 1 for equal words and 0 otherwise: BERTScore becomes unigram F1.
    struct OneHot;

    impl TokenEmbedder for OneHot {
        fn token_embeddings(&self, texts: &[String]) -> Result<Vec<TokenVectors>> {
            let vocab = ["cat", "sat", "mat", "dog", "the"];
            texts
                .iter()
                .map(|t| {
                    t.split_whitespace()
                        .map(|w| {
                            let i = vocab.iter().position(|v| *v == w).context("unknown")?;
                            let mut v = vec![0.0; vocab.len()];
                            // Scale to check that vectors are normalised before comparing.
                            v[i] = 3.0;
                            Ok(v)
                        })
                        .collect::<Result<Vec<_>>>()
                        .map(TokenVectors::content_only)
                })
                .collect()
        }
    }

    #[test]
    fn one_hot_embeddings_give_unigram_f1() {
        let preds = vec!["the cat sat".to_string(), "dog".to_string()];
        let refs = vec![
            vec!["the cat".to_string()],
            vec!["cat".to_string(), "dog mat".to_string()],
        ];
        let scores = bertscore(&OneHot, &preds, &refs).unwrap();
        // P = 2/3, R = 1 → F = 0.8; second: best ref "dog mat": P = 1, R = 1/2 → 2/3.
        assert!((scores[0] - 0.8).abs() < 1e-9, "{scores:?}");
        assert!((scores[1] - 2.0 / 3.0).abs() < 1e-9, "{scores:?}");
    }

    #[test]
    fn partial_similarity_uses_cosine() {
        // Candidate token at 60 degrees to the reference token: cos = 0.5.
        let c = TokenVectors::content_only(vec![vec![1.0, 0.0]]);
        let r = TokenVectors::content_only(vec![vec![0.5, 3f32.sqrt() / 2.0]]);
        assert!((bertscore_f1(&c, &r) - 0.5).abs() < 1e-6);
        assert_eq!(bertscore_f1(&TokenVectors::default(), &r), 0.0);
    }

    /// As in `bert_score`: a content token may find its best match in the other side's
    /// `[CLS]`/`[SEP]`, which are never averaged themselves; a text of special tokens only
    /// scores 0.
    #[test]
    fn special_tokens_are_matched_but_not_averaged() {
        let with_specials = |content: Vec<Vec<f32>>| {
            let mut vectors = vec![vec![0.0, 0.0, 1.0]];
            vectors.extend(content);
            vectors.push(vec![0.0, 0.0, 1.0]);
            let n = vectors.len();
            let flags = (0..n).map(|i| i != 0 && i + 1 != n).collect();
            TokenVectors {
                vectors,
                content: flags,
            }
        };
        // The candidate's token points the way of the reference's [CLS]/[SEP] (cos 0.8) and
        // away from its content token (cos 0): P = 0.8 through the specials, R = 0.
        let c = with_specials(vec![vec![0.6, 0.0, 0.8]]);
        let r = with_specials(vec![vec![0.0, 1.0, 0.0]]);
        let p = bertscore_precision_of(&c, &r);
        assert!((p - 0.8).abs() < 1e-6, "{p}");
        assert!((greedy_mean(&r.normalised(), &c.normalised()) - 0.0).abs() < 1e-6);
        assert_eq!(bertscore_f1(&with_specials(vec![]), &r), 0.0);
    }

    fn bertscore_precision_of(h: &TokenVectors, r: &TokenVectors) -> f64 {
        greedy_mean(&h.normalised(), &r.normalised())
    }
}
