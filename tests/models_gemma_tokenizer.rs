//! Gemma 3's SentencePiece vocabulary rebuilt as our tokenizer gives llama.cpp's token ids.
//!
//! The fixture holds llama.cpp's ids for 24 texts (spaces, newlines, tabs, digits, emoji, CJK,
//! accents, chat control tokens, HTML tags, bytes with no piece) and the part of the real
//! 262,144-piece vocabulary those texts can be segmented through: every piece that is a
//! substring of a text, plus byte, user-defined and the first control tokens. A segmentation
//! only ever passes through substrings of its text, so the part segments them as the whole does.
//! The ids keep their real values; the rest of the vocabulary is filled with pieces no text
//! contains.
use anyhow::Result;
use atgen_lab::models::spm_tokenizer::{SpmVocabulary, TOKEN_TYPE_NORMAL};
use serde_json::Value;

fn fixture() -> Result<Value> {
    let text = std::fs::read_to_string("tests/fixtures/gemma3_tokenizer_reference.json")?;
    Ok(serde_json::from_str(&text)?)
}

fn vocabulary(fixture: &Value) -> SpmVocabulary {
    let size = fixture["vocab_size"].as_u64().unwrap() as usize;
    // U+F8FF (private use) appears in no text, so filler pieces are never reached.
    let mut pieces: Vec<String> = (0..size).map(|i| format!("\u{F8FF}{i}")).collect();
    let mut scores = vec![-1e9f32; size];
    let mut types = vec![TOKEN_TYPE_NORMAL; size];
    for entry in fixture["pieces"].as_array().unwrap() {
        let id = entry[0].as_u64().unwrap() as usize;
        pieces[id] = entry[1].as_str().unwrap().to_string();
        scores[id] = entry[2].as_f64().unwrap() as f32;
        types[id] = entry[3].as_i64().unwrap() as i32;
    }
    SpmVocabulary {
        pieces,
        scores,
        types,
        add_space_prefix: fixture["add_space_prefix"].as_bool().unwrap(),
        unknown_id: fixture["unknown_id"].as_u64().map(|id| id as u32),
    }
}

#[test]
fn gemma3_texts_get_llama_cpp_token_ids() -> Result<()> {
    let fixture = fixture()?;
    let tokenizer = vocabulary(&fixture).tokenizer()?;
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let mut wrong = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = tokenizer
            .encode(text, false)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .get_ids()
            .to_vec();
        if ids != expected {
            wrong.push(format!("{text:?}: ours {ids:?}, llama.cpp {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    Ok(())
}

#[test]
fn gemma3_ids_decode_back_to_their_text() -> Result<()> {
    let fixture = fixture()?;
    let tokenizer = vocabulary(&fixture).tokenizer()?;
    for case in fixture["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = tokenizer
            .encode(text, false)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .get_ids()
            .to_vec();
        let decoded = tokenizer
            .decode(&ids, false)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(decoded, text);
    }
    Ok(())
}
