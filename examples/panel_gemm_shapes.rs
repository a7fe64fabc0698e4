//! Side by side, one run: the products training runs, through the gemm crate (which packs the
//! weight at every call) and over panels packed once (`models::panel_gemm`), both on as many
//! threads as `lab` uses (the machine's cores; `RAYON_NUM_THREADS` overrides).
//!
//!     cargo run --release --example panel_gemm_shapes
//!
//! Each shape multiplies one activation matrix by 40 different weights, so the weights come
//! from memory as they do in a training step; best of 7 rounds, accumulating into the output
//! as the LoRA layers do.
use std::time::Instant;

use atgen_lab::models::cpu_gemm::{self, Mat};
use atgen_lab::models::panel_gemm::{self, Panels};

/// (rows, columns, inner): SmolLM2-135M's products at the quick start's ~140 rows and at the
/// benchmark's 2,048, and a wider model's MLP (Qwen2.5-0.5B's 896 × 4,864).
const SHAPES: [(usize, usize, usize); 10] = [
    (140, 1536, 576),
    (140, 576, 1536),
    (140, 576, 576),
    (140, 192, 576),
    (296, 1536, 576),
    (592, 1536, 576),
    (2048, 1536, 576),
    (2048, 576, 1536),
    (140, 4864, 896),
    (140, 896, 4864),
];
const WEIGHTS: usize = 40;
const ROUNDS: usize = 7;

fn main() -> anyhow::Result<()> {
    if !panel_gemm::available() {
        anyhow::bail!("this CPU has no AVX-512F: panel products do not run here");
    }
    let threads = candle_core::utils::get_num_threads();
    println!("{threads} threads; GFLOP/s, best of {ROUNDS} rounds of {WEIGHTS} weights");
    println!(
        "{:>5} {:>5} {:>5}  {:>10} {:>8} {:>6}",
        "m", "n", "k", "gemm crate", "panels", "ratio"
    );
    // On a pool thread, as `lab` runs its work (src/util/worker.rs).
    atgen_lab::util::worker::on_rayon_worker(|| -> anyhow::Result<()> {
        for (m, n, k) in SHAPES {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
                .collect();
            let weights: Vec<Vec<f32>> = (0..WEIGHTS)
                .map(|s| {
                    (0..k * n)
                        .map(|i| ((i * 31 + s) % 997) as f32 / 997.0)
                        .collect()
                })
                .collect();
            let panels: Vec<Panels> = weights
                .iter()
                .map(|w| Panels::from_row_major(w, k, n))
                .collect();
            let mut dst = vec![0f32; m * n];
            let flops = 2.0 * (m * n * k * WEIGHTS) as f64;
            let (mut crate_best, mut panel_best) = (f64::MAX, f64::MAX);
            for _ in 0..ROUNDS {
                let start = Instant::now();
                for w in &weights {
                    let (a, b) = (Mat::row_major(&x, m, k)?, Mat::row_major(w, k, n)?);
                    cpu_gemm::add_product(&mut dst, a, b, 1.0)?;
                }
                crate_best = crate_best.min(start.elapsed().as_secs_f64());
                let start = Instant::now();
                for p in &panels {
                    panel_gemm::product(
                        &mut dst,
                        n,
                        true,
                        Mat::row_major(&x, m, k)?,
                        p,
                        1.0,
                        threads,
                    )?;
                }
                panel_best = panel_best.min(start.elapsed().as_secs_f64());
            }
            println!(
                "{m:>5} {n:>5} {k:>5}  {:>10.1} {:>8.1} {:>5.2}×",
                flops / crate_best / 1e9,
                flops / panel_best / 1e9,
                crate_best / panel_best
            );
        }
        Ok(())
    })
}
