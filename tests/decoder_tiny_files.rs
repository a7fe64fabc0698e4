//! Loading tiny random decoders from model folders and GGUF files (bf16 weights included), and
//! clear errors naming the file for truncated, corrupt or unsupported ones.
mod support;

use std::path::Path;

use anyhow::Result;
use atgen_lab::models::generate::GenerateOptions;
use atgen_lab::models::lm::{Family, LanguageModel, ModelSource};
use atgen_lab::models::loader::write_tiny_folder;
use candle_core::quantized::gguf_file;
use candle_core::Device;
use support::tiny_decoder::{max_diff, probe_logits, FAMILIES};

#[test]
fn folder_round_trip_equals_in_process_model() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for family in FAMILIES {
        let path = dir.path().join(family.name());
        write_tiny_folder(&path, family, 6)?;
        let loaded = LanguageModel::load(&ModelSource::Folder(path))?;
        let direct = LanguageModel::tiny_random(6, family)?;
        let d = max_diff(&probe_logits(&loaded)?, &probe_logits(&direct)?);
        assert!(d < 1e-5, "{family:?}: folder model differs by {d}");
        assert_eq!(
            loaded.render_prompt(Some("S"), "U")?,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(loaded.info().params, direct.info().params);
    }
    Ok(())
}

/// The library's tiny GGUF writer (Q/K rows permuted as llama.cpp's converter does).
fn write_tiny_gguf(path: &Path, seed: u64, vocab_override: Option<usize>) -> Result<()> {
    atgen_lab::models::tiny_models::write_tiny_gguf_with(path, seed, vocab_override, |_| {})
}

#[test]
fn gguf_round_trip_undoes_the_llama_cpp_permutation() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tiny.gguf");
    write_tiny_gguf(&path, 8, None)?;
    let loaded = LanguageModel::load(&ModelSource::Gguf(path))?;
    let direct = LanguageModel::tiny_random(8, Family::Llama)?;
    let d = max_diff(&probe_logits(&loaded)?, &probe_logits(&direct)?);
    assert!(d < 1e-5, "GGUF model differs by {d}");
    assert!(!loaded.info().chat_template);
    assert_eq!(loaded.render_prompt(None, "hello")?, "hello\n");
    Ok(())
}

#[test]
fn corrupt_gguf_metadata_is_refused_naming_the_key_instead_of_panicking() -> Result<()> {
    use gguf_file::Value as V;
    let dir = tempfile::tempdir()?;
    let set = |key: &'static str, value: V| {
        move |meta: &mut Vec<(&str, V)>| {
            meta.retain(|(k, _)| *k != key);
            meta.push((key, value.clone()));
        }
    };
    type Edit = Box<dyn Fn(&mut Vec<(&str, V)>)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "alignment",
            Box::new(set("general.alignment", V::U32(0))),
            "general.alignment is 0",
        ),
        (
            "heads",
            Box::new(set("llama.attention.head_count", V::U32(0))),
            "llama.attention.head_count",
        ),
        (
            "types",
            Box::new(set(
                "tokenizer.ggml.token_type",
                V::Array(vec![V::I32(1); 5000]),
            )),
            "tokenizer.ggml.token_type",
        ),
    ];
    for (name, edit, expected) in cases {
        let path = dir.path().join(format!("{name}.gguf"));
        atgen_lab::models::tiny_models::write_tiny_gguf_with(&path, 1, None, edit)?;
        let msg = format!(
            "{:#}",
            LanguageModel::load(&ModelSource::Gguf(path.clone()))
                .err()
                .expect("must fail")
        );
        assert!(
            msg.contains(expected) && msg.contains(&format!("{name}.gguf")),
            "{name}: {msg}"
        );
    }
    Ok(())
}

fn truncate(path: &Path, keep: f64) -> Result<()> {
    let bytes = std::fs::read(path)?;
    std::fs::write(path, &bytes[..(bytes.len() as f64 * keep) as usize])?;
    Ok(())
}

#[test]
fn bad_files_give_clear_errors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Truncated GGUF: at two places (inside the tensor data, inside the header).
    for keep in [0.9, 0.01] {
        let path = dir.path().join(format!("cut-{keep}.gguf"));
        write_tiny_gguf(&path, 1, None)?;
        truncate(&path, keep)?;
        let err = LanguageModel::load(&ModelSource::Gguf(path.clone()))
            .err()
            .expect("must fail");
        let msg = format!("{err:#}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains("truncated") || msg.contains("corrupt"),
            "{msg}"
        );
    }
    // Not a GGUF file at all (a data file passed as --model): the advice is about --model, and
    // no backtrace rides along in the message.
    let path = dir.path().join("rows.jsonl");
    std::fs::write(&path, "{\"a\": 1}\n")?;
    let msg = format!(
        "{:#}",
        LanguageModel::load(&ModelSource::Gguf(path.clone()))
            .err()
            .expect("must fail")
    );
    assert!(
        msg.contains("rows.jsonl") && msg.contains("--model takes") && !msg.contains("lab setup"),
        "{msg}"
    );
    assert!(
        !msg.contains("backtrace") && !msg.contains("   0: "),
        "{msg}"
    );
    // Truncated safetensors in a model folder.
    let folder = dir.path().join("cut-folder");
    write_tiny_folder(&folder, Family::Qwen3, 1)?;
    truncate(&folder.join("model.safetensors"), 0.7)?;
    let msg = format!(
        "{:#}",
        LanguageModel::load(&ModelSource::Folder(folder.clone()))
            .err()
            .unwrap()
    );
    assert!(
        msg.contains("model.safetensors") && msg.contains("truncated"),
        "{msg}"
    );
    // Unknown architecture.
    let folder = dir.path().join("neox");
    write_tiny_folder(&folder, Family::Llama, 1)?;
    let config =
        std::fs::read_to_string(folder.join("config.json"))?.replace("\"llama\"", "\"gpt_neox\"");
    std::fs::write(folder.join("config.json"), config)?;
    let msg = format!(
        "{:#}",
        LanguageModel::load(&ModelSource::Folder(folder.clone()))
            .err()
            .unwrap()
    );
    assert!(
        msg.contains("gpt_neox") && msg.contains("config.json"),
        "{msg}"
    );
    // A tokenizer with more tokens than the model's vocabulary.
    let path = dir.path().join("big-vocab.gguf");
    write_tiny_gguf(&path, 1, Some(300))?;
    let msg = format!(
        "{:#}",
        LanguageModel::load(&ModelSource::Gguf(path.clone()))
            .err()
            .unwrap()
    );
    assert!(
        msg.contains("300 tokens") && msg.contains("big-vocab.gguf"),
        "{msg}"
    );
    // A missing default model points at `lab setup`.
    let msg = format!(
        "{:#}",
        LanguageModel::load(&ModelSource::Default("no-such-model".into()))
            .err()
            .unwrap()
    );
    assert!(msg.contains("lab setup"), "{msg}");
    Ok(())
}

#[test]
fn bf16_weights_track_f32() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_tiny_folder(dir.path(), Family::Qwen3, 11)?;
    let source = ModelSource::Folder(dir.path().to_path_buf());
    let f32_model = LanguageModel::load_on(&source, candle_core::DType::F32, &Device::Cpu)?;
    let bf16_model = LanguageModel::load_on(&source, candle_core::DType::BF16, &Device::Cpu)?;
    let a = probe_logits(&f32_model)?;
    let b = probe_logits(&bf16_model)?;
    assert_eq!(
        b.dtype(),
        candle_core::DType::F32,
        "logits come back as f32"
    );
    let scale = a.abs()?.max_all()?.to_scalar::<f32>()?;
    let d = max_diff(&a, &b);
    assert!(
        d < 0.05 * scale,
        "bf16 differs by {d} (logit scale {scale})"
    );
    let gens = bf16_model.generate(&["hello".to_string()], &GenerateOptions::default())?;
    assert!(!gens[0][0].token_ids.is_empty());
    Ok(())
}
