//! BERTScore F1 from contextual token embeddings: greedy matching by cosine similarity, no idf
//! weighting and no baseline rescaling (Zhang et al., 2020). Values lie in [-1, 1] and in
//! practice in [0, 1]; with several references the best F1 counts, as in `bert_score`.
use anyhow::{bail, Context, Result};

/// Anything that turns texts into one embedding per token (the encoder model implements it).
/// Return only content tokens: special tokens such as `[CLS]`/`[SEP]` should be left out, as
/// `bert_score` gives them zero weight.
pub trait TokenEmbedder {
    fn token_embeddings(&self, texts: &[String]) -> Result<Vec<Vec<Vec<f32>>>>;
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

/// Mean over `from` tokens of the best cosine similarity to any `to` token.
fn greedy_mean(from: &[Vec<f32>], to: &[Vec<f32>]) -> f64 {
    let total: f64 = from
        .iter()
        .map(|a| {
            to.iter()
                .map(|b| dot(a, b))
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .sum();
    total / from.len() as f64
}

/// BERTScore F1 of one candidate against one reference, from their token embeddings.
/// Zero when either side has no tokens.
pub fn bertscore_f1(candidate: &[Vec<f32>], reference: &[Vec<f32>]) -> f64 {
    if candidate.is_empty() || reference.is_empty() {
        return 0.0;
    }
    let candidate: Vec<Vec<f32>> = candidate.iter().map(|v| unit(v)).collect();
    let reference: Vec<Vec<f32>> = reference.iter().map(|v| unit(v)).collect();
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
            if h.is_empty() || r.is_empty() {
                return 0.0;
            }
            let h: Vec<Vec<f32>> = h.iter().map(|v| unit(v)).collect();
            let r: Vec<Vec<f32>> = r.iter().map(|v| unit(v)).collect();
            greedy_mean(&h, &r)
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
        fn token_embeddings(&self, texts: &[String]) -> Result<Vec<Vec<Vec<f32>>>> {
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
                        .collect()
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
        let c = vec![vec![1.0, 0.0]];
        let r = vec![vec![0.5, 3f32.sqrt() / 2.0]];
        assert!((bertscore_f1(&c, &r) - 0.5).abs() < 1e-6);
        assert_eq!(bertscore_f1(&[], &r), 0.0);
    }
}
