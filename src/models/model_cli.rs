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
            let start = Instant::now();
            let scores = lm.score(&rendered, &output, batch_size)?;
            let secs = start.elapsed().as_secs_f64();
            let tokens: usize = scores.iter().map(Vec::len).sum();
            for (i, lp) in scores.iter().enumerate() {
                let sum: f32 = lp.iter().sum();
                let mean = if lp.is_empty() {
                    0.0
                } else {
                    sum / lp.len() as f32
                };
                let rounded: Vec<String> = lp.iter().map(|x| format!("{x:.4}")).collect();
                println!(
                    "[{i}] sum {sum:.4}, mean {mean:.4}, {} tokens: [{}]",
                    lp.len(),
                    rounded.join(", ")
                );
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
}
