//! Tokenizers: a `tokenizer.json` from a model folder, or one built from GGUF vocabulary and
//! merges (GPT-2 byte-level BPE), plus the special tokens generation needs.
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::gguf::GgufFile;
use super::spm_tokenizer::SpmVocabulary;

/// A tokenizer and the special tokens the model was trained with.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// Ids that end a generation.
    pub eos_ids: Vec<u32>,
    /// Whether plain (non-chat) prompts start with the BOS token.
    pub add_bos: bool,
    /// Id used to fill padded positions (never attended to).
    pub pad_id: u32,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

impl TextTokenizer {
    /// Build from `tokenizer.ggml.*` metadata: GPT-2-style BPE vocabularies (the pre-tokenizer
    /// follows `tokenizer.ggml.pre`) or SentencePiece ones (`llama`: Llama 2, Gemma).
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let path = gguf.path.display();
        let model = gguf.string("tokenizer.ggml.model")?;
        const USE_FOLDER: &str = "load the model's Hugging Face folder instead (it has \
             tokenizer.json): `model.path` in an experiment file, --model on the command line";
        if model == "llama" {
            return Self::from_gguf_sentencepiece(gguf);
        }
        if model != "gpt2" {
            bail!(
                "{path}: tokenizer type `{model}` (tokenizer.ggml.model) cannot be rebuilt from GGUF \
                 here; only `gpt2` byte-level BPE and `llama` SentencePiece are supported; {USE_FOLDER}"
            );
        }
        let tokens = gguf.string_array("tokenizer.ggml.tokens")?;
        let merges = gguf.string_array("tokenizer.ggml.merges")?;
        let types = gguf.i32_array("tokenizer.ggml.token_type")?;
        let pre = gguf
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok().cloned())
            .unwrap_or_else(|| "gpt2".to_string());
        // Another pre-tokenizer's split would give the model token ids it was not trained on.
        if !KNOWN_PRE_TOKENIZERS.contains(&pre.as_str()) {
            bail!(
                "{path}: pre-tokenizer `{pre}` (tokenizer.ggml.pre) cannot be rebuilt here (known: \
                 {}); {USE_FOLDER}",
                KNOWN_PRE_TOKENIZERS.join(", ")
            );
        }
        if let Some(types) = types.as_ref().filter(|t| t.len() != tokens.len()) {
            bail!(
                "{path}: `tokenizer.ggml.token_type` lists {} types but `tokenizer.ggml.tokens` has \
                 {} tokens; the file is corrupt: delete it and fetch it again",
                types.len(),
                tokens.len()
            );
        }
        let special: Vec<u32> = match &types {
            Some(types) => types
                .iter()
                .enumerate()
                .filter(|(_, t)| **t == TOKEN_TYPE_CONTROL || **t == TOKEN_TYPE_USER_DEFINED)
                .map(|(i, _)| i as u32)
                .collect(),
            None => Vec::new(),
        };
        let json = byte_level_bpe_json(&tokens, &merges, &special, &pre)
            .with_context(|| format!("{path}: cannot build a tokenizer from its vocabulary"))?;
        let inner = tokenizers::Tokenizer::from_bytes(serde_json::to_vec(&json)?)
            .map_err(|e| anyhow::anyhow!("{path}: cannot build tokenizer: {e}"))?;
        // llama.cpp's defaults where the file names no BOS: token 11, added only for the
        // Llama 3 pre-tokenizers (checked with llama-cpp-python 0.3.36 on copies of a GGUF
        // without the keys).
        let defaults = GgufBosDefaults {
            add_bos: PRE_TOKENIZERS_ADDING_BOS.contains(&pre.as_str()),
            bos_id: 11,
        };
        Self::assemble_from_gguf(gguf, inner, &tokens, defaults)
    }

    /// The tokenizer with the BOS, EOS, padding and add-BOS the metadata names; `defaults`
    /// are the vocabulary type's where the file does not say.
    fn assemble_from_gguf(
        gguf: &GgufFile,
        inner: tokenizers::Tokenizer,
        pieces: &[String],
        defaults: GgufBosDefaults,
    ) -> Result<Self> {
        let token_at = |key: &str| -> Result<Option<String>> {
            Ok(match gguf.opt_usize(key)? {
                Some(id) => Some(
                    pieces
                        .get(id)
                        .with_context(|| {
                            format!(
                                "{}: `{key}` = {id} is outside the vocabulary",
                                gguf.path.display()
                            )
                        })?
                        .clone(),
                ),
                None => None,
            })
        };
        let bos_token = match token_at("tokenizer.ggml.bos_token_id")? {
            Some(token) => Some(token),
            None => pieces.get(defaults.bos_id as usize).cloned(),
        };
        let eos_token = token_at("tokenizer.ggml.eos_token_id")?;
        let add_bos = gguf
            .opt_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(defaults.add_bos);
        let pad_id = gguf
            .opt_usize("tokenizer.ggml.padding_token_id")?
            .unwrap_or(0) as u32;
        Self::assemble(inner, bos_token, eos_token, add_bos, pad_id)
    }

    /// A SentencePiece vocabulary (pieces, scores, token types; no merges).
    fn from_gguf_sentencepiece(gguf: &GgufFile) -> Result<Self> {
        let path = gguf.path.display();
        let pieces = gguf.string_array("tokenizer.ggml.tokens")?;
        let scores = f32_array(gguf, "tokenizer.ggml.scores")?;
        let types = gguf
            .i32_array("tokenizer.ggml.token_type")?
            .with_context(|| {
                format!(
                    "{path}: a SentencePiece vocabulary needs `tokenizer.ggml.token_type` to tell \
                 byte and control tokens from text; the file lacks it: fetch a complete GGUF"
                )
            })?;
        let vocabulary = SpmVocabulary {
            add_space_prefix: gguf
                .opt_bool("tokenizer.ggml.add_space_prefix")?
                .unwrap_or(true),
            unknown_id: gguf
                .opt_usize("tokenizer.ggml.unknown_token_id")?
                .map(|id| id as u32),
            pieces,
            scores,
            types,
        };
        let inner = vocabulary
            .tokenizer()
            .with_context(|| format!("{path}: cannot build a tokenizer from its vocabulary"))?;
        // SentencePiece models start every text with BOS (token 1 unless named) unless told
        // otherwise: llama.cpp's defaults for this vocabulary type.
        let defaults = GgufBosDefaults {
            add_bos: true,
            bos_id: 1,
        };
        let mut tok = Self::assemble_from_gguf(gguf, inner, &vocabulary.pieces, defaults)?;
        // A turn ends generation even where the GGUF names only <eos> (llama.cpp does the same
        // for Gemma's <end_of_turn>).
        for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            if let Some(id) = gguf.opt_usize(key)? {
                tok.push_eos_id(id as u32);
            }
        }
        if let Some(id) = tok.token_to_id("<end_of_turn>") {
            tok.push_eos_id(id);
        }
        Ok(tok)
    }

    fn push_eos_id(&mut self, id: u32) {
        if !self.eos_ids.contains(&id) {
            self.eos_ids.push(id);
        }
    }

    /// Load `tokenizer.json` (and special tokens from `tokenizer_config.json` when present).
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let file = dir.join("tokenizer.json");
        if !file.is_file() {
            let sentencepiece = if dir.join("tokenizer.model").is_file() {
                " (its tokenizer.model, a SentencePiece file, is not read here)"
            } else {
                ""
            };
            bail!(
                "model folder {} has no tokenizer.json{sentencepiece}; copy the model's \
                 tokenizer.json into it (transformers writes one with \
                 `AutoTokenizer.from_pretrained(<model>).save_pretrained(<folder>)`)",
                dir.display()
            );
        }
        let mut inner = tokenizers::Tokenizer::from_file(&file)
            .map_err(|e| anyhow::anyhow!("cannot load tokenizer {}: {e}", file.display()))?;
        // A tokenizer.json saved with truncation or padding would silently cut prompts and
        // outputs or pad them past the context; lengths are ours to decide (as transformers
        // ignores them unless asked).
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| {
            anyhow::anyhow!("cannot turn off truncation in {}: {e}", file.display())
        })?;
        let config = read_json_opt(&dir.join("tokenizer_config.json"))?;
        let token = |key: &str| -> Option<String> {
            let v = config.as_ref()?.get(key)?;
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
                _ => None,
            }
        };
        // tokenizer.json's post-processor adds the BOS where tokenizer_config.json does not say
        // (Llama 3 folders): transformers' tokenizer prepends it, and a GGUF of the same model
        // says `add_bos_token`, so plain prompts start with it.
        let prepended = prepended_special_token(&inner);
        let bos_token = token("bos_token").or_else(|| prepended.clone());
        let eos_token = token("eos_token");
        let add_bos = config
            .as_ref()
            .and_then(|c| c.get("add_bos_token"))
            .and_then(|v| v.as_bool())
            .unwrap_or_else(|| prepended.is_some() && prepended == bos_token);
        let pad_id = token("pad_token")
            .and_then(|t| inner.token_to_id(&t))
            .unwrap_or(0);
        let mut tok = Self::assemble(inner, bos_token, eos_token, add_bos, pad_id)?;
        // generation_config.json may list extra end-of-turn ids (e.g. Gemma's <end_of_turn>).
        if let Some(gen) = read_json_opt(&dir.join("generation_config.json"))? {
            let ids = match gen.get("eos_token_id") {
                Some(Value::Number(n)) => n.as_u64().into_iter().collect(),
                Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_u64()).collect(),
                _ => Vec::new(),
            };
            for id in ids {
                if !tok.eos_ids.contains(&(id as u32)) {
                    tok.eos_ids.push(id as u32);
                }
            }
        }
        Ok(tok)
    }

    /// A byte-level tokenizer with no merges (256 byte tokens + ChatML specials) for tiny
    /// in-process test models. Ids: 0 `<|endoftext|>`, 1 `<|im_start|>`, 2 `<|im_end|>`, then bytes.
    pub fn tiny_byte_level() -> Result<Self> {
        let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        tokens.extend(byte_alphabet());
        let json = byte_level_bpe_json(&tokens, &[], &[0, 1, 2], "gpt2")?;
        let inner = tokenizers::Tokenizer::from_bytes(serde_json::to_vec(&json)?)
            .map_err(|e| anyhow::anyhow!("cannot build the tiny tokenizer: {e}"))?;
        Self::assemble(
            inner,
            Some("<|im_start|>".into()),
            Some("<|im_end|>".into()),
            false,
            2,
        )
    }

    fn assemble(
        inner: tokenizers::Tokenizer,
        bos_token: Option<String>,
        eos_token: Option<String>,
        add_bos: bool,
        pad_id: u32,
    ) -> Result<Self> {
        let mut eos_ids = Vec::new();
        for t in [eos_token.as_deref(), Some("<|endoftext|>")]
            .into_iter()
            .flatten()
        {
            if let Some(id) = inner.token_to_id(t) {
                if !eos_ids.contains(&id) {
                    eos_ids.push(id);
                }
            }
        }
        Ok(Self {
            inner,
            bos_token,
            eos_token,
            eos_ids,
            add_bos,
            pad_id,
        })
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Number of ids the tokenizer can emit (vocabulary plus added tokens).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of a prompt (rendered or raw): [`Self::encode`]'s, starting with exactly one
    /// BOS when the tokenizer asks for one, as transformers' `tokenizer(text)` and llama.cpp's
    /// `llama_tokenize(add_special = true)` do; a text that already starts with it (a chat
    /// template that writes `bos_token`) gets no second one.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.encode(text)?;
        if let Some(bos) = self.bos_id().filter(|_| self.add_bos) {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    /// The BOS token's id, when the tokenizer has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.inner.token_to_id(self.bos_token.as_deref()?)
    }

    /// Token ids of `text` alone, as a continuation (an output after its prompt): special
    /// tokens written in the text (e.g. `<|im_start|>`) are recognised, and no BOS is added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow::anyhow!("cannot tokenize text: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| anyhow::anyhow!("cannot decode token ids: {e}"))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// A tokenizer that can emit ids past the model's embedding table would index out of it.
    pub fn check_fits(&self, model_vocab: usize, source: &Path) -> Result<()> {
        let n = self.vocab_size();
        if n > model_vocab {
            bail!(
                "{}: the tokenizer has {n} tokens but the model's vocabulary has only {model_vocab}; \
                 tokenizer and weights do not belong together",
                source.display()
            );
        }
        Ok(())
    }
}

/// What llama.cpp assumes about a GGUF vocabulary's BOS where the metadata says nothing.
struct GgufBosDefaults {
    /// `tokenizer.ggml.add_bos_token`.
    add_bos: bool,
    /// `tokenizer.ggml.bos_token_id`.
    bos_id: u32,
}

/// The `tokenizer.ggml.pre` names for which llama.cpp adds a BOS when the GGUF has no
/// `tokenizer.ggml.add_bos_token` (Llama 3's BPE).
const PRE_TOKENIZERS_ADDING_BOS: &[&str] = &["llama-bpe", "llama3"];

/// The one special token the tokenizer's post-processor puts before a text when asked to add
/// special tokens (a BOS), if it does.
fn prepended_special_token(inner: &tokenizers::Tokenizer) -> Option<String> {
    let ids = |add_special: bool| {
        inner
            .encode("a", add_special)
            .ok()
            .map(|e| e.get_ids().to_vec())
    };
    let (with, without) = (ids(true)?, ids(false)?);
    // Whatever it appends (an EOS) does not matter here.
    match with.split_first() {
        Some((id, rest)) if rest.starts_with(&without) => inner.id_to_token(*id),
        _ => None,
    }
}

/// A float array of the GGUF metadata (SentencePiece scores).
fn f32_array(gguf: &GgufFile, key: &str) -> Result<Vec<f32>> {
    let bad = |e: candle_core::Error| {
        anyhow::anyhow!(
            "GGUF file {}: metadata key `{key}` should be a list of floats ({e}); the file is \
             corrupt: delete it and fetch it again",
            gguf.path.display()
        )
    };
    let values = gguf
        .get(key)
        .with_context(|| {
            format!(
                "GGUF file {} lacks the metadata key `{key}` a SentencePiece vocabulary needs: \
                 fetch a complete GGUF of the model, or load the model's Hugging Face folder \
                 (with its tokenizer.json) as `model.path` (or --model)",
                gguf.path.display()
            )
        })?
        .to_vec()
        .map_err(bad)?;
    values.iter().map(|v| v.to_f32().map_err(bad)).collect()
}

fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is not valid JSON", path.display()))
}

/// GPT-2's printable stand-ins for the 256 bytes, in byte order.
fn byte_alphabet() -> Vec<String> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut mapping = vec![0u32; 256];
    for b in &printable {
        mapping[*b as usize] = *b;
    }
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            mapping[b as usize] = 256 + extra;
            extra += 1;
        }
    }
    printable.clear();
    mapping
        .into_iter()
        .map(|c| char::from_u32(c).map(String::from).unwrap_or_default())
        .collect()
}

/// The `tokenizer.ggml.pre` names [`pre_tokenizer`] rebuilds (`default` and `gpt2` as GPT-2's).
const KNOWN_PRE_TOKENIZERS: &[&str] = &[
    "default",
    "gpt2",
    "gpt-2",
    "smollm",
    "starcoder",
    "refact",
    "qwen2",
    "deepseek-r1-qwen",
    "llama-bpe",
    "llama3",
];

/// Pre-tokenizer for llama.cpp's `tokenizer.ggml.pre` names.
fn pre_tokenizer(pre: &str) -> Value {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    match pre {
        "smollm" | "starcoder" | "refact" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        "qwen2" | "deepseek-r1-qwen" => json!({"type": "Sequence", "pretokenizers": [
            split(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
            byte_level(false)]}),
        "llama-bpe" | "llama3" => json!({"type": "Sequence", "pretokenizers": [
            split(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
            byte_level(false)]}),
        _ => byte_level(true),
    }
}

/// A `tokenizer.json` document for byte-level BPE, the shape Hugging Face writes.
fn byte_level_bpe_json(
    tokens: &[String],
    merges: &[String],
    special: &[u32],
    pre: &str,
) -> Result<Value> {
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), json!(i));
    }
    if vocab.len() != tokens.len() {
        bail!("the vocabulary lists some tokens twice");
    }
    let added: Vec<Value> = special
        .iter()
        .map(|&id| {
            json!({"id": id, "content": tokens[id as usize], "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(pre),
        "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_tokenizer_round_trips_bytes_and_specials() -> Result<()> {
        let tok = TextTokenizer::tiny_byte_level()?;
        assert_eq!(tok.vocab_size(), 259);
        let text = "<|im_start|>user\nHé 12!<|im_end|>";
        let ids = tok.encode(text)?;
        assert_eq!(ids[0], 1);
        assert_eq!(*ids.last().unwrap(), 2);
        // "user\n" are 5 single bytes, "Hé 12!" is 7 bytes (é is two).
        assert_eq!(ids.len(), 1 + 5 + 7 + 1);
        assert_eq!(tok.decode(&ids, false)?, text);
        assert_eq!(tok.decode(&ids, true)?, "user\nHé 12!");
        assert_eq!(tok.eos_ids, vec![2, 0]);
        Ok(())
    }

    /// A tokenizer.json saved with truncation to 4 tokens and fixed padding to 128 (as an
    /// encoder's is): a decoder folder must neither cut nor pad.
    #[test]
    fn a_folder_tokenizer_saved_with_truncation_and_padding_does_neither() -> Result<()> {
        let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        tokens.extend(byte_alphabet());
        let mut json = byte_level_bpe_json(&tokens, &[], &[0, 1, 2], "gpt2")?;
        json["truncation"] = serde_json::json!({
            "direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0
        });
        json["padding"] = serde_json::json!({
            "strategy": {"Fixed": 128}, "direction": "Right", "pad_to_multiple_of": null,
            "pad_id": 0, "pad_type_id": 0, "pad_token": "<|endoftext|>"
        });
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("tokenizer.json"),
            serde_json::to_vec(&json)?,
        )?;
        let saved = tokenizers::Tokenizer::from_file(dir.path().join("tokenizer.json"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(saved.encode("abcdefg", false).unwrap().get_ids().len(), 128);
        let tok = TextTokenizer::from_folder(dir.path())?;
        assert_eq!(tok.encode("abcdefg")?.len(), 7);
        Ok(())
    }

    #[test]
    fn byte_alphabet_is_gpt2() {
        let a = byte_alphabet();
        assert_eq!(a.len(), 256);
        assert_eq!(a[b' ' as usize], "Ġ");
        assert_eq!(a[b'\n' as usize], "Ċ");
        assert_eq!(a[b'A' as usize], "A");
    }

    #[test]
    fn oversized_tokenizer_is_rejected() -> Result<()> {
        let tok = TextTokenizer::tiny_byte_level()?;
        let err = tok.check_fits(100, Path::new("model.gguf")).unwrap_err();
        assert!(err.to_string().contains("259 tokens"), "{err}");
        Ok(())
    }
}
