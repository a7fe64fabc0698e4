//! Teacher-forced scoring: the log-probability of each token of a given output after its prompt,
//! batched with left padding (logits are computed for output positions only).
use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::decoder::{position_tensor, positions_from_mask, Decoder};
use super::fast_exp::logsumexp;
use super::lora::ForwardMode;

const LOGITS_PER_CHUNK: usize = 16 << 20;

/// Log-probabilities of `outputs[i]` given `prompts[i]` (token ids), one value per output token.
/// An empty output gets an empty vector.
pub fn score_ids(
    decoder: &Decoder,
    pad_id: u32,
    prompts: &[Vec<u32>],
    outputs: &[Vec<u32>],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    if prompts.len() != outputs.len() {
        bail!(
            "scoring needs one output per prompt; got {} prompts and {} outputs",
            prompts.len(),
            outputs.len()
        );
    }
    if batch_size == 0 {
        bail!("scoring needs batch_size ≥ 1");
    }
    for (i, (p, o)) in prompts.iter().zip(outputs).enumerate() {
        if p.is_empty() {
            bail!("prompt {i} is empty after tokenization: nothing to condition on");
        }
        if p.len() + o.len() > decoder.max_positions() {
            bail!(
                "prompt {i} takes {} tokens and its output {}: {} tokens, more than {}; \
                 shorten the prompt or the output",
                p.len(),
                o.len(),
                p.len() + o.len(),
                decoder.describe_context()
            );
        }
    }
    let mut order: Vec<usize> = (0..prompts.len())
        .filter(|i| !outputs[*i].is_empty())
        .collect();
    order.sort_by_key(|i| prompts[*i].len() + outputs[*i].len());
    let mut result = vec![Vec::new(); prompts.len()];
    // Every batch reads the weights from panels made once for the whole call.
    let _panels = super::training_weights::forward_scope();
    let bar = crate::util::progress::bar(order.len() as u64, "score");
    for chunk in order.chunks(batch_size) {
        let rows: Vec<(&[u32], &[u32])> = chunk
            .iter()
            .map(|i| (prompts[*i].as_slice(), outputs[*i].as_slice()))
            .collect();
        for (i, lp) in chunk
            .iter()
            .zip(score_batch(decoder, pad_id, &rows, LOGITS_PER_CHUNK)?)
        {
            result[*i] = lp;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(result)
}

fn score_batch(
    decoder: &Decoder,
    pad_id: u32,
    rows: &[(&[u32], &[u32])],
    logits_per_chunk: usize,
) -> Result<Vec<Vec<f32>>> {
    let device = decoder.device();
    let longest = rows
        .iter()
        .map(|(p, o)| p.len() + o.len())
        .max()
        .unwrap_or(0);
    let max_out = rows.iter().map(|(_, o)| o.len()).max().unwrap_or(0);
    let b = rows.len();
    let mut ids = Vec::with_capacity(b * longest);
    let mut real = Vec::with_capacity(b);
    // Targets for the last `max_out` predicting positions; outputs end every row, so they align.
    let mut targets = vec![0u32; b * max_out];
    for (r, (p, o)) in rows.iter().enumerate() {
        let pad = longest - p.len() - o.len();
        ids.extend(std::iter::repeat_n(pad_id, pad));
        ids.extend(p.iter().chain(o.iter()));
        real.push((0..longest).map(|i| i >= pad).collect::<Vec<bool>>());
        targets[r * max_out + (max_out - o.len())..(r + 1) * max_out].copy_from_slice(o);
    }
    let keys = positions_from_mask(&real);
    let ids = Tensor::from_vec(ids, (b, longest), device)?;
    let masks = decoder.build_masks(&keys, longest)?;
    let positions = position_tensor(&keys, longest, device)?;
    // Position j predicts token j + 1: outputs occupy the last max_out tokens, so the hidden
    // states from position longest − 1 − max_out on are the only ones read.
    let start = longest - 1 - max_out;
    let hidden = decoder.forward_hidden_last(
        &ids,
        &positions,
        &masks,
        None,
        ForwardMode::default(),
        longest - start,
    )?;
    let hidden = hidden.narrow(1, 0, max_out)?;
    // Logits over the vocabulary are the largest tensors here: take positions in chunks of
    // about 16M logits so peak memory stays bounded for long outputs.
    let vocab = decoder.config.vocab_size.max(1);
    let chunk = (logits_per_chunk / (b * vocab)).clamp(1, max_out);
    if let Some(bad) = targets.iter().find(|&&t| t as usize >= vocab) {
        bail!("output token id {bad} is outside the model's vocabulary of {vocab}");
    }
    let mut lp = vec![vec![0f32; max_out]; b];
    for start in (0..max_out).step_by(chunk) {
        let len = chunk.min(max_out - start);
        let logits = decoder.logits(&hidden.narrow(1, start, len)?)?;
        // Row (r, j) of the chunk predicts targets[r][start + j]: log p = logit − log Σ e^logit.
        let wanted: Vec<u32> = (0..b * len)
            .map(|i| targets[(i / len) * max_out + start + i % len])
            .collect();
        let picked = if device.is_cpu() {
            let flat = logits.flatten_all()?.to_vec1::<f32>()?;
            flat.par_chunks(vocab)
                .zip(&wanted)
                .map(|(row, &target)| row[target as usize] - logsumexp(row))
                .collect()
        } else {
            // On a GPU the logits stay there: reading them back would copy b·len·vocab floats
            // (100 MB for 8 × 64 outputs of SmolLM2) to pick b·len of them.
            let wanted = Tensor::from_vec(wanted, (b * len, 1), device)?;
            let rows = logits.reshape((b * len, vocab))?.to_dtype(DType::F32)?;
            let picked = rows.gather(&wanted, 1)?.squeeze(1)?;
            (picked - rows.log_sum_exp(1)?)?.to_vec1::<f32>()?
        };
        for (i, value) in picked.into_iter().enumerate() {
            lp[i / len][start + i % len] = value;
        }
    }
    Ok(rows
        .iter()
        .zip(lp)
        .map(|((_, o), row)| row[max_out - o.len()..].to_vec())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::lm::{Family, LanguageModel};

    #[test]
    fn chunked_logits_equal_one_pass() -> Result<()> {
        let lm = LanguageModel::tiny_random(7, Family::Llama)?;
        let p1 = lm.encode("Subject:")?;
        let o1 = lm.encode(" the quarterly budget meeting")?;
        let p2 = lm.encode("Hi")?;
        let o2 = lm.encode(" ok")?;
        let rows = [
            (p1.as_slice(), o1.as_slice()),
            (p2.as_slice(), o2.as_slice()),
        ];
        let whole = score_batch(lm.decoder(), 2, &rows, usize::MAX)?;
        let chunked = score_batch(lm.decoder(), 2, &rows, 1)?;
        assert_eq!(whole[0].len(), o1.len());
        assert_eq!(whole[1].len(), o2.len());
        for (a, b) in whole.iter().zip(&chunked) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
        Ok(())
    }

    #[test]
    fn rows_past_the_context_name_prompt_and_output_lengths() -> Result<()> {
        let lm = LanguageModel::tiny_random(7, Family::Llama)?;
        let context = lm.decoder().max_positions();
        let prompts = vec![vec![5u32; context - 10]];
        let outputs = vec![vec![6u32; 11]];
        let err = score_ids(lm.decoder(), 2, &prompts, &outputs, 4).expect_err("too long");
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!(
                "prompt 0 takes {} tokens and its output 11: {} tokens",
                context - 10,
                context + 1
            )) && !msg.contains("max_new_tokens"),
            "{msg}"
        );
        Ok(())
    }
}
