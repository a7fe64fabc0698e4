//! Tests of `encoder.rs` (a child module of it, so they reach its private items).
use super::*;
use crate::models::bert::save_random_bert;

#[test]
fn encoder_specs_parse_like_model_specs() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        EncoderSource::parse("all-minilm-l6-v2"),
        EncoderSource::Default("all-minilm-l6-v2".into())
    );
    assert_eq!(
        EncoderSource::parse("sentence-transformers/all-MiniLM-L6-v2"),
        EncoderSource::Hub("sentence-transformers/all-MiniLM-L6-v2".into())
    );
    let folder = dir.path().to_str().unwrap();
    assert_eq!(
        EncoderSource::parse(folder),
        EncoderSource::Folder(dir.path().to_path_buf())
    );
    assert_eq!(
        EncoderSource::parse("./enc"),
        EncoderSource::Folder("./enc".into())
    );
}

const WORDS: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "the", "cat", "sat", "on", "mat", "un",
    "##believ", "##able",
];

fn tokenizer_json() -> String {
    let vocab: serde_json::Map<String, serde_json::Value> = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
        .collect();
    let special = |id: usize, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true})
    };
    let cls = serde_json::json!({"SpecialToken": {"id": "[CLS]", "type_id": 0}});
    let sep = serde_json::json!({"SpecialToken": {"id": "[SEP]", "type_id": 0}});
    let seq = serde_json::json!({"Sequence": {"id": "A", "type_id": 0}});
    serde_json::json!({
        "version": "1.0", "truncation": null,
        // Fixed padding like the real MiniLM file: the encoder must switch it off.
        "padding": {"strategy": {"Fixed": 16}, "direction": "Right",
            "pad_to_multiple_of": null, "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": [special(0, "[PAD]"), special(1, "[UNK]"), special(2, "[CLS]"),
            special(3, "[SEP]")],
        "normalizer": {"type": "BertNormalizer", "clean_text": true,
            "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [cls, seq, sep],
            "pair": [cls, seq, sep],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]",
            "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
            "vocab": vocab}
    })
    .to_string()
}

/// A random 2-layer BERT with a 14-word vocabulary, in a model folder.
pub(crate) fn tiny_model(vocab_size: usize, max_seq_length: Option<usize>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "vocab_size": vocab_size, "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 32,
        "max_position_embeddings": 32, "hidden_act": "gelu", "model_type": "bert"
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let config = BertConfig::from_file(&dir.path().join("config.json")).unwrap();
    save_random_bert(&config, &dir.path().join("model.safetensors"));
    std::fs::write(dir.path().join("tokenizer.json"), tokenizer_json()).unwrap();
    if let Some(n) = max_seq_length {
        let sbert = serde_json::json!({ "max_seq_length": n, "do_lower_case": false });
        std::fs::write(
            dir.path().join("sentence_bert_config.json"),
            sbert.to_string(),
        )
        .unwrap();
    }
    dir
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn mean_pool_averages_every_token_state() {
    let mut out = [7.0f32; 2];
    mean_pool_into(&[1.0, 2.0, 3.0, 4.0, 5.0, 9.0], 2, &mut out);
    assert_eq!(out, [3.0, 5.0]);
    mean_pool_into(&[], 2, &mut out);
    assert_eq!(out, [0.0, 0.0]);
}

#[test]
fn batched_rows_are_unit_length_and_equal_single_rows() {
    let dir = tiny_model(14, None);
    let encoder = SentenceEncoder::load(dir.path())
        .unwrap()
        .with_batch_size(2);
    let input = texts(&["hello world", "", "The cat sat on the mat", "unbelievable"]);
    let m = encoder.embed(&input).unwrap();
    assert_eq!((m.rows, m.cols), (4, 16));
    for (i, text) in input.iter().enumerate() {
        let norm = m.row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "row {i} norm {norm}");
        let single = encoder.embed(std::slice::from_ref(text)).unwrap();
        let diff = single
            .row(0)
            .iter()
            .zip(m.row(i))
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            diff < 1e-5,
            "row {i} differs from its single embedding by {diff}"
        );
    }
    assert_ne!(m.row(0), m.row(3));
    assert_eq!(encoder.model_hash().len(), 64);
    assert!(encoder.embed(&[]).unwrap().rows == 0);
}

#[test]
fn token_embeddings_follow_word_pieces_and_truncation() {
    let dir = tiny_model(14, None);
    let encoder = SentenceEncoder::load(dir.path()).unwrap();
    let input = texts(&["hello world", "", "unbelievable", "the cat sat on the mat"]);
    let tokens = encoder.token_embeddings(&input).unwrap();
    let content: Vec<usize> = tokens
        .iter()
        .map(|t| t.content.iter().filter(|&&c| c).count())
        .collect();
    // "unbelievable" → un ##believ ##able; [CLS] and [SEP] come too, flagged.
    assert_eq!(content, vec![2, 0, 3, 6]);
    let all: Vec<usize> = tokens.iter().map(|t| t.vectors.len()).collect();
    assert_eq!(all, vec![4, 2, 5, 8]);
    assert!(tokens
        .iter()
        .all(|t| !t.content[0] && !t.content[t.content.len() - 1]));
    assert_eq!(encoder.token_counts(&input).unwrap(), vec![4, 2, 5, 8]);
    // max_seq_length 4 keeps [CLS] + 2 word pieces + [SEP] for sentence embeddings;
    // BERTScore's token embeddings are cut only at the model's 32 positions.
    let short = tiny_model(14, Some(4));
    let encoder = SentenceEncoder::load(short.path()).unwrap();
    assert_eq!(encoder.max_seq_length(), 4);
    assert_eq!(encoder.token_counts(&input[3..]).unwrap(), [4]);
    let tokens = encoder.token_embeddings(&input[3..]).unwrap();
    assert_eq!(
        tokens[0].content,
        [false, true, true, true, true, true, true, false]
    );
    let long = texts(&[&"word ".repeat(40)]);
    assert_eq!(
        encoder.token_embeddings(&long).unwrap()[0].vectors.len(),
        32
    );
}

#[test]
fn an_encoder_loads_from_the_folder_or_hub_repository_the_experiment_names() {
    let dir = tiny_model(14, None);
    let texts = texts(&["hello world", "the cat sat on the mat"]);
    let want = SentenceEncoder::load(dir.path())
        .unwrap()
        .embed(&texts)
        .unwrap();
    let folder = SentenceEncoder::load_source(&EncoderSource::Folder(dir.path().into()))
        .unwrap()
        .embed(&texts)
        .unwrap();
    assert_eq!(folder.data, want.data);
    let err = SentenceEncoder::load_source(&EncoderSource::Folder("/no/such/encoder".into()))
        .err()
        .expect("no such folder");
    assert!(
        format!("{err:#}").contains("encoder.path = /no/such/encoder"),
        "{err:#}"
    );

    // A hub repository, from a local Hugging Face cache, offline.
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--someone--tiny-bert");
    let snapshot = repo.join("snapshots/abc123");
    std::fs::create_dir_all(&snapshot).unwrap();
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(dir.path().join(file), snapshot.join(file)).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "abc123").unwrap();
    let access = crate::models::hub::HubAccess {
        cache: hf_hub::Cache::new(cache.path().to_path_buf()),
        offline: true,
    };
    let hub = SentenceEncoder::load_hub_with(&access, "someone/tiny-bert")
        .unwrap()
        .embed(&texts)
        .unwrap();
    assert_eq!(hub.data, want.data);
    let err = SentenceEncoder::load_hub_with(&access, "someone/missing")
        .err()
        .expect("not cached");
    let err = format!("{err:#}");
    assert!(
        err.contains("encoder.hub_id = someone/missing") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
}

#[test]
fn a_model_that_does_not_mean_pool_is_refused() {
    let dir = tiny_model(14, None);
    std::fs::create_dir_all(dir.path().join("1_Pooling")).unwrap();
    let pooling = |cls: bool| {
        serde_json::json!({"word_embedding_dimension": 16, "pooling_mode_cls_token": cls,
            "pooling_mode_mean_tokens": !cls, "pooling_mode_max_tokens": false})
        .to_string()
    };
    std::fs::write(dir.path().join("1_Pooling/config.json"), pooling(true)).unwrap();
    let err = SentenceEncoder::load(dir.path())
        .err()
        .expect("CLS pooling");
    assert!(format!("{err:#}").contains("mean-pools only"), "{err:#}");
    std::fs::write(dir.path().join("1_Pooling/config.json"), pooling(false)).unwrap();
    SentenceEncoder::load(dir.path()).unwrap();
}

#[test]
fn mismatched_files_are_named() {
    let dir = tiny_model(10, None);
    let err = SentenceEncoder::load(dir.path())
        .err()
        .expect("14 tokens > 10 rows");
    assert!(format!("{err:#}").contains("different models"), "{err:#}");
    let dir = tiny_model(14, None);
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = SentenceEncoder::load(dir.path())
        .err()
        .expect("no tokenizer");
    assert!(format!("{err:#}").contains("tokenizer.json"), "{err:#}");
    std::fs::write(dir.path().join("config.json"), "{\"hidden_size\": 16}").unwrap();
    let err = SentenceEncoder::load(dir.path()).err().expect("bad config");
    assert!(format!("{err:#}").contains("config.json"), "{err:#}");
}
