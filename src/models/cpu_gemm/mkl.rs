use super::{Mat, Threads};
use std::os::raw::{c_char, c_float, c_int};

// Linked by candle-core's `mkl` feature (intel-mkl-src).
extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn sgemm_(
        transa: *const c_char,
        transb: *const c_char,
        m: *const c_int,
        n: *const c_int,
        k: *const c_int,
        alpha: *const c_float,
        a: *const c_float,
        lda: *const c_int,
        b: *const c_float,
        ldb: *const c_int,
        beta: *const c_float,
        c: *mut c_float,
        ldc: *const c_int,
    );
    /// Sets this thread's MKL thread count (0: back to the global one); returns the
    /// previous thread-local setting. (`mkl_set_num_threads_local` in C is a macro for
    /// this name; the lower-case symbol is the Fortran entry, which takes a pointer.)
    fn MKL_Set_Num_Threads_Local(threads: c_int) -> c_int;
}

/// How BLAS (column-major) reads the matrix whose element (i, j) lies at
/// `i·rs + j·cs`: its transpose flag and leading dimension, or None when neither stride
/// is 1 (BLAS cannot read it).
fn blas_operand(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<(c_char, c_int)> {
    // BLAS ignores the leading dimension of a single stored column but still requires it
    // to be at least the stored rows, so such a matrix gets exactly that.
    let (trans, ld, min_ld) = if rs == 1 || rows == 1 {
        (b'N', if cols == 1 { rows } else { cs }, rows)
    } else if cs == 1 || cols == 1 {
        (b'T', if rows == 1 { cols } else { rs }, cols)
    } else {
        return None;
    };
    if ld < min_ld {
        return None;
    }
    Some((trans as c_char, c_int::try_from(ld.max(1)).ok()?))
}

/// `dst (row-major m × n, rows dst_rs apart) = β·a·b (+ dst when read_dst)` through MKL;
/// false when a layout is one BLAS cannot read, for the caller to use the gemm crate.
///
/// # Safety
/// As `super::run`.
pub(super) unsafe fn sgemm(
    dst: *mut f32,
    dst_rs: usize,
    read_dst: bool,
    a: &Mat,
    b: &Mat,
    beta: f32,
    threads: Threads,
) -> bool {
    // Inside a task that already runs in parallel with others, MKL must not start its
    // own team of threads.
    if threads == Threads::This {
        let before = MKL_Set_Num_Threads_Local(1);
        let done = sgemm(dst, dst_rs, read_dst, a, b, beta, Threads::All);
        MKL_Set_Num_Threads_Local(before);
        return done;
    }
    let (m, k, n) = (a.rows, a.cols, b.cols);
    // Row-major dst is column-major dstᵀ = bᵀ·aᵀ: bᵀ is n × k, aᵀ is k × m.
    let (Some((ta, lda)), Some((tb, ldb))) = (
        blas_operand(n, k, b.col_stride, b.row_stride),
        blas_operand(k, m, a.col_stride, a.row_stride),
    ) else {
        return false;
    };
    let (Ok(mi), Ok(ni), Ok(ki)) = (c_int::try_from(n), c_int::try_from(m), c_int::try_from(k))
    else {
        return false;
    };
    // `run` returns before here when m or n is 0, and its callers keep dst_rs ≥ n ≥ 1.
    let Ok(ldc) = c_int::try_from(dst_rs) else {
        return false;
    };
    // BLAS does not read C when its beta is zero, so an unfilled dst is fine.
    let keep = if read_dst { 1.0f32 } else { 0.0 };
    sgemm_(
        &ta,
        &tb,
        &mi,
        &ni,
        &ki,
        &beta,
        b.data.as_ptr(),
        &lda,
        a.data.as_ptr(),
        &ldb,
        &keep,
        dst,
        &ldc,
    );
    true
}
