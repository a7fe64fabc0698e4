//! Parity of our BERT sentence encoder with sentence-transformers 6.2 on all-MiniLM-L6-v2
//! (`tests/fixtures/minilm_reference.jsonl`: 12 texts, an empty one and a 200-word one among
//! them). Needs the default encoder in the models cache (`lab setup`).
use atgen_lab::models::encoder::SentenceEncoder;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    text: String,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_reference.jsonl"
    );
    std::fs::read_to_string(path)
        .expect("fixture is in the repository")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture lines are JSON"))
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn matches_sentence_transformers() {
    let refs = references();
    assert_eq!(refs.len(), 12);
    let encoder = SentenceEncoder::load_default().expect("default encoder (run `lab setup`)");
    let texts: Vec<String> = refs.iter().map(|r| r.text.clone()).collect();
    // Batched (mixed lengths, sorted and padded) and one at a time must both match.
    let batched = encoder.embed(&texts).unwrap();
    assert_eq!((batched.rows, batched.cols), (12, 384));
    let mut min_cos = f32::INFINITY;
    for (i, r) in refs.iter().enumerate() {
        let single = encoder.embed(std::slice::from_ref(&texts[i])).unwrap();
        let c_batched = cosine(batched.row(i), &r.embedding);
        let c_single = cosine(single.row(0), &r.embedding);
        let norm = batched.row(i).iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "row {i} is not unit length: {norm}"
        );
        println!(
            "{i:2} words={:3} cos(batched)={c_batched:.7} cos(single)={c_single:.7}",
            r.text.split_whitespace().count()
        );
        min_cos = min_cos.min(c_batched).min(c_single);
    }
    println!("min cosine with sentence-transformers: {min_cos:.7}");
    assert!(min_cos >= 0.9999, "min cosine {min_cos} < 0.9999");
}

#[test]
fn token_embeddings_flag_special_tokens() {
    let encoder = SentenceEncoder::load_default().expect("default encoder (run `lab setup`)");
    let texts = vec![
        "hello world".to_string(),
        String::new(),
        "unbelievable".to_string(),
    ];
    let tokens = encoder.token_embeddings(&texts).unwrap();
    let content = |i: usize| tokens[i].content.iter().filter(|&&c| c).count();
    // "hello world" → [CLS] 2 word pieces [SEP]; "" → [CLS] [SEP]; "unbelievable" → pieces.
    assert_eq!((content(0), tokens[0].vectors.len()), (2, 4));
    assert_eq!((content(1), tokens[1].vectors.len()), (0, 2));
    assert!(content(2) > 0);
    assert!(tokens
        .iter()
        .flat_map(|t| &t.vectors)
        .all(|v| v.len() == 384));
    // The same text alone gives the same token states as in the batch.
    let alone = encoder.token_embeddings(&texts[..1]).unwrap();
    let diff = alone[0]
        .vectors
        .iter()
        .flatten()
        .zip(tokens[0].vectors.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-4, "batched token states differ by {diff}");
    assert_eq!(encoder.model_hash().len(), 64);
}

/// Throughput on 1,000 AESLC subjects, batch 64:
/// `cargo test --release --test encoder_parity -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: prints sentences/s"]
fn bench_sentences_per_second() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/aeslc/train.jsonl");
    let texts: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take(1000)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["subject"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(texts.len(), 1000);
    let encoder = SentenceEncoder::load_default().unwrap().with_batch_size(64);
    encoder.embed(&texts[..64]).unwrap(); // warm-up
    let start = std::time::Instant::now();
    let m = encoder.embed(&texts).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(m.rows, 1000);
    // Dense FLOPs of the layers (attention scores are negligible at these lengths).
    let tokens: usize = encoder.token_counts(&texts).unwrap().iter().sum();
    let c = encoder.config();
    let macs_per_token = c.num_hidden_layers
        * (4 * c.hidden_size * c.hidden_size + 2 * c.hidden_size * c.intermediate_size);
    let encoder_gflops = 2.0 * (tokens * macs_per_token) as f64 / secs / 1e9;
    // The machine is shared: a matmul figure from the same moment says how loaded it was
    // (about 440 GFLOP/s when idle, DESIGN.md).
    let dev = candle_core::Device::Cpu;
    let a = candle_core::Tensor::ones((1024, 768), candle_core::DType::F32, &dev).unwrap();
    let b = candle_core::Tensor::ones((768, 3072), candle_core::DType::F32, &dev).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..5 {
        a.matmul(&b).unwrap();
    }
    let matmul_gflops = 5.0 * 2.0 * 1024.0 * 768.0 * 3072.0 / t.elapsed().as_secs_f64() / 1e9;
    println!(
        "encoder: 1000 AESLC subjects ({tokens} word pieces) in {secs:.2}s = {:.0} sentences/s \
         (batch 64), {encoder_gflops:.1} GFLOP/s; a 1024×768×3072 matmul right after: \
         {matmul_gflops:.1} GFLOP/s",
        1000.0 / secs
    );
}

/// `lab metrics` computes BERTScore with the encoder `lab setup` fetched: identical texts
/// score 1, a paraphrase scores above an unrelated text.
#[test]
fn lab_metrics_computes_bertscore_with_the_default_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let predictions = dir.path().join("p.txt");
    let references = dir.path().join("r.txt");
    std::fs::write(
        &predictions,
        "The meeting moved to Friday.\nThe meeting is now on Friday.\nBananas are yellow.\n",
    )
    .unwrap();
    std::fs::write(
        &references,
        "The meeting moved to Friday.\nThe meeting moved to Friday.\nThe meeting moved to Friday.\n",
    )
    .unwrap();
    let score = |file: &std::path::Path| -> Vec<f64> {
        let per_example = dir.path().join("scores.jsonl");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lab"))
            .args(["metrics", "--metrics", "bertscore_minilm", "--json"])
            .arg("--predictions")
            .arg(file)
            .arg("--references")
            .arg(&references)
            .arg("--per-example")
            .arg(&per_example)
            .env("LAB_QUIET", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(&per_example)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["bertscore_minilm"].as_f64().unwrap()
            })
            .collect()
    };
    let s = score(&predictions);
    assert!((s[0] - 1.0).abs() < 1e-5, "{s:?}");
    assert!(s[1] > s[2] && s[1] < 1.0, "{s:?}");
}
