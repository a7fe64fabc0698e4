//! BLEUVar (Xiao et al. 2020): disagreement among sampled outputs, from sentence BLEU over
//! every ordered pair of samples.
use rayon::prelude::*;

/// For each item's samples y_1..y_n:
/// Σ_{i≠j} (1 − BLEU(y_i, \[y_j\]) / 100)² / (n(n − 1)).
///
/// `sentence_bleu(hypothesis, references)` is on sacreBLEU's 0–100 scale (the metrics module
/// provides the exact one), hence the division by 100. BLEU is not symmetric, so both orders
/// of each pair count. Items with fewer than two samples score 0 (no disagreement to see).
/// Parallel over items; each item's sum runs in a fixed order, so results are deterministic.
pub fn bleu_variance(
    samples: &[Vec<String>],
    sentence_bleu: &(dyn Fn(&str, &[&str]) -> f64 + Sync),
) -> Vec<f64> {
    samples
        .par_iter()
        .map(|outputs| {
            let n = outputs.len();
            if n < 2 {
                return 0.0;
            }
            let mut total = 0.0;
            for (i, hypothesis) in outputs.iter().enumerate() {
                for (j, reference) in outputs.iter().enumerate() {
                    if i != j {
                        let distance =
                            1.0 - sentence_bleu(hypothesis, &[reference.as_str()]) / 100.0;
                        total += distance * distance;
                    }
                }
            }
            total / (n * (n - 1)) as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// 100 × the fraction of hypothesis words found in the reference: asymmetric like BLEU.
    fn word_overlap(hypothesis: &str, references: &[&str]) -> f64 {
        let words: Vec<&str> = hypothesis.split_whitespace().collect();
        let reference: Vec<&str> = references[0].split_whitespace().collect();
        let hits = words.iter().filter(|w| reference.contains(w)).count();
        100.0 * hits as f64 / words.len().max(1) as f64
    }

    #[test]
    fn disagreeing_samples_rank_above_agreeing_ones() {
        let items = vec![
            strings(&["the cat sat", "the cat sat", "the cat sat"]),
            strings(&["the cat sat", "a dog ran", "birds fly south"]),
            strings(&["the cat sat", "the cat ran", "the cat sat"]),
        ];
        let v = bleu_variance(&items, &word_overlap);
        assert_eq!(v[0], 0.0);
        assert_eq!(v[1], 1.0);
        assert!(v[2] > 0.0 && v[2] < v[1], "{v:?}");
        // Item 2: pairs (0,1), (1,0), (1,2), (2,1) overlap 2/3 → (1/3)² each; the rest 0.
        assert!((v[2] - 4.0 / 9.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn uses_both_orders_of_each_pair() {
        // "a" ⊂ "a b": overlap(a | a b) = 100, overlap(a b | a) = 50.
        let v = bleu_variance(&[strings(&["a", "a b"])], &word_overlap);
        assert!((v[0] - (0.0 + 0.25) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn fewer_than_two_samples_score_zero() {
        assert_eq!(
            bleu_variance(&[vec![], strings(&["x"])], &word_overlap),
            vec![0.0, 0.0]
        );
    }
}
