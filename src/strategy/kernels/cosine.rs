//! Cosine similarity blocks over L2-normalised rows: `a · bᵀ` through gemm.
use gemm::Parallelism;
use rayon::prelude::*;

use super::dense::gemm_abt;
use crate::strategy::Matrix;

/// Items per rayon task in [`max_similarity_to`].
const ITEM_BLOCK: usize = 512;
/// Set rows per tile in [`max_similarity_to`]: each task holds one ITEM_BLOCK × SET_BLOCK f32
/// tile (4 MiB), so memory stays flat however large `set` and `items` are.
const SET_BLOCK: usize = 2048;

/// `a · bᵀ`: entry (i, j) is the cosine of row i of `a` and row j of `b` when rows are
/// L2-normalised (otherwise the plain dot product). The output is `a.rows × b.rows`; gemm
/// blocks the product internally and runs on the rayon pool.
///
/// # Panics
/// If `a.cols != b.cols` (callers check shapes before building the matrices).
pub fn cosine_block(a: &Matrix, b: &Matrix) -> Matrix {
    assert_eq!(
        a.cols, b.cols,
        "cosine_block: rows of a have {} values, rows of b have {}",
        a.cols, b.cols
    );
    let mut out = Matrix::zeros(a.rows, b.rows);
    gemm_abt(
        &a.data,
        a.rows,
        &b.data,
        b.rows,
        a.cols,
        &mut out.data,
        Parallelism::Rayon(0),
    );
    out
}

/// For every row of `items`, the largest cosine to any row of `set`; −1 for every item when
/// `set` is empty (the lowest cosine possible, so "nothing similar yet").
///
/// Blocked: each rayon task holds one 512 × 2048 tile, never `|set| × |items|` at once.
///
/// # Panics
/// If both matrices have rows and `set.cols != items.cols`.
pub fn max_similarity_to(set: &Matrix, items: &Matrix) -> Vec<f32> {
    let mut best = vec![-1.0f32; items.rows];
    if set.rows == 0 || items.rows == 0 {
        return best;
    }
    assert_eq!(
        set.cols, items.cols,
        "max_similarity_to: set rows have {} values, item rows have {}",
        set.cols, items.cols
    );
    let d = items.cols;
    best.par_chunks_mut(ITEM_BLOCK)
        .enumerate()
        .for_each(|(block, best)| {
            let first = block * ITEM_BLOCK;
            let rows = &items.data[first * d..(first + best.len()) * d];
            let mut tile = vec![0.0f32; best.len() * SET_BLOCK.min(set.rows)];
            for set_first in (0..set.rows).step_by(SET_BLOCK) {
                let n = SET_BLOCK.min(set.rows - set_first);
                let tile = &mut tile[..best.len() * n];
                let set_rows = &set.data[set_first * d..(set_first + n) * d];
                gemm_abt(rows, best.len(), set_rows, n, d, tile, Parallelism::None);
                for (b, sims) in best.iter_mut().zip(tile.chunks_exact(n)) {
                    *b = sims.iter().fold(*b, |m, &s| m.max(s));
                }
            }
        });
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(rows: &[&[f32]]) -> Matrix {
        let mut m =
            Matrix::from_rows(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>()).unwrap();
        m.l2_normalize_rows();
        m
    }

    #[test]
    fn cosine_block_gives_known_angles() {
        let a = unit(&[&[1.0, 0.0], &[0.0, 2.0]]);
        let b = unit(&[&[1.0, 1.0], &[-3.0, 0.0], &[0.0, 1.0]]);
        let c = cosine_block(&a, &b);
        assert_eq!((c.rows, c.cols), (2, 3));
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let want = [h, -1.0, 0.0, h, 0.0, 1.0];
        for (x, y) in c.data.iter().zip(want) {
            assert!((x - y).abs() < 1e-6, "{:?}", c.data);
        }
    }

    #[test]
    fn max_similarity_is_minus_one_for_an_empty_set() {
        let items = unit(&[&[1.0, 0.0], &[0.0, 1.0]]);
        assert_eq!(
            max_similarity_to(&Matrix::zeros(0, 2), &items),
            vec![-1.0, -1.0]
        );
    }

    #[test]
    fn max_similarity_crosses_tile_boundaries() {
        // More set rows than one tile and more items than one block: the best match of item i
        // is planted in the last set tile, so a dropped tile would show.
        let n_items = ITEM_BLOCK + 5;
        let n_set = SET_BLOCK + 7;
        let angle = |t: f32| vec![t.cos(), t.sin(), 0.0];
        let items: Vec<Vec<f32>> = (0..n_items).map(|i| angle(i as f32 * 1e-3)).collect();
        let mut set: Vec<Vec<f32>> = (0..n_set).map(|_| vec![0.0, 0.0, 1.0]).collect();
        set[n_set - 1] = angle(0.0);
        let got = max_similarity_to(
            &Matrix::from_rows(&set).unwrap(),
            &Matrix::from_rows(&items).unwrap(),
        );
        assert_eq!(got.len(), n_items);
        for (i, g) in got.iter().enumerate() {
            let want = (i as f32 * 1e-3).cos();
            assert!((g - want).abs() < 1e-5, "item {i}: {g} vs {want}");
        }
    }
}
