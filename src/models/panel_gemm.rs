//! Products `x [m, k] @ b [k, n]` with `b` (a frozen weight) packed once into the panels the
//! gemm crate's AVX-512 micro-kernel reads, so no product packs it again.
//!
//! The gemm crate computes a row-major product as its transpose, `bᵀ xᵀ`, and before
//! multiplying it copies `bᵀ` into 64-row panels, one per call. In training every frozen weight
//! goes through two such products per batch (the forward `x w` and the input gradient `g wᵀ`),
//! and with the few hundred rows of a training batch that copy is a large share of the work:
//! 8.4% of all samples in a perf profile of the quick start's training, against 60% in the
//! micro-kernels themselves. Here the panels are made once per training call (kept by
//! [`training_weights`](super::training_weights)) and every product runs the same
//! micro-kernels straight over them.
//!
//! The work is split into jobs of one panel × six rows, a contiguous range of jobs per
//! thread, so that each thread reuses a panel across its rows while it is in L2 and the
//! threads get equal shares whatever the number of panels.
use rayon::prelude::*;

use super::cpu_gemm::{Mat, SharedDst};

/// Columns of `b` per panel: the micro-kernel's rows (4 vectors of 16 f32).
pub const PANEL: usize = 64;
/// Rows of `x` per micro-kernel call (its columns).
const NR: usize = 6;
/// The longest stretch of the inner dimension one micro-kernel call covers: 2,048 × 64 f32
/// is 512 KiB of panel, which a job reads once per row of micro-kernel calls and which must
/// stay in L2 between them (1 MiB a core on Zen 4, 1–2 MiB on recent Intel). Longer inner
/// dimensions (the MLP's down projection of models wider than SmolLM2) go in blocks.
const MAX_DEPTH: usize = 2048;

/// A `[k, n]` matrix as `⌈n / 64⌉` panels of `k × 64` values, zero-padded past column `n`.
#[derive(Clone, Debug)]
pub struct Panels {
    k: usize,
    n: usize,
    values: Vec<f32>,
}

impl Panels {
    /// The panels of a row-major `b [k, n]`.
    pub fn from_row_major(b: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(b.len(), k * n, "panels: {} values for {k} × {n}", b.len());
        Self::build(k, n, |first, width, panel| {
            for (row, out) in panel.chunks_exact_mut(PANEL).enumerate() {
                out[..width].copy_from_slice(&b[row * n + first..row * n + first + width]);
            }
        })
    }

    /// The panels of `wᵀ [k, n]` for a row-major `w [n, k]` (the input gradient's operand).
    pub fn from_transposed(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), k * n, "panels: {} values for {n} × {k}", w.len());
        Self::build(k, n, |first, width, panel| {
            // Column c of the panel is row first + c of w, read contiguously.
            for c in 0..width {
                let src = &w[(first + c) * k..(first + c + 1) * k];
                for (row, &v) in src.iter().enumerate() {
                    panel[row * PANEL + c] = v;
                }
            }
        })
    }

    /// Zeroed panels, each filled in parallel by `fill(first column, width, panel)`.
    fn build(k: usize, n: usize, fill: impl Fn(usize, usize, &mut [f32]) + Sync) -> Self {
        let mut values = vec![0f32; n.div_ceil(PANEL) * k * PANEL];
        values
            .par_chunks_mut((k * PANEL).max(1))
            .enumerate()
            .for_each(|(p, panel)| {
                let first = p * PANEL;
                fill(first, PANEL.min(n - first), panel)
            });
        Self { k, n, values }
    }

    pub fn rows(&self) -> usize {
        self.k
    }

    pub fn cols(&self) -> usize {
        self.n
    }

    fn panel(&self, p: usize) -> &[f32] {
        &self.values[p * self.k * PANEL..(p + 1) * self.k * PANEL]
    }
}

/// Whether this CPU runs the micro-kernels (AVX-512F).
pub fn available() -> bool {
    super::skinny_matmul::available()
}

/// `dst = β·x·b`, or `dst += β·x·b` when `accumulate`, for `x [m, k]` and a row-major
/// `dst [m, n]` with rows `dst_rs` apart, on up to `threads` threads of rayon's pool. The
/// caller checks [`available`].
pub fn product(
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    x: Mat,
    b: &Panels,
    beta: f32,
    threads: usize,
) -> candle_core::Result<()> {
    // SAFETY: a slice is valid for reads and writes of all its values.
    unsafe {
        product_into(
            dst.as_mut_ptr(),
            dst.len(),
            dst_rs,
            accumulate,
            x,
            b,
            beta,
            threads,
        )
    }
}

/// [`product`] into `dst_len` values at `dst`, which need not be initialised unless
/// `accumulate`: a fresh product is written into spare capacity, never filled first.
///
/// # Safety
/// `dst` must be valid for writes of `dst_len` values, and for reads of them when
/// `accumulate`. Without `accumulate` every value of the `m × n` block is written.
#[allow(clippy::too_many_arguments)]
pub unsafe fn product_into(
    dst: *mut f32,
    dst_len: usize,
    dst_rs: usize,
    accumulate: bool,
    x: Mat,
    b: &Panels,
    beta: f32,
    threads: usize,
) -> candle_core::Result<()> {
    let (m, k, n) = (x.rows(), b.k, b.n);
    if x.cols() != k {
        candle_core::bail!("panel gemm: x [{m}, {}] times [{k}, {n}]", x.cols());
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if dst_rs < n || (m - 1) * dst_rs + n > dst_len {
        candle_core::bail!("panel gemm: dst of {dst_len} values for {m} × {n} at stride {dst_rs}");
    }
    // The micro-kernel reads each row of x as contiguous values (a rare strided x is copied).
    let copied;
    let (x, x_rs) = match x.rows_in_place() {
        Some(rows) => rows,
        None => {
            copied = (0..m * k)
                .map(|i| x.get(i / k, i % k))
                .collect::<Vec<f32>>();
            (copied.as_slice(), k)
        }
    };
    if !available() {
        candle_core::bail!("panel gemm: this CPU has no AVX-512F");
    }
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                // SAFETY: row·dst_rs + n ≤ dst_len (checked above).
                unsafe { std::ptr::write_bytes(dst.add(row * dst_rs), 0, n) };
            }
        }
        return Ok(());
    }
    // A job is one micro-kernel call's rows (6) against one panel: many small jobs, so the
    // threads' shares are equal even with few panels (192 columns are 3).
    let panels = n.div_ceil(PANEL);
    let groups = m.div_ceil(NR);
    let jobs = panels * groups;
    let threads = threads.clamp(1, jobs);
    // Jobs write disjoint (panel, row group) blocks of dst.
    let out = SharedDst(dst);
    // Equal blocks of the inner dimension, none longer than MAX_DEPTH.
    let depth = k.div_ceil(k.div_ceil(MAX_DEPTH));
    let run = |range: std::ops::Range<usize>| {
        // A thread's jobs are contiguous in panel-major order: it takes its part of each
        // panel in turn, and within a panel each block of the inner dimension across all of
        // its rows while that block is in L2.
        let mut job = range.start;
        while job < range.end {
            let p = job / groups;
            let end = ((p + 1) * groups).min(range.end);
            let cols = PANEL.min(n - p * PANEL);
            let panel = b.panel(p);
            for start in (0..k).step_by(depth) {
                let len = depth.min(k - start);
                // Blocks after the first add to what the earlier ones wrote.
                let add = accumulate || start > 0;
                for g in job % groups..job % groups + (end - job) {
                    let row = g * NR;
                    let rows = NR.min(m - row);
                    // SAFETY: AVX-512F was checked; the panel holds k × 64 values, this block
                    // its rows start..start + len; rows row..row + rows of x (values start..
                    // start + len of each) and of dst's columns p·64..p·64 + cols were
                    // bounds-checked above, and this job alone writes them.
                    unsafe {
                        micro_kernel(
                            cols,
                            rows,
                            len,
                            out.at(row * dst_rs + p * PANEL),
                            dst_rs,
                            panel.as_ptr().add(start * PANEL),
                            x.as_ptr().add(row * x_rs + start),
                            x_rs,
                            beta,
                            add,
                        )
                    };
                }
            }
            job = end;
        }
    };
    if threads == 1 {
        run(0..jobs);
    } else {
        (0..threads).into_par_iter().for_each(|t| {
            run(jobs * t / threads..jobs * (t + 1) / threads);
        });
    }
    Ok(())
}

/// One `cols × rows` block of `dstᵀ` (`cols` ≤ 64 panel columns, `rows` ≤ 6 rows of x).
///
/// # Safety
/// AVX-512F; `panel` holds `k × 64` values; `x` reaches `rows` rows of `k` at stride `x_rs`;
/// `dst` reaches `rows` rows of `cols` at stride `dst_rs`.
#[allow(clippy::too_many_arguments)]
unsafe fn micro_kernel(
    cols: usize,
    rows: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    panel: *const f32,
    x: *const f32,
    x_rs: usize,
    beta: f32,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        use gemm_f32::microkernel::avx512f::f32 as kernels;
        // The transposed problem: dstᵀ [n, m] (column-major in the kernel's terms) =
        // panelᵀ-rows × xᵀ. Kernel rows are panel columns (16 per vector), kernel columns are
        // rows of x.
        let vectors = cols.div_ceil(16);
        let kernel = kernels::UKR[vectors - 1][rows - 1];
        kernel(
            cols,
            rows,
            k,
            dst,
            panel,
            x,
            dst_rs as isize,
            1,
            PANEL as isize,
            1,
            x_rs as isize,
            1.0,
            beta,
            u8::from(accumulate),
            false,
            false,
            false,
            panel,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (cols, rows, k, dst, dst_rs, panel, x, x_rs, beta, accumulate);
        unreachable!("panel gemm runs only where `available` is true");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], m: usize, k: usize, b: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|t| x[i * k + t] * b[t * n + j]).sum();
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn products_over_panels_match_a_plain_product_for_ragged_shapes() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        // Rows not a multiple of 6 or of a job; columns with a partial panel (100 = 64 + 36,
        // 36 not a multiple of 16) and a single narrow one.
        // 4,100 deep: three blocks of the inner dimension.
        for &(m, k, n) in &[
            (1, 3, 5),
            (7, 16, 100),
            (53, 40, 64),
            (97, 33, 130),
            (140, 24, 192),
            (13, 4100, 70),
        ] {
            let x = values(m * k, 1);
            let b = values(k * n, 2);
            let want = reference(&x, m, k, &b, n);
            let panels = Panels::from_row_major(&b, k, n);
            for threads in [1, 2, 3] {
                let mut got = vec![f32::NAN; m * n];
                product(
                    &mut got,
                    n,
                    false,
                    Mat::row_major(&x, m, k).unwrap(),
                    &panels,
                    1.0,
                    threads,
                )
                .unwrap();
                for (a, w) in got.iter().zip(&want) {
                    let tolerance = 1e-5 * (k as f32).max(10.0);
                    assert!(
                        (a - w).abs() < tolerance,
                        "{m}×{k}×{n}, {threads} threads: {a} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn accumulates_scaled_products_into_strided_rows() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let (m, k, n, stride) = (13, 20, 70, 75);
        let x = values(m * k, 3);
        let b = values(k * n, 4);
        let want = reference(&x, m, k, &b, n);
        let mut dst = vec![0.5f32; m * stride];
        let xm = Mat::row_major(&x, m, k).unwrap();
        product(
            &mut dst,
            stride,
            true,
            xm,
            &Panels::from_row_major(&b, k, n),
            2.0,
            2,
        )
        .unwrap();
        for i in 0..m {
            for j in 0..stride {
                let got = dst[i * stride + j];
                let expected = if j < n {
                    0.5 + 2.0 * want[i * n + j]
                } else {
                    0.5
                };
                assert!(
                    (got - expected).abs() < 1e-4,
                    "({i}, {j}): {got} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn reads_x_through_a_transposed_view() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let (m, k, n) = (11, 11, 20);
        let stored = values(k * m, 6);
        let x: Vec<f32> = (0..m * k).map(|i| stored[(i % k) * m + i / k]).collect();
        let b = values(k * n, 7);
        let want = reference(&x, m, k, &b, n);
        let view = Mat::row_major(&stored, k, m).unwrap().t();
        let mut got = vec![0f32; m * n];
        product(
            &mut got,
            n,
            false,
            view,
            &Panels::from_row_major(&b, k, n),
            1.0,
            2,
        )
        .unwrap();
        for (a, w) in got.iter().zip(&want) {
            assert!((a - w).abs() < 1e-4, "{a} vs {w}");
        }
    }

    #[test]
    fn panels_of_a_transpose_equal_panels_of_the_transposed_matrix() {
        let (n, k) = (70, 9);
        let w = values(n * k, 5);
        let mut wt = vec![0f32; k * n];
        for r in 0..n {
            for c in 0..k {
                wt[c * n + r] = w[r * k + c];
            }
        }
        let a = Panels::from_transposed(&w, n, k);
        let b = Panels::from_row_major(&wt, k, n);
        assert_eq!((a.rows(), a.cols()), (k, n));
        assert_eq!(a.values, b.values);
    }
}
