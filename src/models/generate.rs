//! Batched, KV-cached generation: greedy or sampled (temperature, top-p, n samples per
//! prompt), with per-token log-probabilities and entropies of the full next-token distribution.
use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::decoder::{position_tensor, positions_from_mask, Decoder};
use super::fast_exp::{row_stats, RowStats};
use super::kv_cache::KvCache;
use super::lora::ForwardMode;
use super::tokenizer::TextTokenizer;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    pub top_p: f64,
    /// Samples per prompt.
    pub n: usize,
    pub seed: u64,
    pub batch_size: usize,
    /// Longer prompts keep their last tokens (the template's assistant cue stays); render with
    /// `LanguageModel::render_prompt_within` to cut the user text instead.
    pub max_input_tokens: Option<usize>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            n: 1,
            seed: 0,
            batch_size: 16,
            max_input_tokens: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    pub token_ids: Vec<u32>,
    /// Log-probability of each chosen token under the model (temperature 1).
    pub token_logprobs: Vec<f32>,
    /// Entropy of the full next-token distribution (temperature 1) at each step.
    pub entropies: Vec<f32>,
}

impl Generation {
    pub fn mean_logprob(&self) -> f32 {
        mean(&self.token_logprobs)
    }

    pub fn mean_entropy(&self) -> f32 {
        mean(&self.entropies)
    }
}

fn mean(xs: &[f32]) -> f32 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f32>() / xs.len() as f32
    }
}

/// One row of work: a prompt and which of its samples this is.
struct Job {
    prompt: usize,
    sample: usize,
    ids: Vec<u32>,
}

/// Whether rows compute the tokens that open every prompt (a chat template's system turn and
/// instruction) once and share them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptPrefix {
    /// The longest run of tokens that every prompt of the call opens with goes through the
    /// model once, and each batch starts from a copy of its keys and values.
    Shared,
    /// Every row runs its whole prompt (`LAB_UNFUSED=prefix`; the side-by-side baseline).
    Separate,
}

/// Generate for already-tokenized prompts; returns `n` generations per prompt. The prompts'
/// common opening is computed once ([`PromptPrefix::Shared`]).
pub fn generate_ids(
    decoder: &Decoder,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
) -> Result<Vec<Vec<Generation>>> {
    let prefix = if super::fused_train::fused("prefix") {
        PromptPrefix::Shared
    } else {
        PromptPrefix::Separate
    };
    generate_ids_with(decoder, tokenizer, prompts, opts, prefix)
}

/// [`generate_ids`] with the prompt prefix's handling chosen by the caller.
pub fn generate_ids_with(
    decoder: &Decoder,
    tokenizer: &TextTokenizer,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
    prefix: PromptPrefix,
) -> Result<Vec<Vec<Generation>>> {
    if opts.batch_size == 0 || opts.n == 0 {
        bail!("generation needs batch_size ≥ 1 and n ≥ 1");
    }
    // Written as positive ranges so NaN (which compares false to everything) is refused too.
    let temperature_ok = opts.temperature.is_finite() && opts.temperature >= 0.0;
    let top_p_ok = opts.top_p > 0.0 && opts.top_p <= 1.0;
    if !(temperature_ok && top_p_ok) {
        bail!(
            "temperature must be a finite number ≥ 0 and top_p in (0, 1]; got {} and {}",
            opts.temperature,
            opts.top_p
        );
    }
    let greedy = opts.temperature == 0.0;
    // Greedy samples are identical: decode once and copy.
    let distinct = if greedy { 1 } else { opts.n };
    let mut jobs = Vec::new();
    for (p, ids) in prompts.iter().enumerate() {
        if ids.is_empty() {
            bail!("prompt {p} is empty after tokenization");
        }
        let ids = match opts.max_input_tokens {
            Some(max) if ids.len() > max => ids[ids.len() - max..].to_vec(),
            _ => ids.clone(),
        };
        // Refused before any batch runs: sorted by length, the longest prompts go last, and
        // the overflow would otherwise surface only after the shorter ones were generated.
        if ids.len() + opts.max_new_tokens > decoder.max_positions() {
            bail!(
                "prompt {p} takes {} tokens and max_new_tokens is {}: {} tokens, more than {}; \
                 shorten the input (max_input_tokens) or lower max_new_tokens",
                ids.len(),
                opts.max_new_tokens,
                ids.len() + opts.max_new_tokens,
                decoder.describe_context()
            );
        }
        for s in 0..distinct {
            jobs.push(Job {
                prompt: p,
                sample: s,
                ids: ids.clone(),
            });
        }
    }
    jobs.sort_by_key(|j| j.ids.len());
    let mut out: Vec<Vec<Option<Generation>>> = vec![vec![None; distinct]; prompts.len()];
    let bar = crate::util::progress::bar(jobs.len() as u64, "generate");
    // Decoding products read packed weights while these batches generate (dropped after).
    let _packed = super::decoding_weights::decoding_scope();
    let shared = match prefix {
        PromptPrefix::Shared => shared_prefix(&jobs),
        PromptPrefix::Separate => 0,
    };
    let prefix_cache = match shared {
        0 => None,
        _ => Some(prefix_cache(decoder, &jobs[0].ids[..shared])?),
    };
    let prefix = prefix_cache.as_ref().map(|cache| (shared, cache));
    for batch in jobs.chunks(opts.batch_size) {
        let gens = generate_batch(decoder, tokenizer, batch, opts, prefix)?;
        for (job, g) in batch.iter().zip(gens) {
            out[job.prompt][job.sample] = Some(g);
        }
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out
        .into_iter()
        .map(|row| {
            let row: Vec<Generation> = row.into_iter().flatten().collect();
            if greedy {
                vec![row[0].clone(); opts.n]
            } else {
                row
            }
        })
        .collect())
}

/// How many opening tokens every job's prompt has in common, leaving each at least one of its
/// own (the prefill must end on a token whose logits the row reads); 0 with fewer than two
/// jobs, where there is nothing to share. In the quick start the chat template's system turn
/// and instruction are 27 of each prompt's 64 tokens.
fn shared_prefix(jobs: &[Job]) -> usize {
    let Some((first, rest)) = jobs.split_first() else {
        return 0;
    };
    if rest.is_empty() {
        return 0;
    }
    let mut shared = first.ids.len() - 1;
    for job in rest {
        let common = first
            .ids
            .iter()
            .zip(&job.ids)
            .take_while(|(a, b)| a == b)
            .count();
        shared = shared.min(common).min(job.ids.len() - 1);
    }
    shared
}

/// Keys and values of the shared prefix `ids` (one row, positions from 0).
fn prefix_cache(decoder: &Decoder, ids: &[u32]) -> Result<KvCache> {
    let len = ids.len();
    let keys = vec![(0..len as u32).map(Some).collect::<Vec<_>>()];
    let mut cache = decoder.new_cache();
    // Only the keys and values are kept; the one hidden state computed is not read.
    prefill(decoder, ids.to_vec(), &keys, len, &mut cache)?;
    Ok(cache)
}

/// Run the last `t` of each row's `keys` (token ids `ids`, `[rows, t]` row-major) through the
/// model into `cache`; the hidden state of each row's last position, `[rows, 1, hidden]`.
fn prefill(
    decoder: &Decoder,
    ids: Vec<u32>,
    keys: &[Vec<Option<u32>>],
    t: usize,
    cache: &mut KvCache,
) -> Result<Tensor> {
    let device = decoder.device();
    let masks = decoder.build_masks(keys, t)?;
    let positions = position_tensor(keys, t, device)?;
    let ids = Tensor::from_vec(ids, (keys.len(), t), device)?;
    decoder.forward_hidden_last(
        &ids,
        &positions,
        &masks,
        Some(cache),
        ForwardMode::default(),
        1,
    )
}

/// A sampler seeded by (seed, prompt tokens, sample index), so a prompt's samples do not
/// depend on which other prompts share its batch.
fn row_rng(seed: u64, ids: &[u32], sample: usize) -> ChaCha8Rng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids {
        h ^= *id as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ h);
    rng.set_stream(sample as u64);
    rng
}

struct Row {
    job_index: usize,
    keys: Vec<Option<u32>>,
    next_pos: u32,
    rng: ChaCha8Rng,
    gen: Generation,
}

/// One batch of jobs; `prefix` is the length and cache of the opening tokens every job shares,
/// which the batch then does not run again. A row's keys are laid out as `[prefix][padding]
/// [the rest of its prompt]`, positions counting real tokens only, so each row attends to
/// exactly what it would see alone.
fn generate_batch(
    decoder: &Decoder,
    tokenizer: &TextTokenizer,
    batch: &[Job],
    opts: &GenerateOptions,
    prefix: Option<(usize, &KvCache)>,
) -> Result<Vec<Generation>> {
    let device = decoder.device();
    let shared = prefix.map_or(0, |(len, _)| len);
    let longest = batch
        .iter()
        .map(|j| j.ids.len() - shared)
        .max()
        .unwrap_or(0);
    let mut padded = Vec::with_capacity(batch.len() * longest);
    let mut real = Vec::with_capacity(batch.len());
    for job in batch {
        let own = &job.ids[shared..];
        let pad = longest - own.len();
        padded.extend(std::iter::repeat_n(tokenizer.pad_id, pad));
        padded.extend(own);
        real.push((0..longest).map(|i| i >= pad).collect::<Vec<bool>>());
    }
    let keys: Vec<Vec<Option<u32>>> = positions_from_mask(&real)
        .into_iter()
        .map(|row| {
            let opening = (0..shared as u32).map(Some);
            opening
                .chain(row.into_iter().map(|p| p.map(|p| p + shared as u32)))
                .collect()
        })
        .collect();
    let mut rows: Vec<Row> = batch
        .iter()
        .enumerate()
        .map(|(i, job)| Row {
            job_index: i,
            keys: keys[i].clone(),
            next_pos: job.ids.len() as u32,
            rng: row_rng(opts.seed, &job.ids, job.sample),
            gen: Generation {
                text: String::new(),
                token_ids: Vec::new(),
                token_logprobs: Vec::new(),
                entropies: Vec::new(),
            },
        })
        .collect();
    let mut done: Vec<Option<Generation>> = vec![None; batch.len()];
    let mut cache = match prefix {
        Some((_, shared_cache)) => {
            shared_cache.repeated_rows(batch.len(), longest + opts.max_new_tokens)?
        }
        None => decoder.new_cache(),
    };
    let mode = ForwardMode::default();
    // The prefill fills every position's keys and values; only the last one's logits are read.
    let hidden = prefill(decoder, padded, &keys, longest, &mut cache)?;
    let mut logits = decoder.next_token_logits(&hidden.squeeze(1)?)?;
    for step in 0..opts.max_new_tokens {
        let (flat, vocab, stats) = next_token_rows(&logits)?;
        let entropies: Vec<f32> = stats.iter().map(|s| s.entropy).collect();
        let (tokens, chosen): (Vec<u32>, Vec<f32>) = if opts.temperature == 0.0 {
            stats
                .iter()
                .map(|s| (s.argmax as u32, s.max - s.logsumexp))
                .unzip()
        } else {
            rows.iter_mut()
                .zip(flat.chunks(vocab).zip(&stats))
                .map(|(row, (logits, s))| {
                    let lp: Vec<f32> = logits.iter().map(|x| x - s.logsumexp).collect();
                    let t = sample(&lp, opts.temperature, opts.top_p, &mut row.rng);
                    (t, lp[t as usize])
                })
                .unzip()
        };
        let mut keep = Vec::with_capacity(rows.len());
        for (r, row) in rows.iter_mut().enumerate() {
            let token = tokens[r];
            row.gen.token_ids.push(token);
            row.gen.token_logprobs.push(chosen[r]);
            row.gen.entropies.push(entropies[r]);
            let finished = tokenizer.eos_ids.contains(&token) || step + 1 == opts.max_new_tokens;
            if !finished {
                keep.push(r);
            }
        }
        let mut active = Vec::with_capacity(keep.len());
        for (r, row) in rows.into_iter().enumerate() {
            if keep.contains(&r) {
                active.push(row);
            } else {
                done[row.job_index] = Some(row.gen);
            }
        }
        rows = active;
        if rows.is_empty() {
            break;
        }
        if keep.len() < tokens.len() {
            let idx: Vec<u32> = keep.iter().map(|r| *r as u32).collect();
            cache.select_rows(&Tensor::new(idx.as_slice(), device)?)?;
        }
        for row in rows.iter_mut() {
            row.keys.push(Some(row.next_pos));
            row.next_pos += 1;
        }
        let last: Vec<u32> = rows
            .iter()
            .map(|r| *r.gen.token_ids.last().unwrap_or(&0))
            .collect();
        let ids = Tensor::from_vec(last, (rows.len(), 1), device)?;
        let keys: Vec<Vec<Option<u32>>> = rows.iter().map(|r| r.keys.clone()).collect();
        let masks = decoder.build_masks(&keys, 1)?;
        let positions = position_tensor(&keys, 1, device)?;
        let hidden = decoder.forward_hidden(&ids, &positions, &masks, Some(&mut cache), mode)?;
        logits = decoder.next_token_logits(&hidden.squeeze(1)?)?;
    }
    for row in rows {
        done[row.job_index] = Some(row.gen);
    }
    done.into_iter()
        .map(|g| {
            let mut g = g.expect("every row either finished or ran to max_new_tokens");
            g.text = tokenizer.decode(&g.token_ids, true)?;
            Ok(g)
        })
        .collect()
}

/// The next-token logits `[b, vocab]` on the host (row-major) and each row's argmax,
/// log-normaliser and entropy, rows in parallel.
fn next_token_rows(logits: &Tensor) -> Result<(Vec<f32>, usize, Vec<RowStats>)> {
    let (_, vocab) = logits.dims2()?;
    let flat = logits
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let stats = flat.par_chunks(vocab.max(1)).map(row_stats).collect();
    Ok((flat, vocab, stats))
}

/// Draw from softmax(logprobs / temperature) restricted to the top-p nucleus.
fn sample(logprobs: &[f32], temperature: f64, top_p: f64, rng: &mut ChaCha8Rng) -> u32 {
    let max = logprobs.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(u32, f64)> = logprobs
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u32, ((*l as f64 - max) / temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    // Sort by probability, ties by id, so the nucleus is the same on every machine.
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0.0;
    let mut cut = probs.len();
    for (i, p) in probs.iter().enumerate() {
        kept += p.1 / total;
        if kept >= top_p {
            cut = i + 1;
            break;
        }
    }
    let nucleus = &probs[..cut];
    let mass: f64 = nucleus.iter().map(|p| p.1).sum();
    let mut u = rng.random::<f64>() * mass;
    for (id, p) in nucleus {
        if u < *p {
            return *id;
        }
        u -= p;
    }
    nucleus.last().map_or(0, |p| p.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(prompts: &[&[u32]]) -> Vec<Job> {
        prompts
            .iter()
            .map(|ids| Job {
                prompt: 0,
                sample: 0,
                ids: ids.to_vec(),
            })
            .collect()
    }

    #[test]
    fn the_shared_prefix_is_the_common_opening_leaving_every_row_a_token() {
        assert_eq!(
            shared_prefix(&jobs(&[&[1, 2, 3, 4], &[1, 2, 3, 9, 9], &[1, 2, 3]])),
            2
        );
        assert_eq!(shared_prefix(&jobs(&[&[1, 2, 3, 4], &[1, 2, 5, 4]])), 2);
        assert_eq!(shared_prefix(&jobs(&[&[7, 2], &[1, 2]])), 0);
        // Identical prompts (samples of one prompt) share all but their last token.
        assert_eq!(shared_prefix(&jobs(&[&[1, 2, 3], &[1, 2, 3]])), 2);
        // One row alone has nothing to share.
        assert_eq!(shared_prefix(&jobs(&[&[1, 2, 3]])), 0);
        assert_eq!(shared_prefix(&jobs(&[])), 0);
    }

    #[test]
    fn nucleus_of_one_is_greedy() {
        let lp = [-3.0f32, -0.1, -2.5];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20 {
            assert_eq!(sample(&lp, 1.0, 0.5, &mut rng), 1);
        }
    }

    #[test]
    fn sampling_follows_probabilities() {
        let lp = [(0.75f32).ln(), (0.25f32).ln()];
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let ones = (0..4000)
            .filter(|_| sample(&lp, 1.0, 1.0, &mut rng) == 1)
            .count();
        assert!((900..1100).contains(&ones), "{ones}");
    }

    #[test]
    fn entropy_of_uniform_is_log_n() -> Result<()> {
        let logits = Tensor::zeros((1, 8), DType::F32, &candle_core::Device::Cpu)?;
        let (_, vocab, stats) = next_token_rows(&logits)?;
        assert_eq!(vocab, 8);
        assert!((stats[0].entropy - 8f32.ln()).abs() < 1e-5);
        assert!((stats[0].logsumexp - 8f32.ln()).abs() < 1e-5);
        let peaked = Tensor::new(
            &[[0f32, 100.0, 0.0], [3.0, 1.0, 3.0]],
            &candle_core::Device::Cpu,
        )?;
        let (_, _, stats) = next_token_rows(&peaked)?;
        assert!(stats[0].entropy.abs() < 1e-6 && (stats[0].max - stats[0].logsumexp).abs() < 1e-6);
        assert_eq!(
            (stats[0].argmax, stats[1].argmax),
            (1, 0),
            "ties go to the first"
        );
        Ok(())
    }

    /// The runner's view: the message names the experiment keys and the numbers, and comes
    /// from the up-front check (naming the prompt) rather than half-way through.
    #[test]
    fn prompts_past_the_context_are_refused_before_generating() -> Result<()> {
        let lm =
            crate::models::lm::LanguageModel::tiny_random(3, crate::models::lm::Family::Llama)?;
        let context = lm.decoder().max_positions();
        let prompts = vec![vec![5u32; 4], vec![5u32; context - 2]];
        let opts = GenerateOptions {
            max_new_tokens: 3,
            ..GenerateOptions::default()
        };
        let err = generate_ids(lm.decoder(), lm.tokenizer(), &prompts, &opts)
            .expect_err("prompt 1 does not fit");
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!(
                "prompt 1 takes {} tokens and max_new_tokens is 3",
                context - 2
            )) && msg.contains("max_input_tokens"),
            "{msg}"
        );
        Ok(())
    }
}
