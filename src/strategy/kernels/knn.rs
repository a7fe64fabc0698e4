//! Exact k-nearest-neighbour graph by cosine, built tile by tile so memory stays flat: the
//! sparse similarity graph behind facility location on large pools.
//!
//! Similarity is symmetric, so only tiles on or above the diagonal are computed: tile (I, J)
//! offers its rows to the rows of block I and, transposed, its columns to the rows of block J.
//! That halves the O(n²·d) product, which dominates the cost.
use std::sync::Mutex;

use gemm::Parallelism;
use rayon::prelude::*;

use super::dense::gemm_abt;
use crate::strategy::Matrix;

/// Rows per block on both sides of a tile: a task holds one 512 × 512 f32 tile (1 MiB).
const BLOCK: usize = 512;

/// Every row's `neighbours` most similar rows (itself included), by cosine.
#[derive(Clone, Debug, PartialEq)]
pub struct KnnGraph {
    /// Neighbours per row: `min(requested, rows)`.
    pub neighbours: usize,
    /// Row i's neighbours at `[i·neighbours, (i+1)·neighbours)`, most similar first, ties to
    /// the lower index.
    pub index: Vec<u32>,
    /// The cosine of each entry of `index`.
    pub similarity: Vec<f32>,
}

impl KnnGraph {
    pub fn rows(&self) -> usize {
        self.index.len().checked_div(self.neighbours).unwrap_or(0)
    }

    /// Row i's `(neighbour, cosine)` pairs, most similar first.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let span = i * self.neighbours..(i + 1) * self.neighbours;
        self.index[span.clone()]
            .iter()
            .zip(&self.similarity[span])
            .map(|(&j, &s)| (j as usize, s))
    }
}

/// Build the graph of the rows of `x` (exact: every pair is scored once, in tiles). Cost
/// O(n²·d/2) flops through gemm, memory O(n·neighbours). A row whose similarities are all
/// NaN is padded with itself at cosine −1.
///
/// # Panics
/// If `x` has more than `u32::MAX` rows.
pub fn knn_graph(x: &Matrix, neighbours: usize) -> KnnGraph {
    let n = x.rows;
    assert!(
        u32::try_from(n).is_ok(),
        "knn_graph: {n} rows do not fit u32 indices"
    );
    let m = neighbours.min(n);
    if m == 0 {
        return KnnGraph {
            neighbours: m,
            index: Vec::new(),
            similarity: Vec::new(),
        };
    }
    let d = x.cols;
    let blocks = n.div_ceil(BLOCK);
    let span = |b: usize| b * BLOCK..((b + 1) * BLOCK).min(n);
    let tops: Vec<Mutex<Vec<TopM>>> = (0..blocks)
        .map(|b| Mutex::new(span(b).map(|_| TopM::new(m)).collect()))
        .collect();
    let tiles = blocks * (blocks + 1) / 2;
    let bar = crate::util::progress::bar(tiles as u64, "knn graph");
    if tiles < 64 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    (0..blocks).into_par_iter().for_each(|bi| {
        let rows_i = span(bi);
        let queries = &x.data[rows_i.start * d..rows_i.end * d];
        let mut tile = vec![0.0f32; BLOCK * BLOCK];
        for bj in bi..blocks {
            let rows_j = span(bj);
            let (h, w) = (rows_i.len(), rows_j.len());
            let tile = &mut tile[..h * w];
            let others = &x.data[rows_j.start * d..rows_j.end * d];
            gemm_abt(queries, h, others, w, d, tile, Parallelism::None);
            {
                let mut tops_i = lock(&tops[bi]);
                for (top, sims) in tops_i.iter_mut().zip(tile.chunks_exact(w)) {
                    top.scan(sims, rows_j.start as u32);
                }
            }
            if bj != bi {
                let mut tops_j = lock(&tops[bj]);
                scan_columns(&mut tops_j, tile, w, rows_i.start as u32);
            }
            bar.inc(1);
        }
    });
    bar.finish_and_clear();
    let mut index = Vec::with_capacity(n * m);
    let mut similarity = Vec::with_capacity(n * m);
    for (b, block) in tops.into_iter().enumerate() {
        let block = block
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (r, top) in block.into_iter().enumerate() {
            for (s, j) in top.finish((b * BLOCK + r) as u32) {
                index.push(j);
                similarity.push(s);
            }
        }
    }
    KnnGraph {
        neighbours: m,
        index,
        similarity,
    }
}

/// Offer column c of the row-major `tile` (width `w`; its rows are pool rows `first_row..`)
/// to `tops[c]`. Reading the tile row by row keeps memory access sequential; the per-column
/// thresholds make the common case one comparison.
fn scan_columns(tops: &mut [TopM], tile: &[f32], w: usize, first_row: u32) {
    let mut thresholds: Vec<f32> = tops.iter().map(|t| t.threshold.0).collect();
    for (r, sims) in tile.chunks_exact(w).enumerate() {
        let i = first_row + r as u32;
        for (c, (&s, threshold)) in sims.iter().zip(thresholds.iter_mut()).enumerate() {
            if s >= *threshold {
                tops[c].offer(s, i);
                *threshold = tops[c].threshold.0;
            }
        }
    }
}

/// A poisoned lock only means another task panicked; that panic is already propagating.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The m best `(similarity, index)` pairs offered so far, under the order "higher similarity,
/// then lower index". Candidates may arrive in any order: the kept set is the exact top m of
/// everything offered, so the graph does not depend on how tasks interleave.
struct TopM {
    m: usize,
    candidates: Vec<(f32, u32)>,
    /// The m-th best pair once m have been kept; a candidate must beat it to enter.
    threshold: (f32, u32),
}

fn better_first(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

impl TopM {
    fn new(m: usize) -> Self {
        Self {
            m,
            candidates: Vec::with_capacity(2 * m),
            threshold: (f32::NEG_INFINITY, u32::MAX),
        }
    }

    /// Offer one candidate.
    #[inline]
    fn offer(&mut self, s: f32, j: u32) {
        let (ts, tj) = self.threshold;
        if s > ts || (s == ts && j < tj) {
            self.candidates.push((s, j));
            if self.candidates.len() == 2 * self.m {
                self.compact();
            }
        }
    }

    /// Offer `sims[j]` as pool row `offset + j`, for every j.
    #[inline]
    fn scan(&mut self, sims: &[f32], offset: u32) {
        // Cheap test first: most similarities fall below the threshold.
        let mut threshold = self.threshold.0;
        for (j, &s) in sims.iter().enumerate() {
            if s >= threshold {
                self.offer(s, offset + j as u32);
                threshold = self.threshold.0;
            }
        }
    }

    fn compact(&mut self) {
        if self.candidates.len() > self.m {
            self.candidates
                .select_nth_unstable_by(self.m - 1, better_first);
            self.candidates.truncate(self.m);
        }
        if self.candidates.len() == self.m {
            self.threshold = *self
                .candidates
                .iter()
                .max_by(|a, b| better_first(a, b))
                .expect("m > 0 candidates");
        }
    }

    fn finish(mut self, own: u32) -> Vec<(f32, u32)> {
        self.compact();
        self.candidates.sort_unstable_by(better_first);
        self.candidates.resize(self.m, (-1.0, own));
        self.candidates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::kernels::cosine_block;
    use crate::strategy::kernels::synthetic::clustered_embeddings;

    /// Full sort of row i of the exact similarity matrix.
    fn naive(x: &Matrix, i: usize, m: usize) -> Vec<u32> {
        let sims = cosine_block(&x.take_rows(&[i]), x);
        let mut row: Vec<(f32, u32)> = sims
            .data
            .iter()
            .enumerate()
            .map(|(j, &s)| (s, j as u32))
            .collect();
        row.sort_by(better_first);
        row.into_iter().take(m).map(|p| p.1).collect()
    }

    #[test]
    fn matches_a_full_sort_across_tiles() {
        // Three blocks, the last one short: rows meet diagonal, upper (row side) and
        // transposed (column side) tiles; wide clusters so every row's buffer compacts often.
        let x = clustered_embeddings(2 * BLOCK + 17, 6, 5, 1.0, 11).embeddings;
        let g = knn_graph(&x, 9);
        assert_eq!((g.rows(), g.neighbours), (x.rows, 9));
        for i in [0, 1, BLOCK - 1, BLOCK, BLOCK + 3, 2 * BLOCK, x.rows - 1] {
            let got: Vec<u32> = g.row(i).map(|(j, _)| j as u32).collect();
            assert_eq!(got, naive(&x, i, 9), "row {i}");
            assert_eq!(got[0], i as u32, "a row is its own nearest neighbour");
        }
    }

    #[test]
    fn equal_similarities_keep_the_lower_indices_across_blocks() {
        // Identical rows in three blocks: rows of the last block hear of rows 0..3 only
        // through transposed tiles, after their own block offered its rows.
        let x = Matrix::from_rows(&vec![vec![1.0, 0.0]; 2 * BLOCK + 5]).unwrap();
        let g = knn_graph(&x, 3);
        for i in [0, 4, BLOCK + 1, x.rows - 1] {
            assert_eq!(
                g.row(i).map(|p| p.0).collect::<Vec<_>>(),
                vec![0, 1, 2],
                "row {i}"
            );
        }
    }

    #[test]
    fn top_m_does_not_depend_on_the_offer_order() {
        let sims: Vec<f32> = (0..40).map(|j| ((j * 7 % 11) as f32) * 0.1).collect();
        let mut forward = TopM::new(4);
        forward.scan(&sims, 0);
        let mut backward = TopM::new(4);
        for j in (0..40).rev() {
            backward.scan(&sims[j..j + 1], j as u32);
        }
        let want: Vec<(f32, u32)> = forward.finish(0);
        // Similarity 1.0 (j·7 ≡ 10 mod 11) at j = 3, 14, 25, 36: the four lowest indices win.
        assert_eq!(
            want.iter().map(|p| p.1).collect::<Vec<_>>(),
            vec![3, 14, 25, 36]
        );
        assert_eq!(backward.finish(0), want);
    }

    #[test]
    fn neighbours_are_capped_by_rows() {
        let x = Matrix::from_rows(&[vec![1.0, 0.0], vec![0.0, 1.0]]).unwrap();
        let g = knn_graph(&x, 64);
        assert_eq!(g.neighbours, 2);
        assert_eq!(g.row(1).collect::<Vec<_>>(), vec![(1, 1.0), (0, 0.0)]);
    }
}
