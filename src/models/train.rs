//! The fine-tuning loop, model-agnostic over [`TrainableModel`]: left-padded batches, loss on
//! the target tokens only, gradient accumulation, clipping by global norm, AdamW, warm-up and
//! decay per optimizer step, seeded shuffling and dropout, early stopping on a dev set.
use crate::models::optim::{AdamW, AdamWConfig};
use crate::models::schedule::{LrSchedule, Schedule};
use crate::models::trainable::TrainableModel;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One supervised example, already tokenized. `target_ids` ends with the EOS token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainExample {
    pub prompt_ids: Vec<u32>,
    pub target_ids: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    pub learning_rate: f64,
    pub epochs: usize,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Forward passes per optimizer step.
    pub grad_accum: usize,
    /// Share of all optimizer steps spent warming up (0..=1).
    pub warmup_ratio: f64,
    pub schedule: Schedule,
    pub weight_decay: f64,
    /// Clip the global gradient norm to this; 0 disables (as in transformers).
    pub max_grad_norm: f64,
    /// Longest prompt + target; prompts lose tokens from the left to fit.
    pub max_seq_len: usize,
    /// Stop after this many epochs without a better dev loss (needs a dev set).
    pub patience: Option<usize>,
    pub seed: u64,
    pub pad_id: u32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            learning_rate: 1e-4,
            epochs: 3,
            batch_size: 8,
            grad_accum: 1,
            warmup_ratio: 0.03,
            schedule: Schedule::Linear,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            max_seq_len: 512,
            patience: None,
            seed: 0,
            pad_id: 0,
        }
    }
}

impl TrainOptions {
    pub fn validate(&self) -> Result<()> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            bail!(
                "learning_rate must be a positive number, got {}",
                self.learning_rate
            );
        }
        if self.epochs == 0 || self.batch_size == 0 || self.grad_accum == 0 {
            bail!(
                "epochs, batch_size and grad_accum must be at least 1 (got {}, {}, {})",
                self.epochs,
                self.batch_size,
                self.grad_accum
            );
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            bail!(
                "warmup_ratio must be within 0..=1, got {}",
                self.warmup_ratio
            );
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("weight_decay must be ≥ 0, got {}", self.weight_decay);
        }
        if !self.max_grad_norm.is_finite() || self.max_grad_norm < 0.0 {
            bail!(
                "max_grad_norm must be ≥ 0 (0 disables clipping), got {}",
                self.max_grad_norm
            );
        }
        if self.max_seq_len < 2 {
            bail!("max_seq_len must be at least 2, got {}", self.max_seq_len);
        }
        if self.patience == Some(0) {
            bail!("patience must be at least 1 epoch (leave it unset to disable early stopping)");
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainReport {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Training loss per optimizer step (mean over its accumulated batches).
    pub losses: Vec<f32>,
    /// Global gradient norm per optimizer step, before clipping.
    pub grad_norms: Vec<f32>,
    /// Dev loss after each epoch (empty without a dev set).
    pub dev_losses: Vec<f32>,
    /// 0-based epoch whose weights were kept (the best dev loss); `None` without a dev set,
    /// when the final weights are kept.
    pub best_epoch: Option<usize>,
    /// Tokens (prompt + target, no padding) in all training forward passes.
    pub tokens_seen: usize,
    pub seconds: f64,
}

/// A left-padded batch. The loss reads the logits only at the scored positions: those whose
/// next token is a target token. Prompts are usually much longer than targets, so selecting
/// these rows before the softmax saves most of its time and memory.
pub struct Batch {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    /// `[n]` u32: flat indices `row * seq + t` of the scored positions.
    pub scored_positions: Tensor,
    /// `[n]` u32: the token each scored position must predict.
    pub scored_targets: Tensor,
    pub tokens: usize,
    pub target_tokens: usize,
}

/// The kept part of one example: prompt cut from the left, then (only if the target alone is
/// too long) target cut from the right. Returns (tokens, number of prompt tokens kept).
fn fit(example: &TrainExample, max_seq_len: usize) -> (Vec<u32>, usize) {
    let target = &example.target_ids[..example.target_ids.len().min(max_seq_len)];
    let room = max_seq_len - target.len();
    let prompt = &example.prompt_ids[example.prompt_ids.len().saturating_sub(room)..];
    let mut ids = Vec::with_capacity(prompt.len() + target.len());
    ids.extend_from_slice(prompt);
    ids.extend_from_slice(target);
    (ids, prompt.len())
}

pub fn build_batch(
    examples: &[&TrainExample],
    max_seq_len: usize,
    pad_id: u32,
    device: &Device,
) -> Result<Batch> {
    let fitted: Vec<(Vec<u32>, usize)> = examples.iter().map(|e| fit(e, max_seq_len)).collect();
    // At least 2 so there is one next-token position even for a one-token example.
    let width = fitted
        .iter()
        .map(|(ids, _)| ids.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let n = examples.len();
    let mut ids = Vec::with_capacity(n * width);
    let mut mask = Vec::with_capacity(n * width);
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    let (mut tokens, mut target_tokens) = (0, 0);
    for (r, (row_ids, prompt_len)) in fitted.iter().enumerate() {
        let pad = width - row_ids.len();
        ids.extend(std::iter::repeat_n(pad_id, pad));
        ids.extend_from_slice(row_ids);
        mask.extend(std::iter::repeat_n(0u32, pad));
        mask.extend(std::iter::repeat_n(1u32, row_ids.len()));
        let first_target = pad + prompt_len;
        let row = &ids[ids.len() - width..];
        // Position t predicts t+1; the first target token needs a real token before it.
        for t in first_target.saturating_sub(1).max(pad)..width - 1 {
            positions.push((r * width + t) as u32);
            targets.push(row[t + 1]);
            target_tokens += 1;
        }
        tokens += row_ids.len();
    }
    Ok(Batch {
        input_ids: Tensor::from_vec(ids, (n, width), device)?,
        attention_mask: Tensor::from_vec(mask, (n, width), device)?,
        scored_positions: Tensor::from_vec(positions, target_tokens, device)?,
        scored_targets: Tensor::from_vec(targets, target_tokens, device)?,
        tokens,
        target_tokens,
    })
}

/// With `LAB_STEP_TIMES=1`, each step's seconds in forward, backward (with the gradients'
/// accumulation) and update (norm, clipping, AdamW), and its batches' shapes, on stderr; the
/// device is synchronized at each lap so a GPU's queued work is counted where it was issued.
/// Off, it does nothing.
struct StepTimer<'a> {
    device: &'a Device,
    enabled: bool,
    last: std::time::Instant,
    laps: Vec<(&'static str, f64)>,
}

impl<'a> StepTimer<'a> {
    fn enabled_by_env() -> bool {
        std::env::var_os("LAB_STEP_TIMES").is_some_and(|v| v != "0")
    }

    fn start(device: &'a Device, enabled: bool) -> Self {
        Self {
            device,
            enabled,
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, phase: &'static str) -> Result<()> {
        if self.enabled {
            self.device.synchronize()?;
            let now = std::time::Instant::now();
            let secs = (now - self.last).as_secs_f64();
            match self.laps.iter_mut().find(|(p, _)| *p == phase) {
                Some((_, total)) => *total += secs,
                None => self.laps.push((phase, secs)),
            }
            self.last = now;
        }
        Ok(())
    }

    fn report(&self, step: usize, shapes: &[(usize, usize, usize)]) {
        if self.enabled {
            let shapes: Vec<String> = shapes
                .iter()
                .map(|(rows, width, tokens)| format!("{rows}×{width} ({tokens} tokens)"))
                .collect();
            let laps: Vec<String> = self
                .laps
                .iter()
                .map(|(phase, secs)| format!("{phase} {:.1} ms", secs * 1e3))
                .collect();
            eprintln!(
                "step {step}: {}; batches {}",
                laps.join(", "),
                shapes.join(", ")
            );
        }
    }
}

/// Summed cross-entropy over the batch's target tokens (a scalar tensor, differentiable).
fn summed_loss(
    model: &impl TrainableModel,
    batch: &Batch,
    train: bool,
    dropout_seed: u64,
) -> Result<Tensor> {
    let rows = model
        .forward_train_rows(
            &batch.input_ids,
            &batch.attention_mask,
            &batch.scored_positions,
            train,
            dropout_seed,
        )?
        .to_dtype(DType::F32)?;
    let (n, _vocab) = rows
        .dims2()
        .context("the model's logits for the scored positions are not [n, vocab]")?;
    if n != batch.target_tokens {
        bail!(
            "the model returned logits for {n} positions but the batch scores {}",
            batch.target_tokens
        );
    }
    let log_probs = candle_nn::ops::log_softmax(&rows, D::Minus1)?;
    let picked = log_probs.gather(&batch.scored_targets.unsqueeze(D::Minus1)?, D::Minus1)?;
    Ok(picked.sum_all()?.neg()?)
}

/// Mean cross-entropy per target token over `examples`, without dropout or updates.
pub fn evaluate_loss(
    model: &impl TrainableModel,
    examples: &[TrainExample],
    opts: &TrainOptions,
    device: &Device,
) -> Result<f32> {
    let (mut total, mut count) = (0f64, 0usize);
    let refs: Vec<&TrainExample> = examples.iter().collect();
    for chunk in refs.chunks(opts.batch_size.max(1)) {
        let batch = build_batch(chunk, opts.max_seq_len, opts.pad_id, device)?;
        if batch.target_tokens == 0 {
            continue;
        }
        let loss = summed_loss(model, &batch, false, 0)?.detach();
        total += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        count += batch.target_tokens;
    }
    if count == 0 {
        bail!("the evaluation set has no target tokens");
    }
    Ok((total / count as f64) as f32)
}

fn check_examples(examples: &[TrainExample], which: &str) -> Result<()> {
    if let Some(i) = examples.iter().position(|e| e.target_ids.is_empty()) {
        bail!("{which} example {i} has no target tokens (the target must at least hold EOS)");
    }
    Ok(())
}

fn snapshot(vars: &[(String, Var)]) -> Result<Vec<Tensor>> {
    Ok(vars
        .iter()
        .map(|(_, v)| v.as_tensor().copy())
        .collect::<candle_core::Result<_>>()?)
}

/// Fine-tune `model`'s trainable variables in place. With a dev set, the weights of the epoch
/// with the lowest dev loss are restored at the end (and `patience` may stop early).
/// An empty training set returns an empty report.
pub fn train(
    model: &impl TrainableModel,
    train: &[TrainExample],
    dev: &[TrainExample],
    opts: &TrainOptions,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<TrainReport> {
    let start = std::time::Instant::now();
    opts.validate().context("invalid training options")?;
    check_examples(train, "training")?;
    check_examples(dev, "dev")?;
    let vars = model.trainable_vars();
    if vars.is_empty() {
        bail!("the model has no trainable variables (is the LoRA adapter attached?)");
    }
    let mut report = TrainReport::default();
    if train.is_empty() {
        return Ok(report);
    }
    let device = vars[0].1.device().clone();
    // Input gradients read contiguous transposes of the frozen weights until training ends.
    let _transposed = super::training_weights::training_scope();
    let batches_per_epoch = train.len().div_ceil(opts.batch_size);
    let steps_per_epoch = batches_per_epoch.div_ceil(opts.grad_accum);
    let schedule = LrSchedule::new(
        opts.schedule,
        opts.learning_rate,
        steps_per_epoch * opts.epochs,
        opts.warmup_ratio,
    );
    let mut optimizer = AdamW::new(
        &vars,
        AdamWConfig {
            weight_decay: opts.weight_decay,
            ..Default::default()
        },
    )?;
    if let Some(bar) = progress {
        bar.set_length(schedule.total_steps as u64);
    }
    let mut shuffle_rng = ChaCha8Rng::seed_from_u64(opts.seed);
    // A separate stream so dropout does not shift the shuffles (and vice versa).
    let mut dropout_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5EED_D80F_0A7E_0001);
    let mut best: Option<(f32, usize, Vec<Tensor>)> = None;
    let mut order: Vec<usize> = (0..train.len()).collect();

    let step_times = StepTimer::enabled_by_env();
    for epoch in 0..opts.epochs {
        order.sort_unstable();
        order.shuffle(&mut shuffle_rng);
        let batches: Vec<Vec<&TrainExample>> = order
            .chunks(opts.batch_size)
            .map(|c| c.iter().map(|&i| &train[i]).collect())
            .collect();
        for group in batches.chunks(opts.grad_accum) {
            let mut timer = StepTimer::start(&device, step_times);
            let mut grads: Option<Vec<Tensor>> = None;
            let mut loss_sum = 0f64;
            let mut shapes = Vec::new();
            for examples in group {
                let batch = build_batch(examples, opts.max_seq_len, opts.pad_id, &device)?;
                report.tokens_seen += batch.tokens;
                let (rows, width) = batch.input_ids.dims2()?;
                shapes.push((rows, width, batch.tokens));
                let seed = dropout_rng.next_u64();
                let summed = summed_loss(model, &batch, true, seed)?;
                let loss = (summed / batch.target_tokens.max(1) as f64)?;
                loss_sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                timer.lap("forward")?;
                let store = loss.backward()?;
                timer.lap("backward")?;
                let batch_grads = vars
                    .iter()
                    .map(|(_, v)| match store.get(v.as_tensor()) {
                        // Detached: a gradient computed from tracked tensors would keep this
                        // micro-batch's whole graph alive through the accumulation.
                        Some(g) => Ok(g.detach()),
                        // A variable the loss does not reach gets no update signal.
                        None => v.as_tensor().zeros_like(),
                    })
                    .collect::<candle_core::Result<Vec<_>>>()?;
                grads = Some(match grads {
                    None => batch_grads,
                    Some(acc) => acc
                        .iter()
                        .zip(&batch_grads)
                        .map(|(a, g)| a + g)
                        .collect::<candle_core::Result<_>>()?,
                });
            }
            let scale = 1.0 / group.len() as f64;
            let mut grads = optimizer.flatten(&grads.unwrap_or_default(), scale)?;
            let norm = grads.norm()?;
            let loss = (loss_sum * scale) as f32;
            // Checked before the update so a NaN never reaches the weights.
            if !loss.is_finite() || !norm.is_finite() {
                bail!(
                    "training diverged at step {} (loss {loss}, gradient norm {norm}); \
                     lower the learning rate",
                    report.steps
                );
            }
            grads.clip(opts.max_grad_norm, norm)?;
            optimizer.step_flat(&grads, schedule.lr_at(report.steps))?;
            timer.lap("update")?;
            timer.report(report.steps, &shapes);
            report.losses.push(loss);
            report.grad_norms.push(norm as f32);
            report.steps += 1;
            if let Some(bar) = progress {
                bar.set_message(format!("epoch {} loss {loss:.4}", epoch + 1));
                bar.inc(1);
            }
        }
        if dev.is_empty() {
            continue;
        }
        let dev_loss = evaluate_loss(model, dev, opts, &device)?;
        report.dev_losses.push(dev_loss);
        let improved = best.as_ref().is_none_or(|(b, _, _)| dev_loss < *b);
        if improved {
            best = Some((dev_loss, epoch, snapshot(&vars)?));
        } else if let (Some(patience), Some((_, best_epoch, _))) = (opts.patience, &best) {
            if epoch - best_epoch >= patience {
                break;
            }
        }
    }
    if let Some((_, epoch, weights)) = best {
        for ((_, var), w) in vars.iter().zip(&weights) {
            var.set(w)?;
        }
        report.best_epoch = Some(epoch);
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(prompt: &[u32], target: &[u32]) -> TrainExample {
        TrainExample {
            prompt_ids: prompt.to_vec(),
            target_ids: target.to_vec(),
        }
    }

    fn rows_u32(t: &Tensor) -> Vec<Vec<u32>> {
        t.to_vec2().unwrap()
    }

    #[test]
    fn batches_are_left_padded_and_score_targets_only() {
        let a = ex(&[10, 11, 12], &[20, 2]);
        let b = ex(&[13], &[21, 22, 2]);
        let batch = build_batch(&[&a, &b], 16, 0, &Device::Cpu).unwrap();
        assert_eq!(
            rows_u32(&batch.input_ids),
            vec![vec![10, 11, 12, 20, 2], vec![0, 13, 21, 22, 2]]
        );
        assert_eq!(
            rows_u32(&batch.attention_mask),
            vec![vec![1, 1, 1, 1, 1], vec![0, 1, 1, 1, 1]]
        );
        // Row 0 scores positions 2, 3 (predicting 20, 2); row 1 (width 5) positions 1..=3.
        let positions: Vec<u32> = batch.scored_positions.to_vec1().unwrap();
        let targets: Vec<u32> = batch.scored_targets.to_vec1().unwrap();
        assert_eq!(positions, vec![2, 3, 6, 7, 8]);
        assert_eq!(targets, vec![20, 2, 21, 22, 2]);
        assert_eq!((batch.tokens, batch.target_tokens), (9, 5));
    }

    /// Logits 2.0 on token `(x + 1) % 8` and 0 elsewhere, whatever the context.
    struct Successor;

    impl TrainableModel for Successor {
        fn trainable_vars(&self) -> Vec<(String, Var)> {
            Vec::new()
        }

        fn forward_train(
            &self,
            input_ids: &Tensor,
            _mask: &Tensor,
            _train: bool,
            _seed: u64,
        ) -> candle_core::Result<Tensor> {
            let ids: Vec<Vec<u32>> = input_ids.to_vec2()?;
            let (b, s) = (ids.len(), ids[0].len());
            let mut logits = vec![0f32; b * s * 8];
            for (r, row) in ids.iter().enumerate() {
                for (t, &x) in row.iter().enumerate() {
                    logits[(r * s + t) * 8 + ((x as usize + 1) % 8)] = 2.0;
                }
            }
            Tensor::from_vec(logits, (b, s, 8), input_ids.device())
        }
    }

    #[test]
    fn loss_counts_target_tokens_only() {
        // The prompt 5, 1, 7 breaks the successor rule; the target 0, 1, 2 follows it (after
        // 7 comes 0), so only target positions are cheap and the loss is the "right" value.
        let a = ex(&[5, 1, 7], &[0, 1, 2]);
        let b = ex(&[3], &[5]); // 3 → 5 is wrong: one expensive target token
        let batch = build_batch(&[&a, &b], 16, 0, &Device::Cpu).unwrap();
        let loss: f32 = summed_loss(&Successor, &batch, false, 0)
            .unwrap()
            .to_scalar()
            .unwrap();
        let z = 2f64.exp() + 7.0;
        let right = -(2f64.exp() / z).ln();
        let wrong = -(1.0 / z).ln();
        let expected = 3.0 * right + wrong;
        assert!(
            (loss as f64 - expected).abs() < 1e-5,
            "{loss} vs {expected}"
        );
    }

    #[test]
    fn long_prompts_lose_tokens_from_the_left() {
        let a = ex(&[1, 2, 3, 4, 5, 6], &[7, 8]);
        let batch = build_batch(&[&a], 5, 0, &Device::Cpu).unwrap();
        assert_eq!(rows_u32(&batch.input_ids), vec![vec![4, 5, 6, 7, 8]]);
        assert_eq!(batch.target_tokens, 2);
        // A target longer than the limit keeps its beginning; no prompt token is left to
        // predict the first target token, so it is not scored.
        let long = ex(&[1], &[7, 8, 9, 10]);
        let batch = build_batch(&[&long], 3, 0, &Device::Cpu).unwrap();
        assert_eq!(rows_u32(&batch.input_ids), vec![vec![7, 8, 9]]);
        assert_eq!(batch.target_tokens, 2);
    }

    #[test]
    fn options_are_validated_with_names() {
        let bad = TrainOptions {
            warmup_ratio: 1.5,
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("warmup_ratio"));
        let bad = TrainOptions {
            batch_size: 0,
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("batch_size"));
        assert!(TrainOptions::default().validate().is_ok());
    }
}
