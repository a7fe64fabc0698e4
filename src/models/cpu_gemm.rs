//! f32 products straight through the gemm crate, for the fused CPU ops.
//!
//! candle's matmul zero-fills every output buffer before gemm overwrites it, and adding a
//! second product (a LoRA term, a second gradient path) costs another buffer and another pass
//! over the output. Here a fresh product is written into an unfilled buffer, and
//! `dst += β·a·b` accumulates in place (gemm reads the destination as it goes).
use candle_core::{CpuStorage, Layout, Result, Storage};
use gemm::Parallelism;

/// The library that runs every f32 product (ours here, and candle's matmul).
pub const BACKEND: &str = if cfg!(feature = "mkl") {
    "MKL (--features mkl)"
} else {
    "the gemm crate"
};

/// A read-only matrix view: `rows × cols` values at `row_stride`, `col_stride` apart.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A contiguous row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        if data.len() < rows * cols {
            candle_core::bail!("gemm: {} values for a {rows} × {cols} matrix", data.len());
        }
        Ok(Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        })
    }

    /// `rows × cols` values of `data` with element (i, j) at `i·row_stride + j·col_stride`.
    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self> {
        if rows > 0 && cols > 0 && (rows - 1) * row_stride + (cols - 1) * col_stride >= data.len() {
            candle_core::bail!(
                "gemm: a {rows} × {cols} view reaches past its {} values",
                data.len()
            );
        }
        Ok(Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// The 2-D matrix a layout describes inside `storage` (any strides, e.g. a transposed
    /// view).
    pub fn from_layout(storage: &'a [f32], layout: &Layout) -> Result<Self> {
        let (rows, cols) = layout.shape().dims2()?;
        let (row_stride, col_stride) = (layout.stride()[0], layout.stride()[1]);
        let start = layout.start_offset();
        if rows > 0 && cols > 0 {
            let last = start + (rows - 1) * row_stride + (cols - 1) * col_stride;
            if last >= storage.len() {
                candle_core::bail!("gemm: a layout reaches past its storage");
            }
        }
        Ok(Self {
            data: &storage[start.min(storage.len())..],
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// The f32 matrix `layout` describes in a CPU storage; an error naming `what` otherwise.
    pub fn of_cpu(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<Self> {
        match storage {
            CpuStorage::F32(values) => Self::from_layout(values, layout),
            _ => candle_core::bail!("{what} must be f32"),
        }
    }

    /// [`Mat::of_cpu`] of a tensor's storage (from `storage_and_layout`), which must be on the
    /// CPU.
    pub fn of_storage(storage: &'a Storage, layout: &Layout, what: &str) -> Result<Self> {
        match storage {
            Storage::Cpu(cpu) => Self::of_cpu(cpu, layout, what),
            _ => candle_core::bail!("{what} must be on the CPU"),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The values as one row-major slice, when they are stored that way.
    pub fn as_row_major(&self) -> Option<&'a [f32]> {
        let packed = self.col_stride == 1 && (self.row_stride == self.cols || self.rows <= 1);
        packed.then(|| &self.data[..self.rows * self.cols])
    }

    /// The values and the distance between rows, when each row's values are contiguous.
    pub fn rows_in_place(&self) -> Option<(&'a [f32], usize)> {
        (self.col_stride == 1 || self.cols <= 1).then_some((self.data, self.row_stride))
    }

    /// Element `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// The transpose, as a view (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// Which threads a product may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Threads {
    /// MKL's team or rayon's pool (small products stay on the calling thread).
    All,
    /// Only the calling thread: for products inside tasks that already run in parallel.
    This,
}

/// `β·a·b` into a fresh row-major buffer.
pub fn product(a: Mat, b: Mat, beta: f32) -> Result<Vec<f32>> {
    let len = a.rows * b.cols;
    let mut dst: Vec<f32> = Vec::with_capacity(len);
    // SAFETY: `run` writes every one of the m·n values without reading them (read_dst
    // false), and only then does the length cover them.
    unsafe {
        run(dst.as_mut_ptr(), b.cols, false, a, b, beta, Threads::All)?;
        dst.set_len(len);
    }
    Ok(dst)
}

/// `dst += β·a·b` for a row-major `dst` of `a.rows × b.cols`.
pub fn add_product(dst: &mut [f32], a: Mat, b: Mat, beta: f32) -> Result<()> {
    if dst.len() != a.rows * b.cols {
        candle_core::bail!(
            "gemm: a destination of {} values for a {} × {} product",
            dst.len(),
            a.rows,
            b.cols
        );
    }
    // SAFETY: dst holds exactly the m·n values gemm reads and writes.
    unsafe { run(dst.as_mut_ptr(), b.cols, true, a, b, beta, Threads::All) }
}

/// `dst = β·a·b` (or `dst += β·a·b` when `accumulate`) on the calling thread, where `dst` is
/// row-major with rows `dst_row_stride` apart: for the many small products that parallel
/// tasks run (attention blocks). MKL's sgemm on one thread with `--features mkl` (on Intel
/// CPUs faster than the gemm crate at these sizes too), the gemm crate otherwise.
pub fn product_on_this_thread(
    dst: &mut [f32],
    dst_row_stride: usize,
    accumulate: bool,
    a: Mat,
    b: Mat,
    beta: f32,
) -> Result<()> {
    let (m, n) = (a.rows, b.cols);
    if m > 0 && n > 0 && (n > dst_row_stride || (m - 1) * dst_row_stride + n > dst.len()) {
        candle_core::bail!(
            "gemm: {} values at row stride {dst_row_stride} for a {m} × {n} product",
            dst.len()
        );
    }
    // SAFETY: the check above bounds every destination element; `Mat`s bound their own.
    unsafe {
        run(
            dst.as_mut_ptr(),
            dst_row_stride,
            accumulate,
            a,
            b,
            beta,
            Threads::This,
        )
    }
}

/// `dst = β·a·b`, or `dst += β·a·b` when `read_dst`, for a row-major `dst` whose rows are
/// `dst_rs` apart; with no inner dimension the product is zero.
///
/// # Safety
/// `dst` must reach `(a.rows − 1)·dst_rs + b.cols` values (initialised when `read_dst`).
unsafe fn run(
    dst: *mut f32,
    dst_rs: usize,
    read_dst: bool,
    a: Mat,
    b: Mat,
    beta: f32,
    threads: Threads,
) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k {
        candle_core::bail!("gemm: [{m}, {k}] times [{}, {n}]", b.rows);
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !read_dst {
            for row in 0..m {
                std::ptr::write_bytes(dst.add(row * dst_rs), 0, n);
            }
        }
        return Ok(());
    }
    let traced = trace::enabled().then(std::time::Instant::now);
    #[cfg(feature = "mkl")]
    let done = mkl::sgemm(dst, dst_rs, read_dst, &a, &b, beta, threads);
    #[cfg(not(feature = "mkl"))]
    let done = false;
    if !done {
        gemm_crate(dst, dst_rs, read_dst, &a, &b, beta, threads);
    }
    if let Some(start) = traced {
        trace::record(m, n, k, &a, &b, read_dst, start.elapsed());
    }
    Ok(())
}

/// The product through the gemm crate.
///
/// # Safety
/// As [`run`].
unsafe fn gemm_crate(
    dst: *mut f32,
    dst_rs: usize,
    read_dst: bool,
    a: &Mat,
    b: &Mat,
    beta: f32,
    threads: Threads,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let pool = threads_for(m, n, k);
    let parallel = threads == Threads::All && pool > 1;
    let split = m <= SPLIT_MAX_ROWS && n >= SPLIT_MIN_COLUMNS * pool;
    if parallel && split && super::fused_train::fused("split") {
        column_blocks(dst, dst_rs, read_dst, a, b, beta, pool);
        return;
    }
    let parallelism = if parallel {
        Parallelism::Rayon(pool)
    } else {
        Parallelism::None
    };
    gemm_crate_call(dst, dst_rs, read_dst, a, b, n, 0, beta, parallelism);
}

/// How many threads an `m × k · k × n` product gets: candle's thread count, or 1 for a small
/// product, where handing it to the pool costs more than it takes.
pub(crate) fn threads_for(m: usize, n: usize, k: usize) -> usize {
    if m * n * k >= 1 << 18 {
        candle_core::utils::get_num_threads()
    } else {
        1
    }
}

/// A product's destination, shared by parallel tasks that each write their own disjoint part
/// of it (whoever makes one keeps to that).
#[derive(Clone, Copy)]
pub(crate) struct SharedDst(pub(crate) *mut f32);
// SAFETY: only the pointer crosses threads; its users write disjoint values.
unsafe impl Send for SharedDst {}
unsafe impl Sync for SharedDst {}
impl SharedDst {
    /// Through a method, so closures capture the `Send` wrapper, not its raw pointer.
    pub(crate) fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// The narrowest column block [`column_blocks`] hands to a thread.
const SPLIT_MIN_COLUMNS: usize = 64;
/// Products with more rows go to the gemm crate's own threading, which shares one packed copy
/// of `b` between the threads and was as fast or faster at 1,024–2,048 rows (a gemm
/// micro-benchmark on the Intel CI machine); at 110–440 rows the column blocks were faster.
const SPLIT_MAX_ROWS: usize = 512;

/// The product as one single-threaded gemm per block of `b`'s columns, the blocks run in
/// parallel, each thread packing its own columns. With a few hundred rows (a training batch of
/// short examples) the gemm crate's own threading ran these products slower, above all when
/// `b` is read through a transposed view, as every input gradient reads a frozen weight: in
/// the quick start's training (~140 rows, `LAB_GEMM_TRACE`) 64–81 GFLOP/s against 104–116 in
/// column blocks, and 101–119 against 122–134 with `b` row-major.
///
/// # Safety
/// As [`run`].
unsafe fn column_blocks(
    dst: *mut f32,
    dst_rs: usize,
    read_dst: bool,
    a: &Mat,
    b: &Mat,
    beta: f32,
    pool: usize,
) {
    use rayon::prelude::*;
    let n = b.cols;
    let width = n.div_ceil(pool).next_multiple_of(16);
    // Every task writes only its own block of columns.
    let out = SharedDst(dst);
    (0..n.div_ceil(width)).into_par_iter().for_each(|block| {
        let first = block * width;
        let cols = width.min(n - first);
        // SAFETY: columns first..first + cols of every row lie inside dst (`run`'s
        // contract), and no other block touches them.
        unsafe {
            gemm_crate_call(
                out.at(first),
                dst_rs,
                read_dst,
                a,
                b,
                cols,
                first,
                beta,
                Parallelism::None,
            )
        };
    });
}

/// `gemm::gemm` on `cols` columns of `b` from column `first` on, into the same columns of
/// `dst` (already offset to them).
///
/// # Safety
/// As [`run`], for the columns taken.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_crate_call(
    dst: *mut f32,
    dst_rs: usize,
    read_dst: bool,
    a: &Mat,
    b: &Mat,
    cols: usize,
    first: usize,
    beta: f32,
    parallelism: Parallelism,
) {
    gemm::gemm(
        a.rows,
        cols,
        a.cols,
        dst,
        1,
        dst_rs as isize,
        read_dst,
        a.data.as_ptr(),
        a.col_stride as isize,
        a.row_stride as isize,
        b.data.as_ptr().add(first * b.col_stride),
        b.col_stride as isize,
        b.row_stride as isize,
        1.0,
        beta,
        false,
        false,
        false,
        parallelism,
    );
}

/// With `--features mkl`, products go to MKL's sgemm, which on Intel CPUs outruns the gemm
/// crate (README, performance section); the gemm crate stays the default because it needs no
/// vendor library and matches MKL on AMD.
#[cfg(feature = "mkl")]
mod mkl;

/// `LAB_GEMM_TRACE=1`: time every product by shape and layout, for finding the slow ones
/// inside a real step (`trace::report` prints the table).
pub mod trace;

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &Mat, b: &Mat) -> Vec<f32> {
        let mut out = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols)
                    .map(|p| {
                        a.data[i * a.row_stride + p * a.col_stride]
                            * b.data[p * b.row_stride + j * b.col_stride]
                    })
                    .sum();
            }
        }
        out
    }

    /// `rows × cols` values of `values` (row-major) in three layouts: row-major, stored
    /// transposed (read through `t()`), and every other element of a wider buffer (neither
    /// stride 1, which BLAS cannot read, so the gemm crate takes it under `--features mkl`).
    fn layouts(
        values: &[f32],
        rows: usize,
        cols: usize,
    ) -> Vec<(&'static str, Vec<f32>, usize, usize)> {
        let transposed: Vec<f32> = (0..rows * cols)
            .map(|i| values[(i % rows) * cols + i / rows])
            .collect();
        let mut spread = vec![f32::NAN; 2 * rows * cols];
        for (i, v) in values.iter().enumerate() {
            spread[2 * i] = *v;
        }
        vec![
            ("row-major", values.to_vec(), cols, 1),
            ("transposed", transposed, 1, rows),
            ("strided", spread, 2 * cols, 2),
        ]
    }

    #[test]
    fn products_and_accumulation_match_the_definition_for_any_strides() -> Result<()> {
        // Large enough (m·n·k ≥ 2^18) that the threaded paths run too (with 150 columns
        // and 50 rows the column blocks, one of them narrower); single rows and columns, where BLAS
        // ignores a leading dimension.
        let shapes = [
            (3, 5, 4),
            (1, 5, 4),
            (3, 5, 1),
            (4, 1, 3),
            (70, 65, 66),
            (50, 40, 150),
        ];
        for (m, k, n) in shapes {
            let av: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32) - 6.0).collect();
            let bv: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32) * 0.5).collect();
            let want = naive(&Mat::row_major(&av, m, k)?, &Mat::row_major(&bv, k, n)?);
            for (a_name, a_data, a_rs, a_cs) in layouts(&av, m, k) {
                for (b_name, b_data, b_rs, b_cs) in layouts(&bv, k, n) {
                    let a = Mat {
                        data: &a_data,
                        rows: m,
                        cols: k,
                        row_stride: a_rs,
                        col_stride: a_cs,
                    };
                    let b = Mat {
                        data: &b_data,
                        rows: k,
                        cols: n,
                        row_stride: b_rs,
                        col_stride: b_cs,
                    };
                    let case = format!("{m}×{k}·{k}×{n}, a {a_name}, b {b_name}");
                    let got = product(a, b, 2.0)?;
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - 2.0 * w).abs() <= 1e-3 * w.abs().max(1.0),
                            "{case}: {g} vs 2·{w}"
                        );
                    }
                    let mut acc = want.clone();
                    add_product(&mut acc, a, b, -0.5)?;
                    for (g, w) in acc.iter().zip(&want) {
                        assert!(
                            (g - 0.5 * w).abs() <= 1e-3 * w.abs().max(1.0),
                            "{case}: {g} vs {w}/2"
                        );
                    }
                }
            }
        }
        let v = [1f32; 6];
        assert!(add_product(
            &mut [0f32; 5],
            Mat::row_major(&v, 2, 3)?,
            Mat::row_major(&v, 3, 2)?,
            1.0
        )
        .is_err());
        assert_eq!(
            product(Mat::row_major(&[], 2, 0)?, Mat::row_major(&[], 0, 3)?, 1.0)?,
            vec![0.0; 6]
        );
        Ok(())
    }
}
