//! `lab model info|generate|score`: try a language model by hand.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::generate::GenerateOptions;
use super::lm::{LanguageModel, ModelSource};

#[derive(Args, Debug)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(Args, Debug, Clone)]
pub struct ModelChoice {
    /// A models-cache name, a .gguf file, a model folder, or a hub id `owner/name[@revision]`.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub model: String,
    /// A LoRA adapter folder (adapter_model.safetensors + adapter_config.json) to apply.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct PromptArgs {
    /// User text; repeat the flag for a batch.
    #[arg(long, required = true)]
    pub prompt: Vec<String>,
    /// System text for the chat template.
    #[arg(long)]
    pub system: Option<String>,
    /// Feed the prompt as is, without the chat template (so without --system).
    #[arg(long, conflicts_with = "system")]
    pub raw: bool,
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Sentence embeddings (mean pooling, L2-normalised) from the encoder; prints the first
    /// values of each vector and the cosine between consecutive texts.
    #[command(
        after_help = "Example:\n  lab model embed --text \"first email\" --text \"second email\""
    )]
    Embed {
        /// A models-cache name (all-minilm-l6-v2), a folder with config.json,
        /// model.safetensors and tokenizer.json, or a hub id `owner/name`; default: the
        /// all-MiniLM-L6-v2 encoder from `lab setup`.
        #[arg(long)]
        encoder: Option<String>,
        /// Texts to embed (repeatable).
        #[arg(long = "text", required = true)]
        texts: Vec<String>,
    },
    /// Architecture, size, vocabulary and chat-template presence.
    #[command(after_help = "Example:\n  lab model info --model smollm2-135m-instruct")]
    Info {
        #[command(flatten)]
        model: ModelChoice,
    },
    /// Generate from prompts; prints each generation with its mean log-prob and entropy.
    #[command(after_help = "Examples:\n  \
lab model generate --prompt \"Write a subject line: the meeting moved to Tuesday\"\n  \
lab model generate --prompt \"Name a colour\" --temperature 0.7 --top-p 0.9 --n 4 --seed 1\n  \
lab model generate --raw --prompt \"The capital of France is\" --max-new-tokens 4")]
    Generate {
        #[command(flatten)]
        model: ModelChoice,
        #[command(flatten)]
        prompts: PromptArgs,
        /// Tokens to generate at most per sample (1 or more).
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        /// 0 = greedy; above 0 samples (`--temperature 0.7`).
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        /// Nucleus sampling: keep the smallest set of tokens whose probability reaches this,
        /// in (0, 1]; used when --temperature is above 0.
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        /// Samples per prompt.
        #[arg(long, default_value_t = 1)]
        n: usize,
        /// Seeds sampling: the same seed gives the same samples (unused when greedy).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Prompts run through the model together (more is faster, uses more memory).
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        /// Repeat the prompt list this many times (for throughput measurements).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
    },
    /// Teacher-forced log-probabilities of `--output` after `--prompt`.
    #[command(after_help = "Example:\n  \
lab model score --prompt \"Name a colour\" --output \"Blue\" --prompt \"Name a fruit\" --output \"Pear\"")]
    Score {
        #[command(flatten)]
        model: ModelChoice,
        #[command(flatten)]
        prompts: PromptArgs,
        /// One output per prompt.
        #[arg(long, required = true)]
        output: Vec<String>,
        /// Prompt and output pairs run through the model together.
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
    },
}

/// Refuse, before loading the model, flags that would generate nothing or that sampling cannot
/// use, naming the flag (the library's messages name its own options).
fn check_generate_flags(
    max_new_tokens: usize,
    temperature: f64,
    top_p: f64,
    n: usize,
    batch_size: usize,
) -> Result<()> {
    if max_new_tokens == 0 {
        bail!("--max-new-tokens 0 generates nothing: pass 1 or more (default 64)");
    }
    if n == 0 {
        bail!("--n 0 asks for no samples: pass 1 or more samples per prompt (default 1)");
    }
    check_batch_size(batch_size, 16)?;
    if !(temperature.is_finite() && temperature >= 0.0) {
        bail!(
            "--temperature {temperature}: pass 0 for greedy decoding or a number above 0 to sample"
        );
    }
    if !(top_p > 0.0 && top_p <= 1.0) {
        bail!("--top-p {top_p}: pass a probability above 0 and at most 1 (1 keeps every token)");
    }
    Ok(())
}

fn check_batch_size(batch_size: usize, default: usize) -> Result<()> {
    if batch_size == 0 {
        bail!("--batch-size 0 runs nothing: pass 1 or more (default {default})");
    }
    Ok(())
}

/// The sentence encoder `--encoder` names: as experiments' `[encoder]` reads it, but a
/// language model's name or an unknown cache name is refused naming the flag, and `~/` is the
/// home folder.
fn load_encoder(spec: Option<&str>) -> Result<crate::models::encoder::SentenceEncoder> {
    load_encoder_in(spec, &crate::models::cache::models_dir())
}

fn load_encoder_in(
    spec: Option<&str>,
    models_dir: &std::path::Path,
) -> Result<crate::models::encoder::SentenceEncoder> {
    use crate::models::encoder::{EncoderSource, SentenceEncoder, DEFAULT_ENCODER};
    const TAKES: &str =
        "--encoder takes a sentence encoder: a models-cache name (all-minilm-l6-v2, \
                         from `lab setup`), a folder with config.json, model.safetensors and \
                         tokenizer.json, or a hub id `owner/name`";
    let Some(spec) = spec else {
        return SentenceEncoder::load_default();
    };
    let expanded = super::loader::expand_user_home(spec);
    match EncoderSource::parse(&expanded.to_string_lossy()) {
        EncoderSource::Default(name) if name != DEFAULT_ENCODER => {
            let dir = models_dir.join(&name);
            if dir.join("config.json").is_file() {
                return SentenceEncoder::load(&dir)
                    .with_context(|| format!("--encoder {spec}: cannot load {}", dir.display()));
            }
            let is_language_model = super::setup::setup_command(&name).is_some()
                || name.starts_with("tiny-random")
                || dir.is_dir();
            if is_language_model {
                bail!(
                    "--encoder {spec} is a language model (`lab model info|generate|score \
                     --model {spec}` use it), not a sentence encoder; {TAKES}"
                );
            }
            let hint = crate::config::diagnose::did_you_mean(&name, &[DEFAULT_ENCODER.to_string()]);
            bail!(
                "--encoder {spec}: no sentence encoder `{name}` in the models cache ({}); \
                 {hint}{TAKES}",
                models_dir.display()
            )
        }
        EncoderSource::Folder(dir) => SentenceEncoder::load(&dir).with_context(|| {
            format!(
                "--encoder {spec}: cannot load a sentence encoder from {} (it needs \
                 config.json, model.safetensors and tokenizer.json)",
                dir.display()
            )
        }),
        source => SentenceEncoder::load_source(&source)
            .with_context(|| format!("--encoder {spec}: cannot load the sentence encoder")),
    }
}

fn load(choice: &ModelChoice) -> Result<LanguageModel> {
    let start = Instant::now();
    let mut lm = LanguageModel::load(&ModelSource::parse(&choice.model))?;
    if std::env::var_os("LAB_VERBOSE").is_some() {
        eprintln!(
            "loaded {} in {:.2}s",
            choice.model,
            start.elapsed().as_secs_f64()
        );
    }
    if let Some(dir) = &choice.adapter {
        lm.load_adapter(dir)
            .with_context(|| format!("--adapter {}", dir.display()))?;
        lm.merge_lora()?;
    }
    Ok(lm)
}

/// What `model info` says about an applied adapter (its config was read by `load` already).
fn adapter_summary(dir: &std::path::Path) -> String {
    let config: serde_json::Value = std::fs::read_to_string(dir.join("adapter_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let method = config["atgen_method"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            if config["use_dora"].as_bool() == Some(true) {
                "dora".into()
            } else {
                "lora".into()
            }
        });
    let targets = config["target_modules"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    format!(
        "{} ({method}, r {}, alpha {}, targets {targets}; merged into the weights above)",
        dir.display(),
        config["r"],
        config["lora_alpha"]
    )
}

fn render(lm: &LanguageModel, p: &PromptArgs) -> Result<Vec<String>> {
    p.prompt
        .iter()
        .map(|u| {
            if p.raw {
                Ok(u.clone())
            } else {
                lm.render_prompt(p.system.as_deref(), u)
            }
        })
        .collect()
}

/// How a prompt's token count is described: rendered prompts include the chat template.
fn prompt_tokens_phrase(p: &PromptArgs, tokens: usize) -> String {
    if p.raw {
        format!("{tokens} tokens")
    } else {
        format!("{tokens} tokens with the chat template")
    }
}

/// Refuse, before generating anything, a prompt whose tokens plus `--max-new-tokens` exceed
/// the context, naming the flag (the library's own message names experiment keys).
fn refuse_overflowing_generation(
    lm: &LanguageModel,
    rendered: &[String],
    p: &PromptArgs,
    max_new_tokens: usize,
) -> Result<()> {
    let context = lm.decoder().max_positions();
    for (i, prompt) in rendered.iter().enumerate() {
        let tokens = lm.encode_prompt(prompt)?.len();
        if tokens + max_new_tokens <= context {
            continue;
        }
        let advice = if tokens < context {
            format!(
                "lower --max-new-tokens to {} or less, or shorten the prompt",
                context - tokens
            )
        } else {
            "shorten the prompt: it alone fills the context".to_string()
        };
        bail!(
            "--prompt [{i}] takes {} and --max-new-tokens is {max_new_tokens}: {} tokens, more \
             than {}; {advice}",
            prompt_tokens_phrase(p, tokens),
            tokens + max_new_tokens,
            lm.decoder().describe_context()
        );
    }
    Ok(())
}

/// Refuse a prompt and output that together exceed the context, naming the two flags.
fn refuse_overflowing_scores(
    lm: &LanguageModel,
    rendered: &[String],
    p: &PromptArgs,
    outputs: &[String],
) -> Result<()> {
    let context = lm.decoder().max_positions();
    for (i, (prompt, output)) in rendered.iter().zip(outputs).enumerate() {
        let (prompt_tokens, output_tokens) =
            (lm.encode_prompt(prompt)?.len(), lm.encode(output)?.len());
        if prompt_tokens + output_tokens > context {
            bail!(
                "--prompt [{i}] takes {} and its --output {output_tokens} tokens: {} tokens, \
                 more than {}; shorten the --prompt or the --output",
                prompt_tokens_phrase(p, prompt_tokens),
                prompt_tokens + output_tokens,
                lm.decoder().describe_context()
            );
        }
    }
    Ok(())
}

/// One output's line: sum and mean log-probability, then each token's.
fn score_line(i: usize, logprobs: &[f32]) -> String {
    // An empty sum of f32 is -0.0, which would print as "-0.0000"; adding 0.0 makes it 0.0.
    let sum: f32 = logprobs.iter().sum::<f32>() + 0.0;
    let mean = if logprobs.is_empty() {
        0.0
    } else {
        sum / logprobs.len() as f32
    };
    let rounded: Vec<String> = logprobs.iter().map(|x| format!("{x:.4}")).collect();
    format!(
        "[{i}] sum {sum:.4}, mean {mean:.4}, {} tokens: [{}]",
        logprobs.len(),
        rounded.join(", ")
    )
}

pub fn run(args: ModelArgs) -> Result<()> {
    match args.command {
        ModelCommand::Info { model } => {
            let lm = load(&model)?;
            let i = lm.info();
            println!("source:        {}", i.source);
            println!("architecture:  {}", i.architecture);
            println!("layers:        {}", i.layers);
            println!("hidden:        {}", i.hidden);
            println!("heads:         {} ({} key/value)", i.heads, i.kv_heads);
            println!("vocab:         {}", i.vocab);
            println!(
                "params:        {} ({:.1}M)",
                i.params,
                i.params as f64 / 1e6
            );
            println!(
                "chat template: {}",
                if i.chat_template {
                    "yes"
                } else {
                    "no (plain format)"
                }
            );
            if let Some(dir) = &model.adapter {
                println!("adapter:       {}", adapter_summary(dir));
            }
            Ok(())
        }
        ModelCommand::Generate {
            model,
            prompts,
            max_new_tokens,
            temperature,
            top_p,
            n,
            seed,
            batch_size,
            repeat,
        } => {
            check_generate_flags(max_new_tokens, temperature, top_p, n, batch_size)?;
            let lm = load(&model)?;
            let rendered = render(&lm, &prompts)?;
            let all: Vec<String> = (0..repeat.max(1)).flat_map(|_| rendered.clone()).collect();
            let opts = GenerateOptions {
                max_new_tokens,
                temperature,
                top_p,
                n,
                seed,
                batch_size,
                max_input_tokens: None,
            };
            refuse_overflowing_generation(&lm, &rendered, &prompts, max_new_tokens)?;
            let start = Instant::now();
            let gens = lm.generate(&all, &opts)?;
            let secs = start.elapsed().as_secs_f64();
            let tokens: usize = gens.iter().flatten().map(|g| g.token_ids.len()).sum();
            for (i, samples) in gens.iter().take(rendered.len()).enumerate() {
                for (j, g) in samples.iter().enumerate() {
                    println!(
                        "[{i}.{j}] mean logprob {:.3}, mean entropy {:.3}, {} tokens\n{}\n",
                        g.mean_logprob(),
                        g.mean_entropy(),
                        g.token_ids.len(),
                        g.text
                    );
                }
            }
            eprintln!(
                "generated {tokens} tokens for {} prompts in {secs:.2}s: {:.1} tokens/s",
                all.len(),
                tokens as f64 / secs
            );
            Ok(())
        }
        ModelCommand::Embed { encoder, texts } => {
            let enc = load_encoder(encoder.as_deref())?;
            let start = Instant::now();
            let m = enc.embed(&texts)?;
            let secs = start.elapsed().as_secs_f64();
            for (i, text) in texts.iter().enumerate() {
                let head: Vec<String> =
                    m.row(i).iter().take(6).map(|x| format!("{x:.4}")).collect();
                let short: String = text.chars().take(50).collect();
                println!("[{i}] dim {} [{} …] {short:?}", m.cols, head.join(", "));
                if i > 0 {
                    let cos: f32 = m.row(i).iter().zip(m.row(i - 1)).map(|(a, b)| a * b).sum();
                    println!("    cosine with [{}]: {cos:.4}", i - 1);
                }
            }
            eprintln!("embedded {} texts in {secs:.2}s", texts.len());
            Ok(())
        }
        ModelCommand::Score {
            model,
            prompts,
            output,
            batch_size,
        } => {
            if output.len() != prompts.prompt.len() {
                bail!(
                    "give one --output per --prompt ({} prompts, {} outputs)",
                    prompts.prompt.len(),
                    output.len()
                );
            }
            check_batch_size(batch_size, 8)?;
            let lm = load(&model)?;
            let rendered = render(&lm, &prompts)?;
            refuse_overflowing_scores(&lm, &rendered, &prompts, &output)?;
            let start = Instant::now();
            let scores = lm.score(&rendered, &output, batch_size)?;
            let secs = start.elapsed().as_secs_f64();
            let tokens: usize = scores.iter().map(Vec::len).sum();
            for (i, lp) in scores.iter().enumerate() {
                println!("{}", score_line(i, lp));
            }
            eprintln!("scored {tokens} tokens in {secs:.2}s");
            Ok(())
        }
    }
}

#[cfg(test)]
#[path = "model_cli_tests.rs"]
mod tests;
