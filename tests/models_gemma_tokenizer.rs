//! Gemma 3's SentencePiece vocabulary, rebuilt as our tokenizer from the real GGUF that
//! `lab setup --with-gemma` fetches (tests/run.sh runs it), gives llama.cpp's token ids.
//!
//! The fixture holds llama.cpp's ids for 24 texts (spaces, newlines, tabs, digits, emoji, CJK,
//! accents, chat control tokens, HTML tags, bytes with no piece) and no part of the
//! vocabulary itself, which comes under the Gemma terms of use: users fetch the model, the
//! repository does not carry it.
use anyhow::Result;
use atgen_lab::models::cache::default_model_dir;
use atgen_lab::models::gguf::GgufFile;
use atgen_lab::models::tokenizer::TextTokenizer;
use serde_json::Value;

const GEMMA_GGUF: &str = "gemma-3-270m-q4_k_m.gguf";

fn fixture() -> Result<Value> {
    let text = std::fs::read_to_string("tests/fixtures/gemma3_tokenizer_reference.json")?;
    Ok(serde_json::from_str(&text)?)
}

fn gemma_tokenizer() -> Result<TextTokenizer> {
    let path = default_model_dir("gemma3-270m").join(GEMMA_GGUF);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo run -- setup --with-gemma` first (tests/run.sh does)",
        path.display()
    );
    TextTokenizer::from_gguf(&GgufFile::open(&path)?)
}

fn cases(fixture: &Value) -> Vec<(String, Vec<u32>)> {
    fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let ids = case["ids"].as_array().unwrap();
            (
                case["text"].as_str().unwrap().to_string(),
                ids.iter().map(|v| v.as_u64().unwrap() as u32).collect(),
            )
        })
        .collect()
}

#[test]
fn gemma3_texts_get_llama_cpp_token_ids_and_decode_back() -> Result<()> {
    let fixture = fixture()?;
    let tokenizer = gemma_tokenizer()?;
    assert_eq!(
        tokenizer.inner().get_vocab_size(false),
        fixture["vocab_size"].as_u64().unwrap() as usize
    );
    let cases = cases(&fixture);
    assert!(cases.len() >= 20);
    let mut wrong = Vec::new();
    for (text, expected) in &cases {
        let ids = tokenizer.encode(text)?;
        if &ids != expected {
            wrong.push(format!("{text:?}: ours {ids:?}, llama.cpp {expected:?}"));
            continue;
        }
        let decoded = tokenizer.decode(&ids, false)?;
        if &decoded != text {
            wrong.push(format!("{text:?} decodes back as {decoded:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    Ok(())
}
