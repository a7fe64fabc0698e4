//! `lab bench-host`'s results: rates, ratios to the reference, shares of the peak and numeric
//! agreement, from every round of both sides; printed as a table or JSON.
use serde::Serialize;

use super::bench_host::{RoundResult, Workload, WorkloadFlops, Workloads};

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

/// The best large f32 gemm (`peak_shape`) of each side, in GFLOP/s.
#[derive(Debug, Clone, Copy)]
pub struct Peaks {
    /// (m, k, n) of the timed product.
    pub shape: (usize, usize, usize),
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
    /// Where both sides ran: `cpu` or the GPU, e.g. `cuda:0`.
    pub device: String,
    /// (m, k, n) of the peak-measuring gemm.
    pub peak_shape: (usize, usize, usize),
    pub threads: usize,
    pub rounds: usize,
    /// Untimed rounds run first.
    pub warmup_rounds: usize,
    /// The best of both sides' large-gemm rates; `share_of_peak` is of this.
    pub peak_gflops: f64,
    /// Our gemm's large-gemm rate.
    pub gemm_peak_gflops: f64,
    /// Which gemm ran our products: the gemm crate, MKL (`--features mkl`) or cuBLAS (GPU).
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

/// Where and how the rounds ran.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// `cpu` or the GPU, e.g. `cuda:0`.
    pub device: String,
    pub threads: usize,
    /// Untimed rounds at the start of each side's results.
    pub warmup: usize,
    /// Which gemm ran our products.
    pub gemm_backend: &'static str,
}

pub fn summarize(
    w: &Workloads,
    flops: &WorkloadFlops,
    peaks: Peaks,
    facts: RunFacts,
    all_ours: &[RoundResult],
    all_theirs: &[RoundResult],
) -> Summary {
    let warmup = facts.warmup;
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
        device: facts.device,
        peak_shape: peaks.shape,
        threads: facts.threads,
        rounds: ours.len(),
        warmup_rounds: warmup,
        peak_gflops: peak,
        gemm_peak_gflops: peaks.ours,
        gemm_backend: facts.gemm_backend,
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

pub fn print_table(s: &Summary) {
    let sides = match s.reference_peak_gflops {
        Some(r) => format!(
            " (the faster of ours {:.0} and PyTorch's {r:.0})",
            s.gemm_peak_gflops
        ),
        None => String::new(),
    };
    let (m, k, n) = s.peak_shape;
    println!(
        "device {}; f32 peak ({m}×{k}·{k}×{n} gemm, {} threads, best before and after the rounds): {:.0} GFLOP/s{sides}; \
         {} rounds after {} untimed, medians; our products through {}",
        s.device, s.threads, s.peak_gflops, s.rounds, s.warmup_rounds, s.gemm_backend
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
        let peaks = |ours, reference| Peaks {
            shape: (1, 1, 1),
            ours,
            reference,
        };
        assert_eq!(peaks(150.0, Some(240.0)).best(), 240.0);
        assert_eq!(peaks(215.0, Some(180.0)).best(), 215.0);
        assert_eq!(peaks(200.0, None).best(), 200.0);
    }
}
