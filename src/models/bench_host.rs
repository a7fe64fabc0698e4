//! `lab bench-host`: throughput of the model host on SmolLM2-135M (GGUF, dequantized f32) and
//! MiniLM — teacher-forced scoring, batched greedy generation, LoRA training steps, sentence
//! embeddings — each as a share of the f32 peak measured in the same run with a large gemm.
//! `--compare` runs the PyTorch reference (benches/reference/harness.py) alternately with ours
//! on the same inputs and prints ratios and numeric agreement; the peak is then the faster of
//! our gemm and PyTorch's (MKL on x86 builds, which on Intel CPUs outruns ours).
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

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

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Environment:\n  LAB_UNFUSED=<op,...>  run these ops as candle's composed ones, for side-by-side checks \
(softmax, lora, lora_whole, rope, norm, swiglu, gelu, skinny, exp, attention, packed, last, decode_pack, dense, or all)\n  \
LAB_GEMM_TRACE=1      print every gemm shape's calls, seconds and GFLOP/s over the timed rounds\n\n\
On Intel CPUs a build with MKL runs the products faster: bash scripts/fetch-mkl.sh, then\n  \
MKLROOT=$PWD/target/mkl cargo build --release --features mkl"
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
    fn runs(&self, w: Workload) -> bool {
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
    let lm_dir = super::cache::default_model_dir(DEFAULT_LM);
    let encoder_dir = super::cache::default_model_dir(DEFAULT_ENCODER);
    super::setup::ensure_default_models(&[DEFAULT_LM, DEFAULT_ENCODER])?;
    let gguf = lm_dir.join(LM_FILE);
    // On the CPU even in a CUDA build: the figures are CPU figures and the reference runs
    // PyTorch on the CPU.
    let mut lm = LanguageModel::load_on(
        &super::loader::ModelSource::parse(
            gguf.to_str()
                .context("the models cache path is not UTF-8")?,
        ),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )?;
    let encoder = SentenceEncoder::load(&encoder_dir)?.with_batch_size(ENCODER_BATCH);
    let emails = read_texts(&args.texts)?;
    let mut work = build_workloads(&lm, &emails, gguf, encoder_dir.clone(), threads)?;
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
    let mut gemm_peak = measure_peak_gflops()?;
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
        ours.push(run_ours(&mut lm, &encoder, &work)?);
        if let Some(r) = reference.as_mut() {
            theirs.push(r.round()?);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Measured again after the rounds: one ~0.15 s measurement can land in a slow moment of
    // a shared machine (seen: 108 against the usual ~210 GFLOP/s), and the peak is the best.
    gemm_peak = gemm_peak.max(measure_peak_gflops()?);
    if let Some(mut r) = reference {
        let again = r.peak()?;
        reference_peak = reference_peak.map(|p| p.max(again));
        r.finish()?;
    }
    if super::cpu_gemm::trace::enabled() {
        eprint!("{}", super::cpu_gemm::trace::report());
    }
    let peaks = Peaks {
        ours: gemm_peak,
        reference: reference_peak,
    };
    let summary = summarize(&work, &flops, peaks, &ours, &theirs, threads, args.warmup);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_table(&summary);
    }
    Ok(())
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

/// Best of several large f32 gemms (1024×768 by 768×3072) in GFLOP/s.
pub fn measure_peak_gflops() -> Result<f64> {
    let (m, k, n) = (1024, 768, 3072);
    let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?;
    let mut best = f64::MAX;
    for _ in 0..12 {
        let start = Instant::now();
        let c = a.matmul(&b)?;
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

/// The reference harness as a child process: one JSON line per `round` command.
struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    _workload_file: tempfile::NamedTempFile,
}

impl Reference {
    fn start(python: &Path, harness: &Path, work: &Workloads) -> Result<Self> {
        if !python.exists() {
            bail!(
                "the reference Python {} does not exist; run `bash benches/reference/setup.sh` \
                 (it makes target/bench-venv) or pass --python",
                python.display()
            );
        }
        if !harness.exists() {
            bail!(
                "the reference harness {} does not exist; run from the repository root or pass --harness",
                harness.display()
            );
        }
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), serde_json::to_vec(work)?)?;
        let mut child = Command::new(python)
            .arg(harness)
            .arg(file.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", python.display()))?;
        let stdin = child.stdin.take().context("no stdin pipe to the harness")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout pipe")?);
        let mut reference = Self {
            child,
            stdin,
            stdout,
            _workload_file: file,
        };
        // The harness answers `ready` once models are loaded and warmed up.
        let line = reference.read_line()?;
        if line.trim() != "ready" {
            bail!(
                "the reference harness said `{}` instead of `ready`",
                line.trim()
            );
        }
        Ok(reference)
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            let status = self.child.wait()?;
            bail!("the reference harness exited ({status}); see its messages above");
        }
        Ok(line)
    }

    fn round(&mut self) -> Result<RoundResult> {
        writeln!(self.stdin, "round")?;
        self.stdin.flush()?;
        let line = self.read_line()?;
        serde_json::from_str(&line).context("the reference harness printed an unreadable result")
    }

    /// The reference's own large-gemm rate (`peak` command), in GFLOP/s.
    fn peak(&mut self) -> Result<f64> {
        #[derive(Deserialize)]
        struct Peak {
            peak_gflops: f64,
        }
        writeln!(self.stdin, "peak")?;
        self.stdin.flush()?;
        let line = self.read_line()?;
        let peak: Peak = serde_json::from_str(&line)
            .context("the reference harness printed an unreadable peak")?;
        Ok(peak.peak_gflops)
    }

    fn finish(mut self) -> Result<()> {
        writeln!(self.stdin, "quit")?;
        self.stdin.flush()?;
        self.child.wait()?;
        Ok(())
    }
}

/// One workload's figures over all rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub workload: &'static str,
    pub unit: &'static str,
    pub ours: f64,
    pub reference: Option<f64>,
    pub ratio_median: Option<f64>,
    pub ratio_min: Option<f64>,
    pub ratio_max: Option<f64>,
    pub gflops: f64,
    pub share_of_peak: f64,
}

/// The best large f32 gemm (1024×768 by 768×3072) of each side, in GFLOP/s.
#[derive(Debug, Clone, Copy)]
pub struct Peaks {
    pub ours: f64,
    /// PyTorch's, with `--compare`.
    pub reference: Option<f64>,
}

impl Peaks {
    /// What shares of peak are taken of: the faster of the two.
    pub fn best(&self) -> f64 {
        self.reference.map_or(self.ours, |r| r.max(self.ours))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub threads: usize,
    pub rounds: usize,
    /// Untimed rounds run first.
    pub warmup_rounds: usize,
    /// The best of both sides' large-gemm rates; `share_of_peak` is of this.
    pub peak_gflops: f64,
    /// Our gemm's large-gemm rate.
    pub gemm_peak_gflops: f64,
    /// Which gemm ran our products: the gemm crate, or MKL (`--features mkl`).
    pub gemm_backend: &'static str,
    /// PyTorch's large-gemm rate (MKL on x86 builds), with `--compare`.
    pub reference_peak_gflops: Option<f64>,
    pub rows: Vec<Row>,
    /// Max |ours − reference| over every scored token's log-probability.
    pub logprob_max_abs_diff: Option<f64>,
    /// Lowest cosine between our embedding and the reference's, over all texts.
    pub embedding_min_cosine: Option<f64>,
    /// Share of generated tokens equal to the reference's greedy tokens (position by position).
    pub greedy_token_agreement: Option<f64>,
    /// |ours − reference| of the first training step's loss (same data, B = 0 at the start).
    pub train_loss_abs_diff: Option<f64>,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn summarize(
    w: &Workloads,
    flops: &WorkloadFlops,
    peaks: Peaks,
    all_ours: &[RoundResult],
    all_theirs: &[RoundResult],
    threads: usize,
    warmup: usize,
) -> Summary {
    // Agreement from each side's first round: the reference keeps training one adapter from
    // round to round, so only its first round starts, as ours always does, from B = 0.
    let (a, b) = (&all_ours[0], all_theirs.first());
    let ours = &all_ours[warmup..];
    let theirs = all_theirs.get(warmup..).unwrap_or_default();
    let peak = peaks.best();
    let score_tokens: usize = w
        .score_prompts
        .iter()
        .zip(&w.score_outputs)
        .map(|(p, o)| p.len() + o.len())
        .sum();
    let train_tokens: usize = w
        .train_prompts
        .iter()
        .zip(&w.train_targets)
        .map(|(p, t)| p.len() + t.len())
        .sum();
    // (workload, unit, FLOPs, amount of work and seconds of one round).
    type Pick<'a> = Box<dyn Fn(&RoundResult) -> (f64, f64) + 'a>;
    let specs: [(Workload, &str, &str, f64, Pick); 4] = [
        (
            Workload::Scoring,
            "scoring",
            "tokens/s",
            flops.score,
            Box::new(|r| (score_tokens as f64, r.score_s)),
        ),
        (
            Workload::Generation,
            "generation",
            "tokens/s",
            flops.generate,
            Box::new(|r| (r.generated_tokens as f64, r.generate_s)),
        ),
        (
            Workload::Training,
            "lora training",
            "tokens/s",
            flops.train,
            Box::new(|r| (train_tokens as f64, r.train_s)),
        ),
        (
            Workload::Embeddings,
            "embeddings",
            "sentences/s",
            flops.embed,
            Box::new(|r| (r.embeddings.len() as f64, r.embed_s)),
        ),
    ];
    let rows = specs
        .iter()
        .filter(|(workload, ..)| w.runs(*workload))
        .map(|(_, name, unit, fl, pick)| {
            let rate = |r: &RoundResult| {
                let (amount, secs) = pick(r);
                amount / secs
            };
            let ours_rates: Vec<f64> = ours.iter().map(rate).collect();
            let ours_secs = median(ours.iter().map(|r| pick(r).1).collect());
            let gflops = fl / ours_secs / 1e9;
            let (reference, ratios) = if theirs.is_empty() {
                (None, Vec::new())
            } else {
                let ref_rates: Vec<f64> = theirs.iter().map(rate).collect();
                let ratios = ours_rates
                    .iter()
                    .zip(&ref_rates)
                    .map(|(a, b)| a / b)
                    .collect();
                (Some(median(ref_rates)), ratios)
            };
            Row {
                workload: name,
                unit,
                ours: median(ours_rates),
                reference,
                ratio_median: (!ratios.is_empty()).then(|| median(ratios.clone())),
                ratio_min: ratios.iter().copied().reduce(f64::min),
                ratio_max: ratios.iter().copied().reduce(f64::max),
                gflops,
                share_of_peak: gflops / peak,
            }
        })
        .collect();
    Summary {
        threads,
        rounds: ours.len(),
        warmup_rounds: warmup,
        peak_gflops: peak,
        gemm_peak_gflops: peaks.ours,
        gemm_backend: super::cpu_gemm::BACKEND,
        reference_peak_gflops: peaks.reference,
        rows,
        logprob_max_abs_diff: b.filter(|_| w.runs(Workload::Scoring)).map(|b| {
            a.score_logprobs
                .iter()
                .flatten()
                .zip(b.score_logprobs.iter().flatten())
                .map(|(x, y)| (x - y).abs() as f64)
                .fold(0.0, f64::max)
        }),
        embedding_min_cosine: b.filter(|_| w.runs(Workload::Embeddings)).map(|b| {
            a.embeddings
                .iter()
                .zip(&b.embeddings)
                .map(|(x, y)| cosine(x, y))
                .fold(1.0, f64::min)
        }),
        greedy_token_agreement: b.filter(|_| w.runs(Workload::Generation)).map(|b| {
            let (mut same, mut total) = (0usize, 0usize);
            for (x, y) in a.generated_ids.iter().zip(&b.generated_ids) {
                total += x.len().max(y.len());
                same += x.iter().zip(y).filter(|(p, q)| p == q).count();
            }
            same as f64 / total.max(1) as f64
        }),
        train_loss_abs_diff: b
            .filter(|_| w.runs(Workload::Training))
            .map(|b| (a.train_loss - b.train_loss).abs() as f64),
    }
}

fn cosine(x: &[f32], y: &[f32]) -> f64 {
    let dot: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| (*a as f64) * (*b as f64))
        .sum();
    let nx: f64 = x.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
    let ny: f64 = y.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
    dot / (nx * ny).max(f64::MIN_POSITIVE)
}

fn print_table(s: &Summary) {
    let sides = match s.reference_peak_gflops {
        Some(r) => format!(
            " (the faster of ours {:.0} and PyTorch's {r:.0})",
            s.gemm_peak_gflops
        ),
        None => String::new(),
    };
    println!(
        "f32 peak (1024×768·768×3072 gemm, {} threads, best before and after the rounds): {:.0} GFLOP/s{sides}; {} rounds \
         after {} untimed, medians; our products through {}",
        s.threads, s.peak_gflops, s.rounds, s.warmup_rounds, s.gemm_backend
    );
    println!(
        "{:<14} {:>12} {:>10} {:>10} {:>22} {:>8} {:>7}",
        "workload", "unit", "ours", "reference", "ratio med (min–max)", "GFLOP/s", "% peak"
    );
    for r in &s.rows {
        let reference = r.reference.map_or("-".into(), |v| format!("{v:.1}"));
        let ratio = match (r.ratio_median, r.ratio_min, r.ratio_max) {
            (Some(m), Some(lo), Some(hi)) => format!("{m:.2}× ({lo:.2}–{hi:.2})"),
            _ => "-".into(),
        };
        println!(
            "{:<14} {:>12} {:>10.1} {:>10} {:>22} {:>8.1} {:>6.1}%",
            r.workload,
            r.unit,
            r.ours,
            reference,
            ratio,
            r.gflops,
            100.0 * r.share_of_peak
        );
    }
    if let Some(d) = s.logprob_max_abs_diff {
        println!("scoring log-probs: max |ours − reference| = {d:.2e}");
    }
    if let Some(c) = s.embedding_min_cosine {
        println!("embeddings: min cosine(ours, reference) = {c:.6}");
    }
    if let Some(g) = s.greedy_token_agreement {
        println!("greedy tokens equal to the reference's: {:.1}%", 100.0 * g);
    }
    if let Some(l) = s.train_loss_abs_diff {
        println!("first training step loss: |ours − reference| = {l:.2e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_peak_are_taken_of_the_faster_gemm() {
        let peaks = |ours, reference| Peaks { ours, reference };
        assert_eq!(peaks(150.0, Some(240.0)).best(), 240.0);
        assert_eq!(peaks(215.0, Some(180.0)).best(), 215.0);
        assert_eq!(peaks(200.0, None).best(), 200.0);
    }
}
