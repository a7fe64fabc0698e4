//! Tests of `bert.rs` (a child module of it, so they reach its private items).
use super::*;

fn tiny_config() -> BertConfig {
    BertConfig {
        vocab_size: 50,
        hidden_size: 16,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 32,
        max_position_embeddings: 32,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_act: "gelu".into(),
        position_embedding_type: "absolute".into(),
    }
}

/// A random tiny BERT saved as safetensors and loaded back through the real loader.
fn tiny_bert() -> Bert {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    save_random_bert(&tiny_config(), &path);
    let bytes = std::fs::read(&path).unwrap();
    Bert::from_safetensors(bytes, tiny_config(), &Device::Cpu, &path).unwrap()
}

#[test]
fn padding_does_not_change_the_real_tokens() {
    let bert = tiny_bert();
    let dev = Device::Cpu;
    let alone = Tensor::new(&[[5u32, 7, 9]], &dev).unwrap();
    let alone_mask = Tensor::new(&[[1u32, 1, 1]], &dev).unwrap();
    let padded = Tensor::new(&[[5u32, 7, 9, 0, 0]], &dev).unwrap();
    let padded_mask = Tensor::new(&[[1u32, 1, 1, 0, 0]], &dev).unwrap();
    let a = bert.forward(&alone, &alone_mask).unwrap();
    let p = bert.forward(&padded, &padded_mask).unwrap();
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let p: Vec<f32> = p
        .narrow(1, 0, 3)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let max_diff = a
        .iter()
        .zip(&p)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        max_diff < 1e-5,
        "padding leaked into real tokens: {max_diff}"
    );
}

#[test]
fn packed_batch_equals_the_padded_batch() {
    let bert = tiny_bert();
    let texts: [&[u32]; 3] = [&[5, 7, 9, 11, 2], &[3, 4], &[8, 1, 6]];
    let lengths: Vec<usize> = texts.iter().map(|t| t.len()).collect();
    let ids: Vec<u32> = texts.concat();
    for fused_attention in [true, false] {
        let packed: Vec<Vec<f32>> = bert
            .forward_packed_with(&ids, &lengths, fused_attention)
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(packed.len(), ids.len());
        assert_packed_rows_match_padded(&bert, &texts, &packed);
    }
}

fn assert_packed_rows_match_padded(bert: &Bert, texts: &[&[u32]], packed: &[Vec<f32>]) {
    let dev = Device::Cpu;
    let mut row = 0;
    for text in texts {
        let mut padded = text.to_vec();
        padded.resize(5, 0);
        let mask: Vec<u32> = (0..5).map(|i| u32::from(i < text.len())).collect();
        let hidden = bert
            .forward(
                &Tensor::new(padded.as_slice(), &dev)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap(),
                &Tensor::new(mask.as_slice(), &dev)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap(),
            )
            .unwrap();
        let expected: Vec<Vec<f32>> = hidden.get(0).unwrap().to_vec2().unwrap();
        for want in &expected[..text.len()] {
            let diff = want
                .iter()
                .zip(&packed[row])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-5, "token {row} differs by {diff}");
            row += 1;
        }
    }
}

#[test]
fn packed_batch_rejects_mismatched_lengths() {
    let bert = tiny_bert();
    let err = bert.forward_packed(&[1, 2, 3], &[2, 2]).unwrap_err();
    assert!(err.to_string().contains("4 tokens but 3 ids"), "{err}");
    let err = bert.forward_packed(&[1, 2], &[2, 0]).unwrap_err();
    assert!(err.to_string().contains("no tokens"), "{err}");
}

#[test]
fn rejects_tanh_gelu_and_bad_head_count() {
    let mut c = tiny_config();
    c.hidden_act = "gelu_new".into();
    assert!(c.validate().unwrap_err().to_string().contains("hidden_act"));
    let mut c = tiny_config();
    c.num_attention_heads = 5;
    assert!(c.validate().unwrap_err().to_string().contains("divisible"));
}

#[test]
fn truncated_weights_give_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let err = Bert::from_safetensors(vec![1, 2, 3], tiny_config(), &Device::Cpu, &path)
        .err()
        .expect("three bytes are not a safetensors file");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("model.safetensors") && msg.contains("lab setup"),
        "{msg}"
    );
}
