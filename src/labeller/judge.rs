//! `llm_judge`: G-Eval style scoring of predictions by an LLM. The judge reads a rubric, the
//! input, the references and the prediction, and must answer with one integer from 1 to 5;
//! anything else is asked again once, then is an error.
use super::llm::LlmClient;
use super::prompt::{strip_think, ChatRequest, Message};
use anyhow::{bail, Result};

/// The rubric used when an experiment names none.
pub const DEFAULT_RUBRIC: &str = "Quality: the candidate conveys the same content as the \
reference output(s), is fluent, and contains nothing that the input does not support.";

const SYSTEM: &str = "You are a strict evaluator of generated text. You follow the evaluation \
steps and answer with a single integer score.";

const ASK_AGAIN: &str =
    "Your answer was not a score. Answer with a single integer from 1 to 5 and nothing else.";

/// The G-Eval prompt: criteria, evaluation steps, the case, and the answer format.
pub fn judge_request(
    rubric: &str,
    input: &str,
    prediction: &str,
    references: &[String],
    temperature: f64,
    max_tokens: u32,
) -> ChatRequest {
    let refs: String = references.iter().map(|r| format!("- {r}\n")).collect();
    let prompt = format!(
        "Evaluation criteria:\n{rubric}\n\n\
Evaluation steps:\n\
1. Read the input and the reference output(s).\n\
2. Read the candidate output and compare it with the references against the criteria.\n\
3. Give a score from 1 (fails the criteria) to 5 (fully meets them).\n\n\
Input:\n{input}\n\n\
Reference output(s):\n{refs}\n\
Candidate output:\n{prediction}\n\n\
Answer with the score only: a single integer from 1 to 5."
    );
    ChatRequest {
        system: Some(SYSTEM.to_string()),
        messages: vec![Message::user(prompt)],
        temperature,
        max_tokens,
    }
}

/// The score in a reply: after reasoning is removed, the whole reply must be one integer in
/// 1..=5 (surrounding whitespace allowed, nothing else).
pub fn parse_score(reply: &str) -> Option<u8> {
    let t = strip_think(reply);
    let t = t.trim();
    if t.len() != 1 {
        return None;
    }
    t.parse::<u8>().ok().filter(|s| (1..=5).contains(s))
}

/// Score each prediction 1–5 through `client` (budget, cache and retries included).
/// `references[i]` are the references of item i.
pub fn judge(
    client: &LlmClient,
    rubric: &str,
    inputs: &[String],
    predictions: &[String],
    references: &[Vec<String>],
) -> Result<Vec<f64>> {
    if inputs.len() != predictions.len() || inputs.len() != references.len() {
        bail!(
            "llm_judge needs one input and one reference list per prediction (got {} inputs, {} predictions, {} reference lists)",
            inputs.len(),
            predictions.len(),
            references.len()
        );
    }
    let requests: Vec<ChatRequest> = (0..inputs.len())
        .map(|i| {
            judge_request(
                rubric,
                &inputs[i],
                &predictions[i],
                &references[i],
                client.temperature,
                client.max_tokens,
            )
        })
        .collect();
    let first = client.complete_all(&requests)?;
    let mut scores: Vec<Option<u8>> = first.replies.iter().map(|r| parse_score(&r.text)).collect();
    let budget_stop = |done: usize| {
        anyhow::anyhow!(
            "llm_judge: the money budget was reached after {done} of {} scores; raise eval.judge.money_budget",
            inputs.len()
        )
    };
    if first.budget_reached {
        return Err(budget_stop(first.replies.len()));
    }
    // One more try for unparsable replies: the conversation goes on, so it is a new request.
    let again: Vec<usize> = (0..scores.len()).filter(|&i| scores[i].is_none()).collect();
    if !again.is_empty() {
        let retries: Vec<ChatRequest> = again
            .iter()
            .map(|&i| {
                let mut r = requests[i].clone();
                r.messages
                    .push(Message::assistant(first.replies[i].text.clone()));
                r.messages.push(Message::user(ASK_AGAIN));
                r
            })
            .collect();
        let second = client.complete_all(&retries)?;
        if second.budget_reached {
            return Err(budget_stop(
                inputs.len() - again.len() + second.replies.len(),
            ));
        }
        for (&i, reply) in again.iter().zip(&second.replies) {
            match parse_score(&reply.text) {
                Some(s) => scores[i] = Some(s),
                // Both replies are in the label cache: asking again would get them again.
                None => bail!(
                    "llm_judge: item {} got no score from {} after asking twice; replies: {:?}, \
                     {:?}; the label cache keeps them, so a rerun gets the same: change \
                     eval.judge.rubric or eval.judge.model, or raise eval.judge.max_tokens if \
                     they are cut short",
                    i + 1,
                    client.name(),
                    first.replies[i].text,
                    reply.text
                ),
            }
        }
    }
    scores
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.map(f64::from)
                .ok_or_else(|| anyhow::anyhow!("internal: llm_judge item {} has no score", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_strictly() {
        assert_eq!(parse_score("4"), Some(4));
        assert_eq!(parse_score(" 5\n"), Some(5));
        assert_eq!(parse_score("<think>it is good</think>\n3"), Some(3));
        for bad in ["0", "6", "4.5", "Score: 4", "4/5", "four", "", "44", "-1"] {
            assert_eq!(parse_score(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn prompt_shows_rubric_case_and_format() {
        let r = judge_request(
            "Be brief.",
            "IN",
            "PRED",
            &["R1".into(), "R2".into()],
            0.0,
            4,
        );
        let text = &r.messages[0].content;
        for part in [
            "Be brief.",
            "IN",
            "PRED",
            "- R1\n- R2",
            "single integer from 1 to 5",
        ] {
            assert!(text.contains(part), "{part}");
        }
        assert_eq!(r.max_tokens, 4);
    }
}
