//! Fine-tuning the acquisition model on the labeled set: tokenization of (prompt, output)
//! pairs, a seeded dev split for early stopping, and the experiment's hyper-parameters mapped
//! onto the training loop.
use crate::config::{Experiment, LrSchedule};
use crate::data::Example;
use crate::models::lm::LanguageModel;
use crate::models::schedule::Schedule;
use crate::models::train::{train, TrainExample, TrainOptions, TrainReport};
use crate::runner::prompting::Prompter;
use anyhow::{Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub fn train_options(exp: &Experiment, seed: u64, pad_id: u32) -> TrainOptions {
    let t = &exp.train;
    TrainOptions {
        learning_rate: t.learning_rate,
        epochs: t.epochs,
        batch_size: t.batch_size,
        grad_accum: t.grad_accum,
        warmup_ratio: t.warmup_ratio,
        schedule: match t.schedule {
            LrSchedule::Linear => Schedule::Linear,
            LrSchedule::Cosine => Schedule::Cosine,
            LrSchedule::Constant => Schedule::Constant,
        },
        weight_decay: t.weight_decay,
        max_grad_norm: t.max_grad_norm,
        max_seq_len: t.max_seq_len,
        patience: t.patience,
        seed,
        pad_id,
    }
}

/// Tokenize one labeled example: the rendered prompt, then the output and the end-of-turn
/// token the model stops on.
pub fn tokenize_example(
    lm: &LanguageModel,
    prompter: &Prompter<'_>,
    example: &Example,
) -> Result<TrainExample> {
    let prompt = prompter.prompt(lm, example)?;
    let prompt_ids = lm.encode_prompt(&prompt)?;
    let mut target_ids = lm.encode(example.output.trim())?;
    if let Some(&eos) = lm.tokenizer().eos_ids.first() {
        target_ids.push(eos);
    }
    Ok(TrainExample {
        prompt_ids,
        target_ids,
    })
}

/// Train on `labeled` (with `train.dev_fraction` of it held out when early stopping is on).
pub fn finetune(
    lm: &LanguageModel,
    prompter: &Prompter<'_>,
    labeled: &[Example],
    seed: u64,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<TrainReport> {
    let exp = prompter.exp;
    let mut examples = labeled
        .iter()
        .map(|e| tokenize_example(lm, prompter, e))
        .collect::<Result<Vec<_>>>()?;
    let mut dev = Vec::new();
    if let Some(fraction) = exp.train.dev_fraction {
        // Hold out at least one example, and never all of them.
        let n_dev = ((examples.len() as f64 * fraction).round() as usize)
            .max(1)
            .min(examples.len().saturating_sub(1));
        if n_dev > 0 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x05ee_dde5);
            examples.shuffle(&mut rng);
            dev = examples.split_off(examples.len() - n_dev);
        }
    }
    let opts = train_options(exp, seed, lm.tokenizer().pad_id);
    train(lm, &examples, &dev, &opts, progress)
        .with_context(|| format!("fine-tuning on {} labeled examples", labeled.len()))
}
