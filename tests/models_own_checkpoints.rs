//! Loading a model a researcher brings: a sharded safetensors folder, stray weight files, a
//! folder without tokenizer.json, a Mistral config's sliding window, a GGUF whose
//! architecture name is not llama.cpp's, a tokenizer that adds its BOS itself. Each either
//! gives the same numbers as the in-process tiny model or fails naming the file and the fix.
mod support;

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use atgen_lab::models::lm::{Family, LanguageModel, ModelSource};
use atgen_lab::models::loader::write_tiny_folder;
use atgen_lab::models::tiny_models::write_tiny_gguf_with;
use candle_core::quantized::gguf_file::Value as V;
use candle_core::{Device, Tensor};
use support::tiny_decoder::{max_diff, probe_logits};

fn load_folder(dir: &Path) -> Result<LanguageModel> {
    LanguageModel::load(&ModelSource::Folder(dir.to_path_buf()))
}

fn load_error(source: ModelSource) -> String {
    match LanguageModel::load(&source) {
        Ok(_) => panic!("{source} must not load"),
        Err(e) => format!("{e:#}"),
    }
}

fn read_weights(file: &Path) -> Result<HashMap<String, Tensor>> {
    Ok(candle_core::safetensors::load(file, &Device::Cpu)?)
}

fn edit_json(file: &Path, edit: impl Fn(&mut serde_json::Value)) -> Result<()> {
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    edit(&mut json);
    std::fs::write(file, json.to_string())?;
    Ok(())
}

/// The tiny model's weights split over two shards with the index transformers writes.
fn shard(dir: &Path) -> Result<()> {
    let weights = read_weights(&dir.join("model.safetensors"))?;
    let mut names: Vec<&String> = weights.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let tensors: HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), weights[*n].clone()))
            .collect();
        candle_core::safetensors::save(&tensors, dir.join(file))?;
        for n in part {
            map.insert((*n).clone(), file.into());
        }
    }
    std::fs::remove_file(dir.join("model.safetensors"))?;
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string())?;
    Ok(())
}

#[test]
fn a_sharded_folder_gives_the_numbers_of_one_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_tiny_folder(dir.path(), Family::Qwen2, 5)?;
    shard(dir.path())?;
    let loaded = load_folder(dir.path())?;
    let direct = LanguageModel::tiny_random(5, Family::Qwen2)?;
    let d = max_diff(&probe_logits(&loaded)?, &probe_logits(&direct)?);
    assert!(d < 1e-5, "the sharded model differs by {d}");
    Ok(())
}

/// Was "cannot read weights …-00002.safetensors (No such file …); the file may be truncated
/// or corrupt": the advice fits a damaged file, not one never downloaded.
#[test]
fn a_shard_the_index_lists_but_the_folder_lacks_is_named() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_tiny_folder(dir.path(), Family::Llama, 5)?;
    shard(dir.path())?;
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors"))?;
    let msg = load_error(ModelSource::Folder(dir.path().to_path_buf()));
    assert!(
        msg.contains(
            "model.safetensors.index.json lists the shard `model-00002-of-00002.safetensors`"
        ) && msg.contains("download every shard")
            && !msg.contains("corrupt"),
        "{msg}"
    );
    Ok(())
}

/// Another model's weights beside model.safetensors (sorted after it) replaced its tensors
/// silently; transformers reads model.safetensors alone, and so does the loader now.
#[test]
fn a_second_weights_file_beside_model_safetensors_is_not_read() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_tiny_folder(dir.path(), Family::Llama, 5)?;
    let other = tempfile::tempdir()?;
    write_tiny_folder(other.path(), Family::Llama, 6)?;
    std::fs::copy(
        other.path().join("model.safetensors"),
        dir.path().join("other.safetensors"),
    )?;
    let loaded = load_folder(dir.path())?;
    let direct = LanguageModel::tiny_random(5, Family::Llama)?;
    let d = max_diff(&probe_logits(&loaded)?, &probe_logits(&direct)?);
    assert!(d < 1e-5, "the folder's model differs by {d}");
    Ok(())
}

/// Without model.safetensors or an index every *.safetensors file is read; one tensor in two
/// of them means two models, and which one won was the file names' order.
#[test]
fn a_tensor_in_two_weight_files_is_refused_naming_both() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_tiny_folder(dir.path(), Family::Llama, 5)?;
    let other = tempfile::tempdir()?;
    write_tiny_folder(other.path(), Family::Llama, 6)?;
    std::fs::rename(
        dir.path().join("model.safetensors"),
        dir.path().join("a.safetensors"),
    )?;
    std::fs::copy(
        other.path().join("model.safetensors"),
        dir.path().join("b.safetensors"),
    )?;
    let msg = load_error(ModelSource::Folder(dir.path().to_path_buf()));
    assert!(
        msg.contains("is in both")
            && msg.contains("a.safetensors")
            && msg.contains("b.safetensors"),
        "{msg}"
    );
    Ok(())
}

/// Was "cannot load tokenizer …/tokenizer.json: No such file or directory".
#[test]
fn a_folder_without_tokenizer_json_says_how_to_get_one() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_tiny_folder(dir.path(), Family::Llama, 5)?;
    std::fs::remove_file(dir.path().join("tokenizer.json"))?;
    std::fs::write(dir.path().join("tokenizer.model"), b"sentencepiece")?;
    let msg = load_error(ModelSource::Folder(dir.path().to_path_buf()));
    assert!(
        msg.contains("has no tokenizer.json")
            && msg.contains("SentencePiece")
            && msg.contains("save_pretrained"),
        "{msg}"
    );
    Ok(())
}

/// A `mistral` config's `sliding_window` was ignored: past the window every position's
/// logits were a llama's, not the model's. Within it the two agree.
#[test]
fn a_mistral_sliding_window_applies_to_every_layer() -> Result<()> {
    let window = 4;
    let root = tempfile::tempdir()?;
    let llama = root.path().join("llama");
    write_tiny_folder(&llama, Family::Llama, 5)?;
    let mistral = root.path().join("mistral");
    write_tiny_folder(&mistral, Family::Llama, 5)?;
    edit_json(&mistral.join("config.json"), |c| {
        c["model_type"] = "mistral".into();
        c["sliding_window"] = window.into();
    })?;
    let (llama, mistral) = (load_folder(&llama)?, load_folder(&mistral)?);
    assert_eq!(mistral.config().sliding_window, Some(window));
    assert_eq!(mistral.config().sliding_layers, [true, true]);
    let (a, b) = (probe_logits(&llama)?, probe_logits(&mistral)?);
    let inside = max_diff(&a.narrow(1, 0, window)?, &b.narrow(1, 0, window)?);
    assert!(inside < 1e-5, "within the window they differ by {inside}");
    let t = a.dim(1)?;
    let past = max_diff(
        &a.narrow(1, window, t - window)?,
        &b.narrow(1, window, t - window)?,
    );
    assert!(
        past > 1e-3,
        "past the window the mistral model attended to everything"
    );
    Ok(())
}

/// The tiny GGUF's metadata with `general.architecture = mistral` and its keys renamed to
/// match: llama.cpp writes Mistral models as `llama`, so the loader cannot know whether such
/// a file's Q/K rows are permuted. It loaded as a llama without un-permuting them: wrong
/// numbers, no error.
#[test]
fn a_gguf_calling_its_architecture_mistral_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("mistral.gguf");
    const RENAMED: [(&str, &str); 8] = [
        ("llama.block_count", "mistral.block_count"),
        ("llama.embedding_length", "mistral.embedding_length"),
        ("llama.feed_forward_length", "mistral.feed_forward_length"),
        ("llama.attention.head_count", "mistral.attention.head_count"),
        (
            "llama.attention.head_count_kv",
            "mistral.attention.head_count_kv",
        ),
        ("llama.rope.freq_base", "mistral.rope.freq_base"),
        (
            "llama.attention.layer_norm_rms_epsilon",
            "mistral.attention.layer_norm_rms_epsilon",
        ),
        ("llama.context_length", "mistral.context_length"),
    ];
    write_tiny_gguf_with(&path, 8, None, |meta| {
        for (key, value) in meta.iter_mut() {
            if *key == "general.architecture" {
                *value = V::String("mistral".into());
            }
            if let Some((_, to)) = RENAMED.iter().find(|(from, _)| from == key) {
                *key = to;
            }
        }
    })?;
    let msg = load_error(ModelSource::Gguf(path));
    assert!(
        msg.contains("mistral.gguf")
            && msg.contains("unknown architecture `mistral` (general.architecture)")
            && msg.contains("convert_hf_to_gguf.py"),
        "{msg}"
    );
    Ok(())
}

/// A folder whose tokenizer.json prepends the BOS itself (Llama 3's post-processor) and whose
/// tokenizer_config.json has no `add_bos_token` nor a chat template: plain prompts lacked the
/// BOS its GGUF (`tokenizer.ggml.add_bos_token = true`) puts there, so the same model scored
/// differently from the two files.
#[test]
fn a_tokenizer_that_prepends_its_bos_starts_plain_prompts_as_its_gguf_does() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let folder = dir.path().join("folder");
    write_tiny_folder(&folder, Family::Llama, 8)?;
    edit_json(&folder.join("tokenizer_config.json"), |c| {
        let c = c.as_object_mut().expect("an object");
        c.remove("chat_template");
        c.remove("bos_token");
    })?;
    edit_json(&folder.join("tokenizer.json"), |t| {
        let bos = serde_json::json!({"SpecialToken": {"id": "<|im_start|>", "type_id": 0}});
        t["post_processor"] = serde_json::json!({
            "type": "TemplateProcessing",
            "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|im_start|>":
                {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]}}
        });
    })?;
    let gguf = dir.path().join("tiny.gguf");
    write_tiny_gguf_with(&gguf, 8, None, |meta| {
        meta.push(("tokenizer.ggml.add_bos_token", V::Bool(true)));
    })?;
    let prompt_ids = |lm: LanguageModel| -> Result<Vec<u32>> {
        lm.encode_prompt(&lm.render_prompt(None, "hello")?)
    };
    let from_folder = prompt_ids(load_folder(&folder)?)?;
    let from_gguf = prompt_ids(LanguageModel::load(&ModelSource::Gguf(gguf))?)?;
    // <|im_start|> (the BOS, id 1), then the bytes of "hello\n" (ids from 3 on).
    let hello: Vec<u32> = b"hello\n".iter().map(|&b| 3 + b as u32).collect();
    assert_eq!(from_gguf, [&[1][..], &hello].concat());
    assert_eq!(from_folder, from_gguf);
    Ok(())
}

/// `tie_word_embeddings: false` and no `lm_head.weight` (a checkpoint saved from `AutoModel`)
/// said only that the tensor is missing; a head of another vocabulary loaded and gave logits
/// over 300 ids for a 259-token tokenizer.
#[test]
fn an_untied_model_needs_an_lm_head_of_the_configs_shape() -> Result<()> {
    let root = tempfile::tempdir()?;
    let headless = root.path().join("headless");
    write_tiny_folder(&headless, Family::Llama, 5)?;
    edit_json(&headless.join("config.json"), |c| {
        c["tie_word_embeddings"] = false.into();
    })?;
    let msg = load_error(ModelSource::Folder(headless.clone()));
    assert!(
        msg.contains("no LM head (`lm_head.weight`)")
            && msg.contains("tie_word_embeddings: true")
            && msg.contains("headless"),
        "{msg}"
    );
    let wide = root.path().join("wide-head");
    write_tiny_folder(&wide, Family::Qwen2, 5)?;
    let file = wide.join("model.safetensors");
    let mut weights = read_weights(&file)?;
    let head = &weights["lm_head.weight"];
    let extra = Tensor::zeros((41, head.dim(1)?), head.dtype(), &Device::Cpu)?;
    let head = Tensor::cat(&[head, &extra], 0)?;
    weights.insert("lm_head.weight".into(), head);
    candle_core::safetensors::save(&weights, &file)?;
    let msg = load_error(ModelSource::Folder(wide));
    assert!(
        msg.contains("`lm_head.weight` has shape [300, 64]") && msg.contains("[259, 64]"),
        "{msg}"
    );
    Ok(())
}

/// A misspelt relative model folder (`models/tiny-lama` beside `models/tiny-llama`) is read
/// as a hub id; the error spoke only of the Hugging Face cache.
#[test]
fn a_misspelt_model_folder_read_as_a_hub_id_says_so() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_tiny_folder(&dir.path().join("models/tiny-llama"), Family::Llama, 5)?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["model", "info", "--model", "models/tiny-lama"])
        .current_dir(dir.path())
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", dir.path().join("hub"))
        .env("LAB_QUIET", "1")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("`models/tiny-lama` is not a file or folder here")
            && stderr.contains("model folder inside models")
            && stderr.contains("did you mean models/tiny-llama?"),
        "{stderr}"
    );
    Ok(())
}

/// A GGUF whose pre-tokenizer is not one the loader rebuilds (`tekken`, Mistral Nemo's, in a
/// `llama` file) was split with GPT-2's rules: token ids the model was not trained on, no
/// error. A SentencePiece (`llama`) vocabulary without its scores cannot be rebuilt either;
/// both name the file and point to the model's folder.
#[test]
fn a_gguf_tokenizer_that_cannot_be_rebuilt_points_to_the_folder() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for (key, value, named) in [
        ("tokenizer.ggml.pre", "tekken", "pre-tokenizer `tekken`"),
        ("tokenizer.ggml.model", "llama", "`tokenizer.ggml.scores`"),
    ] {
        let path = dir.path().join(format!("{value}.gguf"));
        write_tiny_gguf_with(&path, 8, None, |meta| {
            meta.retain(|(k, _)| *k != key);
            meta.push((key, V::String(value.into())));
        })?;
        let msg = load_error(ModelSource::Gguf(path));
        assert!(
            msg.contains(named)
                && msg.contains("`model.path`")
                && msg.contains(&format!("{value}.gguf")),
            "{msg}"
        );
    }
    Ok(())
}

/// A GGUF repository downloaded as a folder often keeps the original config.json (and
/// tokenizer.json) beside the .gguf: the folder was taken for a safetensors one and failed
/// with "no *.safetensors weights".
#[test]
fn a_folder_with_config_json_but_only_a_gguf_loads_the_gguf() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_tiny_folder(dir.path(), Family::Llama, 8)?;
    std::fs::remove_file(dir.path().join("model.safetensors"))?;
    atgen_lab::models::tiny_models::write_tiny_gguf(&dir.path().join("tiny-f32.gguf"), 8)?;
    let loaded = load_folder(dir.path())?;
    let direct = LanguageModel::tiny_random(8, Family::Llama)?;
    let d = max_diff(&probe_logits(&loaded)?, &probe_logits(&direct)?);
    assert!(d < 1e-5, "the folder's GGUF model differs by {d}");
    Ok(())
}
