//! Whole prompts as `lab` builds them get llama.cpp's ids (llama_tokenize with add_special =
//! true): SmolLM2-135M-Instruct through its chat template with the quickstart's system prompt
//! and input template (its GGUF asks for no BOS, so none), and Gemma 3 270M in the plain format
//! (its GGUF asks for one: exactly one). The fixture (ids only) is made by
//! tests/fixtures/make_prompt_bos_reference.py from the GGUFs `lab setup --with-gemma` fetches.
use anyhow::Result;
use atgen_lab::models::cache::default_model_dir;
use atgen_lab::models::chat::{render_plain, ChatTemplate};
use atgen_lab::models::gguf::GgufFile;
use atgen_lab::models::tokenizer::TextTokenizer;
use serde_json::Value;

const MODELS: [(&str, &str); 2] = [
    ("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("gemma3-270m", "gemma-3-270m-q4_k_m.gguf"),
];

/// The tokenizer and chat template of a cached model's GGUF (no weights are read).
fn tokenizer_and_template(name: &str, file: &str) -> Result<(TextTokenizer, ChatTemplate)> {
    let path = default_model_dir(name).join(file);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo run -- setup --with-gemma` first (tests/run.sh does)",
        path.display()
    );
    let gguf = GgufFile::open(&path)?;
    let tokenizer = TextTokenizer::from_gguf(&gguf)?;
    let source = gguf.string("tokenizer.chat_template").ok();
    let template = ChatTemplate::new(
        source,
        tokenizer.bos_token.clone(),
        tokenizer.eos_token.clone(),
    );
    Ok((tokenizer, template))
}

#[test]
fn prompts_of_the_cached_models_get_llama_cpp_ids() -> Result<()> {
    let text = std::fs::read_to_string("tests/fixtures/prompt_bos_reference.json")?;
    let fixture: Value = serde_json::from_str(&text)?;
    let cases = fixture["cases"].as_array().unwrap();
    let mut checked = 0;
    for (name, file) in MODELS {
        let (tokenizer, template) = tokenizer_and_template(name, file)?;
        for case in cases.iter().filter(|c| c["model"] == name) {
            let (system, user) = (case["system"].as_str(), case["user"].as_str().unwrap());
            let rendered = match case["format"].as_str() {
                Some("chat") => template.render(system, user)?,
                _ => render_plain(system, user),
            };
            assert_eq!(rendered, case["text"].as_str().unwrap(), "{name}");
            let expected: Vec<u32> = case["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(
                tokenizer.encode_prompt(&rendered)?,
                expected,
                "{name}: {user:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
    Ok(())
}
