//! `lab bench-host`: throughput of the model host on SmolLM2-135M (GGUF, dequantized f32) and
//! MiniLM — teacher-forced scoring, batched greedy generation, LoRA training steps, sentence
//! embeddings — each as a share of the f32 peak measured in the same run with a large gemm.
//! `--compare` runs the PyTorch reference (benches/reference/harness.py) alternately with ours
//! on the same inputs and prints ratios and numeric agreement; the peak is then the faster of
//! our gemm and PyTorch's (MKL on x86 builds, which on Intel CPUs outruns ours).
//! `--device cuda` (a `--features cuda` build) runs both sides on the GPU instead.
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::bench_reference::Reference;
use super::bench_summary::{print_table, summarize, Peaks, RunFacts};
use super::encoder::{SentenceEncoder, DEFAULT_ENCODER};
use super::generate::GenerateOptions;
use super::lm::{LanguageModel, LoraSettings, PeftMethod};
use super::train::{train, TrainExample, TrainOptions};

const DEFAULT_LM: &str = "smollm2-135m-instruct";
const LM_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const TEXTS_FILE: &str = "data/aeslc/train.jsonl";
const SCORE_ROWS: usize = 8;
const SCORE_PROMPT: usize = 192;
const SCORE_OUTPUT: usize = 64;
const GEN_ROWS: usize = 16;
const GEN_PROMPT: usize = 64;
const GEN_NEW: usize = 32;
const TRAIN_ROWS: usize = 8;
const TRAIN_PROMPT: usize = 192;
const TRAIN_TARGET: usize = 64;
const LORA_R: usize = 16;
const LORA_ALPHA: f64 = 32.0;
const ENCODER_TEXTS: usize = 256;
const ENCODER_BATCH: usize = 64;

/// `lab bench-host --help`'s environment section; the op names come from the list
/// `LAB_UNFUSED` is checked against, so it cannot fall behind.
fn after_help() -> String {
    format!(
        "Examples:\n  \
lab bench-host                             ours alone, every workload\n  \
lab bench-host --compare                   against PyTorch (bash benches/reference/setup.sh first)\n  \
lab bench-host --only training --rounds 5\n\n\
Environment:\n  LAB_UNFUSED=<op,...>  run these ops as candle's composed ones, for side-by-side \
checks ({}, or all)\n  \
LAB_GEMM_TRACE=1      print every gemm shape's calls, seconds and GFLOP/s over the timed rounds\n  \
LAB_STEP_TIMES=1      print each training step's forward, backward and update time (device synchronized)\n\n\
On Intel CPUs a build with MKL runs the products faster: bash scripts/fetch-mkl.sh, then\n  \
MKLROOT=$PWD/target/mkl cargo build --release --features mkl",
        super::fused_train::UNFUSED_NAMES.join(", ")
    )
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = after_help()
)]
pub struct BenchHostArgs {
    /// Also run the PyTorch reference (transformers + peft + sentence-transformers), A B A B.
    #[arg(long)]
    pub compare: bool,
    /// Timed rounds of every workload (ours and, with --compare, the reference).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Untimed full-size rounds first (ours and, with --compare, the reference): the first
    /// round touches every buffer for the first time (training: ~9 GB of fresh pages the
    /// kernel zeroes, twice the step time), which no later round or real run repeats.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Python of the reference venv (made by benches/reference/setup.sh).
    #[arg(long, default_value = "target/bench-venv/bin/python")]
    pub python: PathBuf,
    /// The reference harness script.
    #[arg(long, default_value = "benches/reference/harness.py")]
    pub harness: PathBuf,
    /// Run only these workloads (comma-separated), e.g. to profile one.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Workload>,
    /// AESLC-style JSONL whose `email` texts feed every workload.
    #[arg(long, default_value = TEXTS_FILE)]
    pub texts: PathBuf,
    /// Where both sides run: the CPU, or the first CUDA GPU (needs a `--features cuda` build,
    /// and PyTorch with CUDA in the reference's Python).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: BenchDevice,
    /// A SmolLM2-135M-shaped GGUF to load instead of the pinned one from the models cache.
    #[arg(long, value_name = "FILE")]
    pub lm: Option<PathBuf>,
    /// A MiniLM-shaped sentence-encoder folder (config.json, model.safetensors,
    /// tokenizer.json) instead of the pinned one from the models cache.
    #[arg(long, value_name = "DIR")]
    pub encoder: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchDevice {
    Cpu,
    Cuda,
}

impl BenchDevice {
    fn open(self) -> Result<Device> {
        let kind = match self {
            BenchDevice::Cpu => crate::config::DeviceKind::Cpu,
            BenchDevice::Cuda => crate::config::DeviceKind::Cuda,
        };
        super::device::resolve_device(kind).with_context(|| {
            "bench-host --device cuda cannot run here: fix the cause below, or leave out \
             --device to benchmark the CPU"
        })
    }

    /// The peak-measuring gemm's shape (m, k, n), the same for both sides: on a GPU,
    /// 1024×768·768×3072 takes a few microseconds and measures launch latency, so it times a
    /// product 64 times larger.
    pub fn peak_shape(self) -> (usize, usize, usize) {
        match self {
            BenchDevice::Cpu => (1024, 768, 3072),
            BenchDevice::Cuda => (4096, 3072, 12288),
        }
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Workload {
    Scoring,
    Generation,
    Training,
    Embeddings,
}

/// The inputs every implementation runs; written to JSON for the reference harness.
#[derive(Debug, Clone, Serialize)]
pub struct Workloads {
    pub device: BenchDevice,
    /// (m, k, n) of the f32 product both sides time for the peak (`peak_shape`).
    pub peak_shape: (usize, usize, usize),
    pub gguf: PathBuf,
    pub encoder_dir: PathBuf,
    pub threads: usize,
    pub score_prompts: Vec<Vec<u32>>,
    pub score_outputs: Vec<Vec<u32>>,
    pub gen_prompts: Vec<Vec<u32>>,
    pub gen_new_tokens: usize,
    pub train_prompts: Vec<Vec<u32>>,
    pub train_targets: Vec<Vec<u32>>,
    pub lora_r: usize,
    pub lora_alpha: f64,
    pub learning_rate: f64,
    pub encoder_texts: Vec<String>,
    pub encoder_batch: usize,
    /// Workloads to run; the others are skipped (their rows are left out of the results).
    pub workloads: Vec<Workload>,
}

impl Workloads {
    pub fn runs(&self, w: Workload) -> bool {
        self.workloads.contains(&w)
    }
}

/// One round of one implementation: seconds per workload and what it computed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoundResult {
    pub score_s: f64,
    pub generate_s: f64,
    pub generated_tokens: usize,
    pub train_s: f64,
    pub embed_s: f64,
    pub score_logprobs: Vec<Vec<f32>>,
    pub generated_ids: Vec<Vec<u32>>,
    pub train_loss: f32,
    pub embeddings: Vec<Vec<f32>>,
}

/// FLOPs of each workload, counted from the shapes (see `count_flops`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WorkloadFlops {
    pub score: f64,
    pub generate: f64,
    pub train: f64,
    pub embed: f64,
}

pub fn run(args: &BenchHostArgs) -> Result<()> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let threads = candle_core::utils::get_num_threads();
    let device = args.device.open()?;
    // Only the pinned models the command line does not replace are fetched and checked.
    let mut pinned = Vec::new();
    let gguf = match &args.lm {
        Some(path) => existing(path, "--lm")?,
        None => {
            pinned.push(DEFAULT_LM);
            super::cache::default_model_dir(DEFAULT_LM).join(LM_FILE)
        }
    };
    let encoder_dir = match &args.encoder {
        Some(path) => existing(path, "--encoder")?,
        None => {
            pinned.push(DEFAULT_ENCODER);
            super::cache::default_model_dir(DEFAULT_ENCODER)
        }
    };
    super::setup::ensure_default_models(&pinned)?;
    // On the CPU even in a CUDA build unless --device cuda: the reference runs PyTorch on the
    // same device.
    let mut lm = LanguageModel::load_on(
        &super::loader::ModelSource::parse(
            gguf.to_str()
                .with_context(|| format!("the model path {} is not UTF-8", gguf.display()))?,
        ),
        candle_core::DType::F32,
        &device,
    )?;
    let encoder = SentenceEncoder::load_on(&encoder_dir, &device)?.with_batch_size(ENCODER_BATCH);
    let emails = read_texts(&args.texts)?;
    let mut work = build_workloads(
        &lm,
        &emails,
        gguf,
        encoder_dir.clone(),
        args.device,
        threads,
    )?;
    if !args.only.is_empty() {
        work.workloads = args.only.clone();
    }
    let flops = count_flops(&lm, &work, &encoder_dir)?;

    let mut reference = if args.compare {
        Some(Reference::start(&args.python, &args.harness, &work)?)
    } else {
        None
    };
    // The peak is the best large f32 gemm of either side: on a CPU where PyTorch's gemm (MKL)
    // is faster than ours, our share is taken of its rate, not of our own gemm's.
    let mut gemm_peak = measure_peak_gflops(&device, work.peak_shape)?;
    let mut reference_peak = match reference.as_mut() {
        Some(r) => Some(r.peak()?),
        None => None,
    };
    let bar = crate::util::progress::bar((args.warmup + args.rounds) as u64, "bench-host");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..args.warmup + args.rounds {
        if round == args.warmup {
            // The untimed rounds' products are not part of the trace.
            super::cpu_gemm::trace::clear();
        }
        ours.push(run_ours(&mut lm, &encoder, &work, &device)?);
        if let Some(r) = reference.as_mut() {
            theirs.push(r.round()?);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Measured again after the rounds: one ~0.15 s measurement can land in a slow moment of
    // a shared machine (seen: 108 against the usual ~210 GFLOP/s), and the peak is the best.
    gemm_peak = gemm_peak.max(measure_peak_gflops(&device, work.peak_shape)?);
    if let Some(mut r) = reference {
        let again = r.peak()?;
        reference_peak = reference_peak.map(|p| p.max(again));
        r.finish()?;
    }
    if super::cpu_gemm::trace::enabled() {
        eprint!("{}", super::cpu_gemm::trace::report());
    }
    let peaks = Peaks {
        shape: work.peak_shape,
        ours: gemm_peak,
        reference: reference_peak,
    };
    let facts = RunFacts {
        device: device_name(&device),
        threads,
        warmup: args.warmup,
        gemm_backend: if device.is_cpu() {
            super::cpu_gemm::BACKEND
        } else {
            "cuBLAS"
        },
    };
    let summary = summarize(&work, &flops, peaks, facts, &ours, &theirs);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_table(&summary);
    }
    Ok(())
}

fn existing(path: &Path, flag: &str) -> Result<PathBuf> {
    if !path.exists() {
        bail!("{flag} {}: no such file or folder", path.display());
    }
    Ok(path.to_path_buf())
}

fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// `email` fields of a JSONL file, in file order.
fn read_texts(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {} (run from the repository root or pass --texts FILE)",
            path.display()
        )
    })?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not valid JSON", path.display(), i + 1))?;
        let email = v.get("email").and_then(|e| e.as_str()).with_context(|| {
            format!("{} line {}: no string field `email`", path.display(), i + 1)
        })?;
        out.push(email.to_string());
    }
    if out.len() < ENCODER_TEXTS {
        bail!(
            "{} has {} texts; the benchmark needs {ENCODER_TEXTS}",
            path.display(),
            out.len()
        );
    }
    Ok(out)
}

/// Real text, tokenized and cut into fixed-length windows so every row does the same work.
fn build_workloads(
    lm: &LanguageModel,
    emails: &[String],
    gguf: PathBuf,
    encoder_dir: PathBuf,
    device: BenchDevice,
    threads: usize,
) -> Result<Workloads> {
    let mut stream = Vec::new();
    let needed = SCORE_ROWS * (SCORE_PROMPT + SCORE_OUTPUT)
        + GEN_ROWS * GEN_PROMPT
        + TRAIN_ROWS * (TRAIN_PROMPT + TRAIN_TARGET);
    for email in emails {
        stream.extend(lm.encode(email)?);
        if stream.len() >= needed {
            break;
        }
    }
    if stream.len() < needed {
        bail!(
            "the texts give {} tokens; the benchmark needs {needed}",
            stream.len()
        );
    }
    let mut windows = stream.into_iter();
    let mut take = |n: usize| -> Vec<u32> { windows.by_ref().take(n).collect() };
    let (mut sp, mut so, mut gp, mut tp, mut tt) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..SCORE_ROWS {
        sp.push(take(SCORE_PROMPT));
        so.push(take(SCORE_OUTPUT));
    }
    for _ in 0..GEN_ROWS {
        gp.push(take(GEN_PROMPT));
    }
    for _ in 0..TRAIN_ROWS {
        tp.push(take(TRAIN_PROMPT));
        tt.push(take(TRAIN_TARGET));
    }
    Ok(Workloads {
        device,
        peak_shape: device.peak_shape(),
        gguf,
        encoder_dir,
        threads,
        score_prompts: sp,
        score_outputs: so,
        gen_prompts: gp,
        gen_new_tokens: GEN_NEW,
        train_prompts: tp,
        train_targets: tt,
        lora_r: LORA_R,
        lora_alpha: LORA_ALPHA,
        learning_rate: 1e-4,
        encoder_texts: emails[..ENCODER_TEXTS].to_vec(),
        encoder_batch: ENCODER_BATCH,
        workloads: vec![
            Workload::Scoring,
            Workload::Generation,
            Workload::Training,
            Workload::Embeddings,
        ],
    })
}

/// FLOPs of the plain computation, as the reference does it: `2·params·tokens` for every
/// linear (the LM head only where logits are read), `4·(heads·head_dim)` per query–key pair
/// per layer for the two attention products, every pair of a row counted. Training counts
/// forward + backward = 2× forward: the base weights are frozen, so backward computes input
/// gradients only (plus the small LoRA weight gradients). Work we skip still counts (the
/// causal upper half of attention, the last layer's positions nobody reads), so GFLOP/s is
/// effective throughput, the same measure for both sides.
pub fn count_flops(lm: &LanguageModel, w: &Workloads, encoder_dir: &Path) -> Result<WorkloadFlops> {
    let c = lm.config();
    let linear: f64 = lm
        .decoder()
        .linears()
        .iter()
        .map(|(_, l)| (l.in_features() * l.out_features()) as f64)
        .sum();
    let head = (c.hidden_size * c.vocab_size) as f64;
    let attn = 4.0 * (c.num_layers * c.num_heads * c.head_dim) as f64;
    let forward = |tokens: f64, logit_rows: f64, pairs: f64| {
        2.0 * linear * tokens + 2.0 * head * logit_rows + attn * pairs
    };
    let rows_of = |p: &[Vec<u32>], o: &[Vec<u32>]| -> (f64, f64) {
        p.iter().zip(o).fold((0.0, 0.0), |(t, pairs), (p, o)| {
            let len = (p.len() + o.len()) as f64;
            (t + len, pairs + len * len)
        })
    };
    let (st, sp) = rows_of(&w.score_prompts, &w.score_outputs);
    let score_logits: f64 = w.score_outputs.iter().map(|o| o.len() as f64).sum();
    let score = forward(st, score_logits, sp);
    let mut generate = 0.0;
    for p in &w.gen_prompts {
        let p = p.len() as f64;
        // Prefill, then one token per step attending to everything so far.
        generate += forward(p, 1.0, p * p);
        for s in 1..w.gen_new_tokens {
            generate += forward(1.0, 1.0, p + s as f64);
        }
    }
    let (tt, tp) = rows_of(&w.train_prompts, &w.train_targets);
    let lora: f64 = lm
        .decoder()
        .linears()
        .iter()
        .map(|(_, l)| (w.lora_r * (l.in_features() + l.out_features())) as f64)
        .sum();
    // Logits only where the loss reads them (one per target token, as `train` computes
    // them), then backward; LoRA: forward + both gradients.
    let scored: f64 = w.train_targets.iter().map(|t| t.len() as f64).sum();
    let train = 2.0 * forward(tt, scored, tp) + 3.0 * 2.0 * lora * tt;
    let embed = encoder_flops(encoder_dir, &w.encoder_texts)?;
    Ok(WorkloadFlops {
        score,
        generate,
        train,
        embed,
    })
}

fn encoder_flops(dir: &Path, texts: &[String]) -> Result<f64> {
    let config = super::bert::BertConfig::from_file(&dir.join("config.json"))?;
    let path = dir.join("tokenizer.json");
    let tokenizer = tokenizers::Tokenizer::from_file(&path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot load tokenizer {}", path.display()))?;
    let (h, i) = (config.hidden_size as f64, config.intermediate_size as f64);
    let per_token = 2.0 * config.num_hidden_layers as f64 * (4.0 * h * h + 2.0 * h * i);
    let mut total = 0.0;
    for text in texts {
        let enc = tokenizer
            .encode(text.as_str(), true)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let len = enc.len().min(super::encoder::DEFAULT_MAX_SEQ_LENGTH) as f64;
        total += per_token * len + 4.0 * config.num_hidden_layers as f64 * h * len * len;
    }
    Ok(total)
}

/// Best of several f32 gemms of `shape` (m, k, n) on `device`, in GFLOP/s.
pub fn measure_peak_gflops(device: &Device, (m, k, n): (usize, usize, usize)) -> Result<f64> {
    let a = Tensor::randn(0f32, 1.0, (m, k), device)?;
    let b = Tensor::randn(0f32, 1.0, (k, n), device)?;
    device.synchronize()?;
    let mut best = f64::MAX;
    for _ in 0..12 {
        let start = Instant::now();
        let c = a.matmul(&b)?;
        device.synchronize()?;
        std::hint::black_box(&c);
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(2.0 * (m * k * n) as f64 / best / 1e9)
}

/// One timed round of the selected workloads on our host.
fn run_ours(
    lm: &mut LanguageModel,
    encoder: &SentenceEncoder,
    w: &Workloads,
    device: &Device,
) -> Result<RoundResult> {
    let pad = lm.tokenizer().pad_id;
    let mut out = RoundResult::default();
    if w.runs(Workload::Scoring) {
        let start = Instant::now();
        out.score_logprobs = super::score::score_ids(
            lm.decoder(),
            pad,
            &w.score_prompts,
            &w.score_outputs,
            w.score_prompts.len(),
        )?;
        out.score_s = start.elapsed().as_secs_f64();
    }
    if w.runs(Workload::Generation) {
        let opts = GenerateOptions {
            max_new_tokens: w.gen_new_tokens,
            batch_size: w.gen_prompts.len(),
            ..Default::default()
        };
        let start = Instant::now();
        let gens =
            super::generate::generate_ids(lm.decoder(), lm.tokenizer(), &w.gen_prompts, &opts)?;
        out.generate_s = start.elapsed().as_secs_f64();
        out.generated_ids = gens.iter().map(|g| g[0].token_ids.clone()).collect();
        out.generated_tokens = out.generated_ids.iter().map(Vec::len).sum();
    }
    if w.runs(Workload::Training) {
        // A fresh adapter every round (B = 0), so every round's loss is the base model's.
        lm.attach_lora(&LoraSettings {
            r: w.lora_r,
            alpha: w.lora_alpha,
            dropout: 0.0,
            targets: Vec::new(),
            method: PeftMethod::Lora,
            seed: 0,
        })?;
        let examples: Vec<TrainExample> = w
            .train_prompts
            .iter()
            .zip(&w.train_targets)
            .map(|(p, t)| TrainExample {
                prompt_ids: p.clone(),
                target_ids: t.clone(),
            })
            .collect();
        let opts = TrainOptions {
            learning_rate: w.learning_rate,
            epochs: 1,
            batch_size: examples.len(),
            warmup_ratio: 0.0,
            max_seq_len: TRAIN_PROMPT + TRAIN_TARGET,
            pad_id: pad,
            ..Default::default()
        };
        let start = Instant::now();
        let report = train(&*lm, &examples, &[], &opts, None)?;
        // The optimizer's last update may still be queued on a GPU.
        device.synchronize()?;
        out.train_s = start.elapsed().as_secs_f64();
        lm.detach_lora();
        out.train_loss = report.losses.first().copied().unwrap_or(f32::NAN);
    }
    if w.runs(Workload::Embeddings) {
        let start = Instant::now();
        let matrix = encoder.embed(&w.encoder_texts)?;
        out.embed_s = start.elapsed().as_secs_f64();
        out.embeddings = (0..matrix.rows).map(|r| matrix.row(r).to_vec()).collect();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_path_is_named_with_its_flag() {
        let err = existing(Path::new("/no/such/model.gguf"), "--lm").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--lm /no/such/model.gguf: no such file or folder"
        );
        let here = existing(Path::new("Cargo.toml"), "--lm").unwrap();
        assert_eq!(here, Path::new("Cargo.toml"));
    }

    #[test]
    fn the_peak_gemm_is_larger_off_the_cpu() {
        assert_eq!(BenchDevice::Cpu.peak_shape(), (1024, 768, 3072));
        assert_eq!(BenchDevice::Cuda.peak_shape(), (4096, 3072, 12288));
    }
}
