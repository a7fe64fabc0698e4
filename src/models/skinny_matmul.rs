//! `x [m, k] @ w [k, n]` for few rows `m`: the products of decoding, one row per sequence.
//!
//! A general gemm packs `w` into panels before multiplying. With thousands of rows that copy is
//! paid back many times; with sixteen rows it doubles the memory traffic of a product that is
//! already bound by reading `w` once (SmolLM2's weights are 537 MB per decoding step). This
//! kernel streams `w` in place: each block of columns is read from memory once, kept in L2 while
//! every row tile of `x` passes over it, and multiplied from registers (AVX-512, 8 rows × 48
//! columns of accumulators). Side by side: `LAB_UNFUSED=skinny lab bench-host --only
//! generation` against the same without it (README, performance section).
//!
//! Read in place, a block's rows are short pieces a whole matrix row apart, which memory serves
//! slowly; a generation therefore packs each weight once into contiguous panels
//! ([`pack_for_streaming`], kept by `decoding_weights` for as long as it runs), and
//! [`skinny_matmul_packed`] runs the same tiles over them — one copy per generation call
//! instead of one per product.
use rayon::prelude::*;

/// Up to this many rows the skinny kernel beat candle's gemm (k 576, n 1536: 1.46× at 48 rows,
/// 1.35× at 64) on the machine in the README; decoding uses 1 row per sequence.
pub const MAX_ROWS: usize = 48;

/// Rows and columns (in 16-lane vectors) of one register tile.
const TILE_ROWS: usize = 8;
const TILE_VECTORS: usize = 3;
const BLOCK_COLUMNS: usize = 16 * TILE_VECTORS;

/// Whether this CPU runs the kernel (AVX-512F); otherwise callers use the general gemm.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y [m, n] = x [m, k] @ w [k, n]`, all row-major and contiguous. Call only when
/// [`available`] is true.
pub fn skinny_matmul(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    assert!(
        x.len() == m * k && w.len() == k * n,
        "skinny_matmul: shapes do not match"
    );
    assert!(available(), "skinny_matmul needs AVX-512F");
    // Block b's columns start at column b·48 of every row.
    blocks_product(x, w, n, |b| b * BLOCK_COLUMNS, m, k, n)
}

/// `w [k, n]` rearranged for [`skinny_matmul_packed`]: each block of 48 columns stored as one
/// contiguous `k × 48` panel (the last padded with zeros).
///
/// In `[k, n]` order a block's rows are 192-byte pieces a whole matrix row apart, which memory
/// delivers at a fraction of its streaming rate; a panel streams. Over the 211 weight matrices
/// of a SmolLM2-135M decoding step (16 rows) the products took 25.6–29.1 ms packed against
/// 60.4–70.2 ms in place (a micro-benchmark over three pairs).
pub fn pack_for_streaming(w: &[f32], k: usize, n: usize) -> Vec<f32> {
    assert_eq!(w.len(), k * n, "pack_for_streaming: shapes do not match");
    let blocks = n.div_ceil(BLOCK_COLUMNS);
    let mut packed = vec![0f32; blocks * k * BLOCK_COLUMNS];
    for (b, panel) in packed.chunks_mut(k * BLOCK_COLUMNS).enumerate() {
        let col = b * BLOCK_COLUMNS;
        let width = (n - col).min(BLOCK_COLUMNS);
        for (p, row) in panel.chunks_mut(BLOCK_COLUMNS).enumerate() {
            row[..width].copy_from_slice(&w[p * n + col..p * n + col + width]);
        }
    }
    packed
}

/// [`skinny_matmul`] with `w` packed by [`pack_for_streaming`]. Call only when [`available`].
pub fn skinny_matmul_packed(x: &[f32], packed: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let blocks = n.div_ceil(BLOCK_COLUMNS);
    assert!(
        x.len() == m * k && packed.len() == blocks * k * BLOCK_COLUMNS,
        "skinny_matmul_packed: shapes do not match"
    );
    assert!(available(), "skinny_matmul_packed needs AVX-512F");
    // Block b is the b-th contiguous k × 48 panel.
    blocks_product(x, packed, BLOCK_COLUMNS, |b| b * k * BLOCK_COLUMNS, m, k, n)
}

/// `y = x @ w` block of 48 columns by block, where block `b` of `w` starts at
/// `w[block_start(b)]` and its rows are `ldw` apart.
fn blocks_product(
    x: &[f32],
    w: &[f32],
    ldw: usize,
    block_start: impl Fn(usize) -> usize + Sync,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    let mut y = vec![0f32; m * n];
    if m == 0 || n == 0 {
        return y;
    }
    let blocks = n.div_ceil(BLOCK_COLUMNS);
    // A few chunks per thread so uneven progress evens out; each chunk a run of column blocks.
    let chunks = (rayon::current_num_threads() * 4).min(blocks).max(1);
    let per_chunk = blocks.div_ceil(chunks);
    let out = SendPtr(y.as_mut_ptr());
    (0..blocks.div_ceil(per_chunk))
        .into_par_iter()
        .for_each(|c| {
            let out = &out;
            for b in c * per_chunk..((c + 1) * per_chunk).min(blocks) {
                let col = b * BLOCK_COLUMNS;
                let width = (n - col).min(BLOCK_COLUMNS);
                let wb = &w[block_start(b)..];
                assert!(
                    k == 0 || wb.len() >= (k - 1) * ldw + width,
                    "skinny: block {b} out of bounds"
                );
                // SAFETY: blocks write disjoint columns of `y`; the block's extent is checked
                // above, and callers checked `available()` (AVX-512F).
                unsafe { block(x, wb.as_ptr(), ldw, out.0, m, k, n, col, width) };
            }
        });
    y
}

struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Columns `col..col + width` of `y` from one block of `w` (rows `ldw` apart): every row tile
/// of `x` passes over the block while it sits in cache.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    x: &[f32],
    w: *const f32,
    ldw: usize,
    y: *mut f32,
    m: usize,
    k: usize,
    n: usize,
    col: usize,
    width: usize,
) {
    let vectors = width / 16;
    let mut row = 0;
    while row < m {
        let rows = (m - row).min(TILE_ROWS);
        let (xp, yp) = (x.as_ptr().add(row * k), y.add(row * n + col));
        if vectors > 0 {
            tile_dispatch(rows, vectors, xp, k, w, ldw, yp, n);
        }
        // Columns past the last full vector (only when n is not a multiple of 16).
        for i in 0..rows {
            for j in vectors * 16..width {
                let mut acc = 0f32;
                for p in 0..k {
                    acc += *xp.add(i * k + p) * *w.add(p * ldw + j);
                }
                *yp.add(i * n + j) = acc;
            }
        }
        row += rows;
    }
}

/// Picks the register tile for `rows` (1..=8) rows and `vectors` (1..=3) 16-lane columns.
#[allow(clippy::too_many_arguments)]
unsafe fn tile_dispatch(
    rows: usize,
    vectors: usize,
    x: *const f32,
    ldx: usize,
    w: *const f32,
    ldw: usize,
    y: *mut f32,
    ldy: usize,
) {
    macro_rules! by_rows {
        ($v:literal) => {
            match rows {
                1 => tile::<1, $v>(x, ldx, w, ldw, y, ldy),
                2 => tile::<2, $v>(x, ldx, w, ldw, y, ldy),
                3 => tile::<3, $v>(x, ldx, w, ldw, y, ldy),
                4 => tile::<4, $v>(x, ldx, w, ldw, y, ldy),
                5 => tile::<5, $v>(x, ldx, w, ldw, y, ldy),
                6 => tile::<6, $v>(x, ldx, w, ldw, y, ldy),
                7 => tile::<7, $v>(x, ldx, w, ldw, y, ldy),
                _ => tile::<8, $v>(x, ldx, w, ldw, y, ldy),
            }
        };
    }
    match vectors {
        1 => by_rows!(1),
        2 => by_rows!(2),
        _ => by_rows!(3),
    }
}

/// `ROWS × (16·VECTORS)` of `y` over the full depth `ldx` (= k): the accumulators stay in
/// registers, each step loads `VECTORS` vectors of `w` and broadcasts one `x` per row.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const ROWS: usize, const VECTORS: usize>(
    x: *const f32,
    ldx: usize,
    w: *const f32,
    ldw: usize,
    y: *mut f32,
    ldy: usize,
) {
    use std::arch::x86_64::*;
    let k = ldx;
    let mut acc = [[_mm512_setzero_ps(); VECTORS]; ROWS];
    for p in 0..k {
        let wp = w.add(p * ldw);
        let mut wv = [_mm512_setzero_ps(); VECTORS];
        for (v, slot) in wv.iter_mut().enumerate() {
            *slot = _mm512_loadu_ps(wp.add(16 * v));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let xi = _mm512_set1_ps(*x.add(i * ldx + p));
            for (a, wv) in row.iter_mut().zip(&wv) {
                *a = _mm512_fmadd_ps(xi, *wv, *a);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (v, a) in row.iter().enumerate() {
            _mm512_storeu_ps(y.add(i * ldy + 16 * v), *a);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile<const ROWS: usize, const VECTORS: usize>(
    _x: *const f32,
    _ldx: usize,
    _w: *const f32,
    _ldw: usize,
    _y: *mut f32,
    _ldy: usize,
) {
    unreachable!("skinny_matmul::available() is false off x86_64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn naive(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0f64;
                for p in 0..k {
                    acc += x[i * k + p] as f64 * w[p * n + j] as f64;
                }
                y[i * n + j] = acc as f32;
            }
        }
        y
    }

    #[test]
    fn equals_the_naive_product_on_every_tile_shape_and_tail() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // Rows 1..=17 cover every tile height and a second tile; the columns cover one, two
        // and three vectors, several blocks, and tails that are not a multiple of 16.
        for &(k, n) in &[
            (1, 16),
            (7, 5),
            (33, 48),
            (64, 96),
            (50, 100),
            (96, 211),
            (576, 192),
        ] {
            for m in 1..=17 {
                let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
                let w: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
                let want = naive(&x, &w, m, k, n);
                let in_place = skinny_matmul(&x, &w, m, k, n);
                let packed = skinny_matmul_packed(&x, &pack_for_streaming(&w, k, n), m, k, n);
                for got in [in_place, packed] {
                    for (idx, (g, e)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - e).abs() <= 1e-4 * (k as f32).sqrt(),
                            "m {m} k {k} n {n}: y[{idx}] = {g}, expected {e}"
                        );
                    }
                }
            }
        }
    }
}
