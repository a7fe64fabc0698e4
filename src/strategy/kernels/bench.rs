//! `lab bench-kernels`: the scale benchmark of the selection kernels on a synthetic pool
//! (100,000 clustered 384-d embeddings by default, k = 1,000).
//!
//! Peak memory (VmHWM) cannot be reset inside a process, so the parent runs each kernel in a
//! child process of the same binary (`--only NAME`) and collects one `RESULT` line from each.
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use super::dense::gemm_abt;
use super::synthetic::clustered_embeddings;
use super::{
    facility_location_greedy, graph_cut_greedy, idds_greedy, k_center_greedy, kmeans,
    nearest_to_centroids, FacilityLocationOptions,
};
use crate::strategy::Matrix;

/// Limits the issue sets for every kernel at the default size.
const TARGET_SECONDS: f64 = 60.0;
const TARGET_PEAK_BYTES: u64 = 2 << 30;

#[derive(Args, Debug, Clone)]
pub struct BenchKernelsArgs {
    /// Pool size.
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Embedding width.
    #[arg(long, default_value_t = 384)]
    pub dim: usize,
    /// Items each kernel selects.
    #[arg(long, default_value_t = 1_000)]
    pub k: usize,
    /// Planted clusters in the synthetic pool.
    #[arg(long, default_value_t = 50)]
    pub clusters: usize,
    /// Seed of the synthetic pool and of k-means++.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Lloyd iterations at most for k-means.
    #[arg(long, default_value_t = 20)]
    pub kmeans_iter: usize,
    /// Run a single kernel in this process and print its RESULT line (the parent run uses
    /// this; `data` only builds the pool, `matmul` compares gemm with candle's matmul).
    #[arg(long, value_enum)]
    pub only: Option<Kernel>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Data,
    Idds,
    Coreset,
    Kmeans,
    GraphCut,
    FacilityLocation,
    Matmul,
}

impl Kernel {
    /// The `--only` spelling.
    fn name(self) -> &'static str {
        match self {
            Kernel::Data => "data",
            Kernel::Idds => "idds",
            Kernel::Coreset => "coreset",
            Kernel::Kmeans => "kmeans",
            Kernel::GraphCut => "graph-cut",
            Kernel::FacilityLocation => "facility-location",
            Kernel::Matmul => "matmul",
        }
    }
}

const SELECTIONS: [Kernel; 5] = [
    Kernel::Idds,
    Kernel::Coreset,
    Kernel::Kmeans,
    Kernel::GraphCut,
    Kernel::FacilityLocation,
];

pub fn run(args: &BenchKernelsArgs) -> Result<()> {
    check_args(args, mem_total_bytes())?;
    match args.only {
        Some(kernel) => run_child(args, kernel),
        None => run_parent(args),
    }
}

/// Refuse sizes that select nothing or cannot be held: `--k 0` made k-means panic, and a pool
/// larger than memory would only be killed by the OS after a long wait.
fn check_args(args: &BenchKernelsArgs, mem_total: Option<u64>) -> Result<()> {
    for (flag, value) in [
        ("--n", args.n),
        ("--dim", args.dim),
        ("--k", args.k),
        ("--clusters", args.clusters),
    ] {
        if value == 0 {
            bail!("{flag} 0 leaves nothing to benchmark: pass 1 or more");
        }
    }
    // The pool plus the coreset's 1% labeled rows, f32.
    let bytes = args
        .n
        .checked_add((args.n / 100).max(1))
        .and_then(|rows| rows.checked_mul(args.dim))
        .and_then(|values| values.checked_mul(4))
        .map(|b| b as u64);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    match (bytes, mem_total) {
        (None, _) => bail!(
            "--n {} × --dim {} is too large to hold in memory; use smaller sizes",
            args.n,
            args.dim
        ),
        (Some(b), Some(total)) if b > total => bail!(
            "--n {} × --dim {}: the pool alone needs {:.1} GiB, more than this machine's \
             {:.1} GiB of memory; use a smaller --n or --dim",
            args.n,
            args.dim,
            gib(b),
            gib(total)
        ),
        _ => {}
    }
    if args.k > args.n && args.only.is_none() {
        eprintln!(
            "note: --k {} is more than --n {}: every kernel picks the whole pool",
            args.k, args.n
        );
    }
    Ok(())
}

/// MemTotal of /proc/meminfo in bytes; `None` where it cannot be read.
fn mem_total_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

fn run_parent(args: &BenchKernelsArgs) -> Result<()> {
    // /proc/self/exe is this very binary even if a rebuild has since replaced the file on disk.
    let own = std::path::PathBuf::from("/proc/self/exe");
    let exe = if own.exists() {
        own
    } else {
        std::env::current_exe().context("cannot locate the lab binary to re-run it")?
    };
    println!(
        "bench-kernels: n = {}, dim = {}, k = {}, clusters = {}, seed = {}, {} rayon threads",
        args.n,
        args.dim,
        args.k,
        args.clusters,
        args.seed,
        rayon::current_num_threads()
    );
    println!(
        "{:<18} {:>8} {:>8} {:>9} {:>7}  within 60 s / 2 GiB",
        "kernel", "seconds", "cpu s", "peak MiB", "picked"
    );
    let mut all_ok = true;
    for kernel in std::iter::once(Kernel::Data).chain(SELECTIONS) {
        let result = run_in_child(&exe, args, kernel)?;
        let peak = field(&result, "peak_kib").and_then(|v| v.parse::<u64>().ok());
        let seconds: f64 = field(&result, "seconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        let verdict = if kernel == Kernel::Data {
            "(pool only: the baseline every row includes)".to_string()
        } else {
            let fast = seconds <= TARGET_SECONDS;
            let small = peak.is_some_and(|p| p * 1024 <= TARGET_PEAK_BYTES);
            all_ok &= fast && small;
            match (fast, small) {
                (true, true) => "ok".to_string(),
                _ => format!(
                    "OVER{}{}",
                    if fast { "" } else { " time" },
                    if small { "" } else { " memory" }
                ),
            }
        };
        println!(
            "{:<18} {:>8.2} {:>8} {:>9} {:>7}  {}",
            kernel.name(),
            seconds,
            field(&result, "cpu_seconds").unwrap_or("n/a"),
            peak.map_or("n/a".to_string(), |p| format!("{:.0}", p as f64 / 1024.0)),
            field(&result, "picked").unwrap_or("-"),
            verdict
        );
    }
    let matmul = run_in_child(&exe, args, Kernel::Matmul)?;
    for (key, value) in &matmul {
        if let Some(backend_shape) = key.strip_prefix("gflops_") {
            println!("matmul {backend_shape}: {value} GFLOP/s");
        }
    }
    if !all_ok {
        println!("some kernels missed the 60 s / 2 GiB target");
    }
    Ok(())
}

/// Run `lab bench-kernels --only KERNEL` with the same sizes; parse its RESULT line.
fn run_in_child(
    exe: &std::path::Path,
    args: &BenchKernelsArgs,
    kernel: Kernel,
) -> Result<Vec<(String, String)>> {
    let output = Command::new(exe)
        .arg("bench-kernels")
        .args(["--only", kernel.name()])
        .args(["--n", &args.n.to_string()])
        .args(["--dim", &args.dim.to_string()])
        .args(["--k", &args.k.to_string()])
        .args(["--clusters", &args.clusters.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--kmeans-iter", &args.kmeans_iter.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| {
            format!(
                "cannot start {} for kernel {}",
                exe.display(),
                kernel.name()
            )
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "kernel {} failed ({}): {stdout}",
            kernel.name(),
            output.status
        );
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| format!("kernel {} printed no RESULT line: {stdout}", kernel.name()))?;
    Ok(line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn run_child(args: &BenchKernelsArgs, kernel: Kernel) -> Result<()> {
    // The coreset's labeled set: 1% more rows from the same clusters.
    let labeled_rows = (args.n / 100).max(1);
    let mut pool = clustered_embeddings(
        args.n + labeled_rows,
        args.dim,
        args.clusters,
        0.3,
        args.seed,
    )
    .embeddings;
    let labeled = pool.take_rows(&(args.n..args.n + labeled_rows).collect::<Vec<_>>());
    pool.rows = args.n;
    pool.data.truncate(args.n * args.dim);
    let none = Matrix::zeros(0, args.dim);

    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let picks: Vec<usize> = match kernel {
        Kernel::Data => Vec::new(),
        Kernel::Idds => idds_greedy(&pool, &none, args.k, 0.667),
        Kernel::Coreset => k_center_greedy(&pool, &labeled, args.k),
        Kernel::Kmeans => {
            let clustering = kmeans(&pool, args.k, args.seed, args.kmeans_iter);
            nearest_to_centroids(&pool, &clustering)
        }
        Kernel::GraphCut => graph_cut_greedy(&pool, args.k, 0.5),
        Kernel::FacilityLocation => {
            let opts = FacilityLocationOptions {
                exact_max_items: 0,
                ..Default::default()
            };
            facility_location_greedy(&pool, &none, args.k, &opts)
        }
        Kernel::Matmul => return compare_matmul(&pool),
    };
    let seconds = start.elapsed().as_secs_f64();
    let cpu = match (cpu_start, cpu_seconds()) {
        (Some(a), Some(b)) => format!("{:.3}", b - a),
        _ => "n/a".to_string(),
    };
    let mut distinct = picks.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != picks.len() || distinct.last().is_some_and(|&p| p >= args.n) {
        bail!(
            "kernel {} returned duplicate or out-of-pool positions",
            kernel.name()
        );
    }
    println!(
        "RESULT kernel={} seconds={seconds:.3} cpu_seconds={cpu} peak_kib={} picked={}",
        kernel.name(),
        peak_kib().map_or("n/a".to_string(), |p| p.to_string()),
        picks.len()
    );
    Ok(())
}

/// gemm called directly against candle's `Tensor::matmul` on `pool · blockᵀ` blocks: the
/// product shape every similarity kernel runs.
fn compare_matmul(pool: &Matrix) -> Result<()> {
    use candle_core::{Device, Tensor};
    let mut fields = Vec::new();
    // A pool smaller than a block would time the same product twice.
    let mut blocks: Vec<usize> = [256usize, 1024].map(|b| b.min(pool.rows)).to_vec();
    blocks.dedup();
    for block in blocks {
        let rhs = pool.take_rows(&(0..block).collect::<Vec<_>>());
        let flops = 2.0 * pool.rows as f64 * block as f64 * pool.cols as f64;
        let mut out = vec![0.0f32; pool.rows * block];
        let gemm_seconds = best_of(3, || {
            gemm_abt(
                &pool.data,
                pool.rows,
                &rhs.data,
                block,
                pool.cols,
                &mut out,
                gemm::Parallelism::Rayon(0),
            )
        });
        drop(out);
        let a = Tensor::from_slice(&pool.data, (pool.rows, pool.cols), &Device::Cpu)?;
        let b = Tensor::from_slice(&rhs.data, (block, pool.cols), &Device::Cpu)?.t()?;
        let mut failure = None;
        let candle_seconds = best_of(3, || {
            if let Err(e) = a.matmul(&b) {
                failure = Some(e);
            }
        });
        if let Some(e) = failure {
            return Err(e).context("candle matmul failed");
        }
        fields.push(format!(
            "gflops_gemm_{}x{}x{block}={:.0} gflops_candle_{}x{}x{block}={:.0}",
            pool.rows,
            pool.cols,
            flops / gemm_seconds / 1e9,
            pool.rows,
            pool.cols,
            flops / candle_seconds / 1e9
        ));
    }
    println!("RESULT kernel=matmul {}", fields.join(" "));
    Ok(())
}

fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// User + system CPU time of this process so far; `None` where /proc is unavailable. Shows the
/// work done apart from contention: on an idle machine it is about wall time × threads.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_seconds(&stat)
}

/// Fields 14 and 15 of /proc/PID/stat (utime, stime) count USER_HZ ticks, 100 per second on
/// every Linux build. The command name (field 2) may hold spaces, so count after its ')'.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident set of this process (VmHWM), in KiB; `None` where /proc is unavailable.
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vmhwm(&status)
}

fn parse_vmhwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vmhwm_from_a_status_file() {
        let status = "Name:\tlab\nVmPeak:\t  999 kB\nVmHWM:\t  123456 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vmhwm(status), Some(123456));
        assert_eq!(parse_vmhwm("Name:\tlab\n"), None);
    }

    #[test]
    fn reads_cpu_time_from_a_stat_line() {
        // utime = 250 ticks, stime = 50 ticks; the name holds a space and a ')'.
        let stat = "42 (my lab) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert_eq!(parse_cpu_seconds("garbage"), None);
    }

    fn sizes(n: usize, dim: usize, k: usize) -> BenchKernelsArgs {
        BenchKernelsArgs {
            n,
            dim,
            k,
            clusters: 5,
            seed: 0,
            kmeans_iter: 5,
            only: Some(Kernel::Kmeans),
        }
    }

    /// `--k 0` made the k-means child panic ("the clustering covers 0 rows").
    #[test]
    fn sizes_that_select_nothing_or_do_not_fit_are_refused_naming_the_flag() {
        let err = run(&sizes(50, 4, 0)).unwrap_err().to_string();
        assert!(err.starts_with("--k 0 leaves nothing"), "{err}");
        let err = check_args(&sizes(usize::MAX / 2, 384, 10), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("too large to hold in memory"), "{err}");
        let err = check_args(&sizes(1_000_000, 384, 10), Some(1 << 30))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the pool alone needs 1.4 GiB, more than this machine's 1.0 GiB"),
            "{err}"
        );
        assert!(check_args(&sizes(1_000, 384, 10), Some(1 << 30)).is_ok());
        assert!(run(&sizes(50, 4, 3)).is_ok());
    }

    #[test]
    fn kernel_names_round_trip_through_the_command_line() {
        for k in std::iter::once(Kernel::Data)
            .chain(SELECTIONS)
            .chain([Kernel::Matmul])
        {
            assert_eq!(Kernel::from_str(k.name(), false).unwrap(), k);
        }
    }
}
