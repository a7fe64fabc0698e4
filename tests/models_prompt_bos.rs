//! Every path that turns text into a prompt's ids (generation, scoring, training examples in
//! both prompt formats, the local labeller) starts it with exactly one BOS when the tokenizer
//! asks for one, as transformers' `tokenizer(text)` and llama.cpp's
//! `llama_tokenize(add_special = true)` do, and with none when it does not; a chat template
//! that writes `bos_token` itself gets no second one. A GGUF without
//! `tokenizer.ggml.add_bos_token` gets llama.cpp's default for its vocabulary.
//!
//! The tiny GGUFs here name `<|endoftext|>` (id 0) as their BOS so that it differs from the
//! ChatML template's first token `<|im_start|>` (id 1).
use std::path::Path;

use anyhow::Result;
use atgen_lab::config::{Experiment, PromptFormat};
use atgen_lab::data::Example;
use atgen_lab::labeller::local::LocalLabeller;
use atgen_lab::labeller::{LabelOutcome, Labeller};
use atgen_lab::models::generate::{generate_ids, GenerateOptions};
use atgen_lab::models::lm::{LanguageModel, ModelSource};
use atgen_lab::models::score::score_ids;
use atgen_lab::models::tiny_models::write_tiny_gguf_with;
use atgen_lab::runner::finetune::tokenize_example;
use atgen_lab::runner::prompting::Prompter;
use candle_core::quantized::gguf_file::Value as V;

const BOS: u32 = 0;

const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A tiny llama GGUF with BOS `<|endoftext|>`, `add_bos` as given (`None`: no key) and an
/// optional chat template.
fn tiny_gguf(dir: &Path, add_bos: Option<bool>, template: Option<&str>) -> Result<LanguageModel> {
    let file = format!("{add_bos:?}-{}.gguf", template.map_or(0, str::len));
    let path = dir.join(file);
    let template = template.map(str::to_string);
    write_tiny_gguf_with(&path, 8, None, |meta| {
        meta.retain(|(k, _)| *k != "tokenizer.ggml.bos_token_id");
        meta.push(("tokenizer.ggml.bos_token_id", V::U32(BOS)));
        if let Some(add) = add_bos {
            meta.push(("tokenizer.ggml.add_bos_token", V::Bool(add)));
        }
        if let Some(t) = &template {
            meta.push(("tokenizer.chat_template", V::String(t.clone())));
        }
    })?;
    LanguageModel::load(&ModelSource::Gguf(path))
}

fn greedy(max_new_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens,
        batch_size: 4,
        ..GenerateOptions::default()
    }
}

/// Greedy generations from explicit ids, as (ids, logprobs) pairs to compare exactly.
fn generate_from(lm: &LanguageModel, ids: Vec<u32>) -> Result<(Vec<u32>, Vec<f32>)> {
    let out = generate_ids(lm.decoder(), lm.tokenizer(), &[ids], &greedy(6))?;
    let g = &out[0][0];
    Ok((g.token_ids.clone(), g.token_logprobs.clone()))
}

fn with_bos(lm: &LanguageModel, text: &str) -> Result<Vec<u32>> {
    let mut ids = vec![BOS];
    ids.extend(lm.encode(text)?);
    Ok(ids)
}

fn experiment(format: PromptFormat) -> Experiment {
    let mut exp = Experiment::default();
    exp.model.prompt_format = format;
    exp.model.max_input_tokens = 64;
    exp.data.system_prompt = Some("Be brief.".into());
    exp
}

fn example() -> Example {
    Example {
        id: 0,
        input: "the meeting moved to Tuesday".into(),
        output: "Meeting moved".into(),
        references: vec!["Meeting moved".into()],
    }
}

/// How many BOS ids open `ids`.
fn leading_bos(ids: &[u32]) -> usize {
    ids.iter().take_while(|&&id| id == BOS).count()
}

#[test]
fn every_prompt_path_starts_with_one_bos_when_the_tokenizer_asks_for_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let lm = tiny_gguf(dir.path(), Some(true), None)?;
    let prompt = lm.render_prompt(None, "hi")?;
    assert_eq!(lm.encode_prompt(&prompt)?, with_bos(&lm, &prompt)?);

    // Generation: as from the ids with BOS, which a random model continues differently from
    // the ids without it (so the comparison can tell them apart).
    let generated = lm.generate(std::slice::from_ref(&prompt), &greedy(6))?;
    let got = (
        generated[0][0].token_ids.clone(),
        generated[0][0].token_logprobs.clone(),
    );
    let expected = generate_from(&lm, with_bos(&lm, &prompt)?)?;
    assert_ne!(expected, generate_from(&lm, lm.encode(&prompt)?)?);
    assert_eq!(got, expected);

    // Scoring: the prompt's ids start with BOS, the output's do not.
    let output = " ok".to_string();
    let scored = lm.score(
        std::slice::from_ref(&prompt),
        std::slice::from_ref(&output),
        2,
    )?;
    let pad = lm.tokenizer().pad_id;
    let expected = score_ids(
        lm.decoder(),
        pad,
        &[with_bos(&lm, &prompt)?],
        &[lm.encode(&output)?],
        2,
    )?;
    let without = score_ids(
        lm.decoder(),
        pad,
        &[lm.encode(&prompt)?],
        &[lm.encode(&output)?],
        2,
    )?;
    assert_ne!(expected, without);
    assert_eq!(scored, expected);

    // Training examples, in both prompt formats (the model has no template: chat falls back
    // to the plain format).
    for format in [PromptFormat::Chat, PromptFormat::Plain] {
        let exp = experiment(format);
        let train = tokenize_example(&lm, &Prompter::new(&exp), &example())?;
        assert_eq!(leading_bos(&train.prompt_ids), 1, "{format:?}");
        assert_eq!(
            train.prompt_ids[1..],
            lm.encode("Be brief.\n\nthe meeting moved to Tuesday\n")?[..],
            "{format:?}"
        );
        assert_ne!(train.target_ids.first(), Some(&BOS), "{format:?}");
    }
    Ok(())
}

#[test]
fn the_local_labeller_prompts_with_one_bos() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let lm = tiny_gguf(dir.path(), Some(true), None)?;
    let first_line = |ids: Vec<u32>| -> Result<String> {
        let (tokens, _) = generate_from(&lm, ids)?;
        let text = lm.tokenizer().decode(&tokens, true)?;
        Ok(text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string())
    };
    let prompt = lm.render_prompt(None, "the meeting moved to Tuesday")?;
    let expected = first_line(with_bos(&lm, &prompt)?)?;
    assert_ne!(expected, first_line(lm.encode(&prompt)?)?);
    let mut labeller = LocalLabeller::from_model(lm.clone(), "tiny", None, "{input}".into(), 6, 64);
    let LabelOutcome::Complete(labels) = labeller.label(&[example()], &[])? else {
        panic!("a local labeller has no budget to reach");
    };
    assert_eq!(labels[0].output, expected);
    Ok(())
}

#[test]
fn a_chat_template_gets_one_bos_whether_or_not_it_writes_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let writes_bos = format!("{{{{ bos_token }}}}{CHATML}");
    for template in [CHATML.to_string(), writes_bos] {
        let lm = tiny_gguf(dir.path(), Some(true), Some(&template))?;
        let prompt = lm.render_prompt(Some("S"), "U")?;
        let ids = lm.encode_prompt(&prompt)?;
        assert_eq!(leading_bos(&ids), 1, "{template}: {ids:?}");
        assert_eq!(ids[1], 1, "<|im_start|> follows the BOS: {ids:?}");
        // The cut to max_input_tokens counts the BOS.
        let long = "x".repeat(200);
        let cut = lm.render_prompt_within(Some("S"), &long, 40)?;
        assert_eq!(lm.encode_prompt(&cut)?.len(), 40, "{template}");
    }
    Ok(())
}

#[test]
fn a_tokenizer_that_does_not_ask_for_bos_gets_none() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for add_bos in [Some(false), None] {
        let lm = tiny_gguf(dir.path(), add_bos, None)?;
        let prompt = lm.render_prompt(None, "hi")?;
        assert_eq!(lm.encode_prompt(&prompt)?, lm.encode(&prompt)?);
        let exp = experiment(PromptFormat::Plain);
        let train = tokenize_example(&lm, &Prompter::new(&exp), &example())?;
        assert_eq!(leading_bos(&train.prompt_ids), 0, "{add_bos:?}");
    }
    Ok(())
}

/// llama-cpp-python 0.3.36 on copies of SmolLM2's GGUF (gpt2 vocabulary) without
/// `tokenizer.ggml.add_bos_token`: a BOS for the `llama-bpe` and `llama3` pre-tokenizers only;
/// without `tokenizer.ggml.bos_token_id` too, the BOS is token 11.
#[test]
fn a_gguf_without_add_bos_token_follows_llama_cpp_defaults() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for (pre, adds) in [
        ("llama3", true),
        ("llama-bpe", true),
        ("smollm", false),
        ("gpt-2", false),
        ("qwen2", false),
    ] {
        let path = dir.path().join(format!("{pre}.gguf"));
        write_tiny_gguf_with(&path, 8, None, |meta| {
            meta.retain(|(k, _)| *k != "tokenizer.ggml.pre");
            meta.push(("tokenizer.ggml.pre", V::String(pre.into())));
        })?;
        let lm = LanguageModel::load(&ModelSource::Gguf(path))?;
        assert_eq!(lm.tokenizer().add_bos, adds, "{pre}");
        let ids = lm.encode_prompt("hi\n")?;
        assert_eq!(ids.first() == Some(&1), adds, "{pre}: {ids:?}");
    }
    let path = dir.path().join("no-bos-id.gguf");
    write_tiny_gguf_with(&path, 8, None, |meta| {
        meta.retain(|(k, _)| *k != "tokenizer.ggml.pre" && *k != "tokenizer.ggml.bos_token_id");
        meta.push(("tokenizer.ggml.pre", V::String("llama3".into())));
    })?;
    let lm = LanguageModel::load(&ModelSource::Gguf(path))?;
    assert_eq!(lm.tokenizer().bos_id(), Some(11));
    assert_eq!(lm.encode_prompt("hi\n")?[0], 11);
    Ok(())
}
