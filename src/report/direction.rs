//! Which way a metric improves, so that "reaches the reference's final score" and the
//! figure's layout follow it.

/// Which way a metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Scores: ROUGE, BLEU, accuracy, BERTScore, a judge's grade.
    Higher,
    /// Errors and losses (none of this lab's metrics; curves from elsewhere may have them).
    Lower,
    /// Descriptions of the outputs (lengths, length ratios): neither way is better, so no
    /// labels-to-reach or savings are computed.
    Neither,
}

/// Name parts of metrics that are errors or losses, for names this lab does not compute.
const LOWER_IS_BETTER: [&str; 12] = [
    "loss",
    "nll",
    "perplexity",
    "ppl",
    "error",
    "err",
    "ter",
    "wer",
    "cer",
    "mse",
    "mae",
    "rmse",
];

/// How `metric` improves, and whether that is known (a metric this lab computes) or guessed
/// from the name (one it does not: a part of the name like `loss`, `perplexity`, `wer` or
/// `error` means lower is better, anything else higher).
pub fn direction_of(metric: &str) -> (Direction, bool) {
    if let Some(info) = crate::metrics::registry::info_of(metric) {
        // Scores have a numeric range (`0-1`, `0-100`, `1-5`); descriptions a unit.
        let ranged = info
            .scale
            .split_once('-')
            .is_some_and(|(lo, hi)| lo.parse::<f64>().is_ok() && hi.parse::<f64>().is_ok());
        let direction = if ranged {
            Direction::Higher
        } else {
            Direction::Neither
        };
        return (direction, true);
    }
    let lower = metric
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|part| LOWER_IS_BETTER.contains(&part));
    let direction = if lower {
        Direction::Lower
    } else {
        Direction::Higher
    };
    (direction, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_and_names_from_elsewhere() {
        for m in [
            "rouge2",
            "sacrebleu",
            "gsm8k_accuracy",
            "llm_judge",
            "exact_match",
        ] {
            assert_eq!(direction_of(m), (Direction::Higher, true), "{m}");
        }
        for m in ["pred_words", "ref_words", "length_ratio"] {
            assert_eq!(direction_of(m), (Direction::Neither, true), "{m}");
        }
        for m in ["eval_loss", "perplexity", "WER", "test-error"] {
            assert_eq!(direction_of(m), (Direction::Lower, false), "{m}");
        }
        // Parts, not substrings: `terse` and `errand` are not errors.
        for m in ["chrf", "terse_score", "errand"] {
            assert_eq!(direction_of(m), (Direction::Higher, false), "{m}");
        }
    }
}
