//! Dense products of [`Matrix`] rows through the `gemm` crate (runtime-dispatched AVX-512
//! kernels). Every kernel that needs similarities goes through these two functions, so the
//! same pair of rows always gives the same bits whatever the thread count.
use gemm::Parallelism;
use rayon::prelude::*;

use crate::strategy::Matrix;

/// Rows per rayon task in [`matvec`]: large enough to amortise the task, small enough to
/// spread 100k rows over every core. Fixed, so results never depend on the thread count.
const MATVEC_ROWS_PER_TASK: usize = 4096;

/// `out = a · bᵀ` where `a` holds `m` rows and `b` holds `n` rows of length `d`, all
/// row-major and contiguous; `out` is `m × n` row-major.
///
/// # Panics
/// If a slice is shorter than its stated shape (a caller bug, never user input).
pub(crate) fn gemm_abt(
    a: &[f32],
    m: usize,
    b: &[f32],
    n: usize,
    d: usize,
    out: &mut [f32],
    parallelism: Parallelism,
) {
    assert!(
        a.len() >= m * d,
        "gemm_abt: lhs has {} values, needs {m}×{d}",
        a.len()
    );
    assert!(
        b.len() >= n * d,
        "gemm_abt: rhs has {} values, needs {n}×{d}",
        b.len()
    );
    assert_eq!(
        out.len(),
        m * n,
        "gemm_abt: output must hold {m}×{n} values"
    );
    if m == 0 || n == 0 {
        return;
    }
    if d == 0 {
        out.fill(0.0);
        return;
    }
    // SAFETY: the asserts above guarantee every pointer covers the strided extent gemm reads or
    // writes: lhs (i, p) at a[i·d + p], rhs (p, j) = b[j·d + p], dst (i, j) at out[i·n + j].
    // With read_dst = false gemm computes dst = beta · lhs · rhs and ignores alpha.
    unsafe {
        gemm::gemm(
            m,
            n,
            d,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            d as isize,
            b.as_ptr(),
            d as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `x · v` for every row of `x`, in parallel over fixed row chunks.
///
/// # Panics
/// If `v.len() != x.cols`.
pub fn matvec(x: &Matrix, v: &[f32]) -> Vec<f32> {
    assert_eq!(
        v.len(),
        x.cols,
        "matvec: vector has {} values, matrix rows have {}",
        v.len(),
        x.cols
    );
    let mut out = vec![0.0f32; x.rows];
    if x.cols == 0 {
        return out;
    }
    out.par_chunks_mut(MATVEC_ROWS_PER_TASK)
        .enumerate()
        .for_each(|(chunk, dst)| {
            let first = chunk * MATVEC_ROWS_PER_TASK;
            let rows = &x.data[first * x.cols..(first + dst.len()) * x.cols];
            gemm_abt(rows, dst.len(), v, 1, x.cols, dst, Parallelism::None);
        });
    out
}

/// Sum of the rows of `x` (f64 accumulation), as f32.
pub fn row_sum(x: &Matrix) -> Vec<f32> {
    let mut sum = vec![0.0f64; x.cols];
    for i in 0..x.rows {
        for (s, &v) in sum.iter_mut().zip(x.row(i)) {
            *s += f64::from(v);
        }
    }
    sum.into_iter().map(|s| s as f32).collect()
}

/// Squared L2 norm of every row.
pub fn row_norms_squared(x: &Matrix) -> Vec<f32> {
    (0..x.rows)
        .map(|i| x.row(i).iter().map(|v| v * v).sum())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_abt(a: &Matrix, b: &Matrix) -> Vec<f32> {
        let mut out = Vec::new();
        for i in 0..a.rows {
            for j in 0..b.rows {
                out.push(a.row(i).iter().zip(b.row(j)).map(|(x, y)| x * y).sum());
            }
        }
        out
    }

    fn counting(rows: usize, cols: usize, offset: f32) -> Matrix {
        let data = (0..rows * cols)
            .map(|v| ((v as f32 + offset) * 0.37).sin())
            .collect();
        Matrix::new(rows, cols, data).unwrap()
    }

    #[test]
    fn gemm_abt_matches_naive_product() {
        let a = counting(7, 5, 0.0);
        let b = counting(3, 5, 11.0);
        let mut out = vec![0.0; 21];
        gemm_abt(&a.data, 7, &b.data, 3, 5, &mut out, Parallelism::None);
        for (x, y) in out.iter().zip(naive_abt(&a, &b)) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }

    #[test]
    fn matvec_spans_several_chunks() {
        let x = counting(MATVEC_ROWS_PER_TASK * 2 + 3, 4, 0.5);
        let v = vec![1.0, -2.0, 0.5, 3.0];
        let got = matvec(&x, &v);
        assert_eq!(got.len(), x.rows);
        for i in [0, 1, MATVEC_ROWS_PER_TASK, x.rows - 1] {
            let want: f32 = x.row(i).iter().zip(&v).map(|(a, b)| a * b).sum();
            assert!((got[i] - want).abs() < 1e-5);
        }
    }
}
