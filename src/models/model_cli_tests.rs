//! Tests of `model_cli.rs` (a child module of it, so they reach its private items).
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

/// A folder whose tokenizer_config.json asks for a BOS (`<|endoftext|>`): `--raw` prompts
/// start with it as llama.cpp's do, and the counts include it.
#[test]
fn raw_prompts_of_a_tokenizer_asking_for_bos_count_it() -> Result<()> {
    let dir = tiny_folder_with_context(512)?;
    let path = dir.path().join("tokenizer_config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    config["bos_token"] = "<|endoftext|>".into();
    config["add_bos_token"] = true.into();
    std::fs::write(&path, config.to_string())?;
    let msg = generate_error(dir.path(), &"a".repeat(500), 64);
    assert!(
        msg.contains("--prompt [1] takes 501 tokens and --max-new-tokens is 64: 565 tokens")
            && msg.contains("lower --max-new-tokens to 11 or less"),
        "{msg}"
    );
    let lm = load(&choice(dir.path()))?;
    let rendered = render(&lm, &prompts("abc"))?;
    assert_eq!(lm.encode_prompt(&rendered[1])?, [0, 3 + 97, 3 + 98, 3 + 99]);
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

/// Flags that generate nothing are refused naming the flag, before any model loads (the
/// model named here does not exist, so reaching the loader would fail otherwise).
#[test]
fn generation_flags_are_checked_before_the_model_loads() {
    let generate = |max_new_tokens, temperature, top_p, n, batch_size| {
        let command = ModelCommand::Generate {
            model: ModelChoice {
                model: "no-such-model".into(),
                adapter: None,
            },
            prompts: prompts("x"),
            max_new_tokens,
            temperature,
            top_p,
            n,
            seed: 0,
            batch_size,
            repeat: 1,
        };
        format!("{:#}", run(ModelArgs { command }).unwrap_err())
    };
    for (msg, start) in [
        (
            generate(0, 0.0, 1.0, 1, 16),
            "--max-new-tokens 0 generates nothing",
        ),
        (generate(8, 0.0, 1.0, 0, 16), "--n 0 asks for no samples"),
        (generate(8, 0.0, 1.0, 1, 0), "--batch-size 0 runs nothing"),
        (
            generate(8, -1.0, 1.0, 1, 16),
            "--temperature -1: pass 0 for greedy",
        ),
        (generate(8, f64::NAN, 1.0, 1, 16), "--temperature NaN"),
        (
            generate(8, 0.7, 0.0, 1, 16),
            "--top-p 0: pass a probability",
        ),
        (generate(8, 0.7, 1.5, 1, 16), "--top-p 1.5"),
    ] {
        assert!(msg.starts_with(start), "{msg}");
    }
    let command = ModelCommand::Score {
        model: ModelChoice {
            model: "no-such-model".into(),
            adapter: None,
        },
        prompts: prompts("x"),
        output: vec!["a".into(), "b".into()],
        batch_size: 0,
    };
    let msg = format!("{:#}", run(ModelArgs { command }).unwrap_err());
    assert!(msg.starts_with("--batch-size 0 runs nothing"), "{msg}");
}

#[test]
fn raw_and_system_conflict() {
    use clap::Parser;
    let parse = |args: &[&str]| crate::cli::Cli::try_parse_from(args).map(|_| ());
    let err = parse(&[
        "lab", "model", "generate", "--raw", "--system", "s", "--prompt", "p",
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("--raw") && err.contains("--system"), "{err}");
    assert!(parse(&["lab", "model", "score", "--raw", "--prompt", "p", "--output", "o"]).is_ok());
}

/// A language model's name or an unknown name given to --encoder is refused naming the
/// flag and what it takes (a language model's name read a missing BERT config, an unknown
/// one was 'unknown default model', listing the language models).
#[test]
fn a_wrong_encoder_name_names_the_flag_and_what_it_takes() {
    let models = tempfile::tempdir().unwrap();
    let load = |spec: &str| {
        format!(
            "{:#}",
            load_encoder_in(Some(spec), models.path()).err().unwrap()
        )
    };
    let lm = load("smollm2-135m-instruct");
    let unknown = load("minilm");
    let arg = models.path().join("nothing-here").display().to_string();
    let empty = load(&arg);
    assert!(
        lm.starts_with("--encoder smollm2-135m-instruct is a language model")
            && lm.contains("all-minilm-l6-v2"),
        "{lm}"
    );
    assert!(
        unknown.starts_with("--encoder minilm: no sentence encoder `minilm` in the models cache")
            && unknown.contains("--encoder takes a sentence encoder"),
        "{unknown}"
    );
    assert!(
        empty.starts_with(&format!("--encoder {arg}: cannot load a sentence encoder"))
            && empty.contains("config.json"),
        "{empty}"
    );
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
