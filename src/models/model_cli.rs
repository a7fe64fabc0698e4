//! `lab model info|generate|score`: try a language model by hand.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
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
    /// Feed the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Sentence embeddings (mean pooling, L2-normalised) from the encoder; prints the first
    /// values of each vector and the cosine between consecutive texts.
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
    Info {
        #[command(flatten)]
        model: ModelChoice,
    },
    /// Generate from prompts; prints each generation with its mean log-prob and entropy.
    Generate {
        #[command(flatten)]
        model: ModelChoice,
        #[command(flatten)]
        prompts: PromptArgs,
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        /// 0 = greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        /// Samples per prompt.
        #[arg(long, default_value_t = 1)]
        n: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        /// Repeat the prompt list this many times (for throughput measurements).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
    },
    /// Teacher-forced log-probabilities of `--output` after `--prompt`.
    Score {
        #[command(flatten)]
        model: ModelChoice,
        #[command(flatten)]
        prompts: PromptArgs,
        /// One output per prompt.
        #[arg(long, required = true)]
        output: Vec<String>,
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
    },
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
        lm.load_adapter(dir)?;
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
        let tokens = lm.encode(prompt)?.len();
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
        let (prompt_tokens, output_tokens) = (lm.encode(prompt)?.len(), lm.encode(output)?.len());
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
            let enc = match encoder {
                Some(spec) => crate::models::encoder::SentenceEncoder::load_source(
                    &crate::models::encoder::EncoderSource::parse(&spec),
                )?,
                None => crate::models::encoder::SentenceEncoder::load_default()?,
            };
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
mod tests {
    use super::*;

    #[test]
    fn info_names_the_applied_adapter_and_its_settings() -> Result<()> {
        let mut lm = LanguageModel::tiny_random(3, crate::models::lm::Family::Llama)?;
        lm.attach_lora(&crate::models::lm::LoraSettings {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: vec!["q_proj".into(), "v_proj".into()],
            method: crate::models::lora::PeftMethod::Dora,
            seed: 1,
        })?;
        let dir = tempfile::tempdir()?;
        lm.save_adapter(dir.path())?;
        let line = adapter_summary(dir.path());
        assert!(
            line.ends_with(
                "(dora, r 4, alpha 8.0, targets q_proj,v_proj; merged into the weights above)"
            ),
            "{line}"
        );
        Ok(())
    }

    /// A tiny llama folder whose config.json allows `context` positions.
    fn tiny_folder_with_context(context: usize) -> Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        crate::models::loader::write_tiny_folder(dir.path(), crate::models::lm::Family::Llama, 3)?;
        let path = dir.path().join("config.json");
        let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        config["max_position_embeddings"] = context.into();
        std::fs::write(&path, config.to_string())?;
        Ok(dir)
    }

    fn choice(dir: &std::path::Path) -> ModelChoice {
        ModelChoice {
            model: dir.display().to_string(),
            adapter: None,
        }
    }

    fn prompts(text: &str) -> PromptArgs {
        PromptArgs {
            prompt: vec!["short".into(), text.into()],
            system: None,
            raw: true,
        }
    }

    fn generate_error(dir: &std::path::Path, text: &str, max_new_tokens: usize) -> String {
        let command = ModelCommand::Generate {
            model: choice(dir),
            prompts: prompts(text),
            max_new_tokens,
            temperature: 0.0,
            top_p: 1.0,
            n: 1,
            seed: 0,
            batch_size: 16,
            repeat: 1,
        };
        let err = run(ModelArgs { command }).expect_err("the prompt must not fit");
        format!("{err:#}")
    }

    /// The tiny tokenizer is byte-level: a raw prompt of n ASCII letters is n tokens.
    #[test]
    fn generate_past_the_context_names_the_numbers_and_the_flag() -> Result<()> {
        let dir = tiny_folder_with_context(512)?;
        let msg = generate_error(dir.path(), &"a".repeat(500), 64);
        assert!(
            msg.contains("--prompt [1] takes 500 tokens and --max-new-tokens is 64: 564 tokens")
                && msg.contains("the model's context of 512 tokens")
                && msg.contains("lower --max-new-tokens to 12 or less, or shorten the prompt")
                && !msg.contains("max_input_tokens"),
            "{msg}"
        );
        Ok(())
    }

    /// A context past the rotary tables' cap is not reported as the cap.
    #[test]
    fn generate_past_the_table_cap_names_the_configured_context() -> Result<()> {
        let dir = tiny_folder_with_context(40_000)?;
        let msg = generate_error(dir.path(), "abc", 40_000);
        assert!(
            msg.contains("more than the 32768 positions this decoder runs")
                && msg.contains("the model's config allows 40000"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn score_past_the_context_names_prompt_and_output_lengths() -> Result<()> {
        let dir = tiny_folder_with_context(512)?;
        let command = ModelCommand::Score {
            model: choice(dir.path()),
            prompts: prompts(&"a".repeat(300)),
            output: vec!["x".into(), "b".repeat(250)],
            batch_size: 8,
        };
        let msg = format!("{:#}", run(ModelArgs { command }).expect_err("too long"));
        assert!(
            msg.contains("--prompt [1] takes 300 tokens and its --output 250 tokens: 550 tokens")
                && msg.contains("shorten the --prompt or the --output")
                && !msg.contains("max_new_tokens"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn an_empty_output_scores_a_plain_zero() {
        assert_eq!(
            score_line(0, &[]),
            "[0] sum 0.0000, mean 0.0000, 0 tokens: []"
        );
        assert_eq!(
            score_line(1, &[-0.5, -1.25]),
            "[1] sum -1.7500, mean -0.8750, 2 tokens: [-0.5000, -1.2500]"
        );
    }
}
