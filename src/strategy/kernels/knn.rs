//! Exact k-nearest-neighbour graph by cosine, built tile by tile so memory stays flat: the
//! sparse similarity graph behind facility location on large pools.
use gemm::Parallelism;
use rayon::prelude::*;

use super::dense::gemm_abt;
use crate::strategy::Matrix;

/// Query rows per rayon task.
const ROW_BLOCK: usize = 256;
/// Pool rows per tile: a task holds one ROW_BLOCK × COL_BLOCK f32 tile (2 MiB).
const COL_BLOCK: usize = 2048;

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
/// O(n²·d) flops through gemm, memory O(n·neighbours). A row whose similarities are all NaN
/// is padded with itself at cosine −1.
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
    let mut index = vec![0u32; n * m];
    let mut similarity = vec![0.0f32; n * m];
    if m == 0 {
        return KnnGraph {
            neighbours: m,
            index,
            similarity,
        };
    }
    let d = x.cols;
    let blocks = n.div_ceil(ROW_BLOCK);
    let bar = crate::util::progress::bar(blocks as u64, "knn graph");
    if blocks < 16 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    index
        .par_chunks_mut(ROW_BLOCK * m)
        .zip(similarity.par_chunks_mut(ROW_BLOCK * m))
        .enumerate()
        .for_each(|(block, (index, similarity))| {
            let first = block * ROW_BLOCK;
            let rows = index.len() / m;
            let queries = &x.data[first * d..(first + rows) * d];
            let mut tops: Vec<TopM> = (0..rows).map(|_| TopM::new(m)).collect();
            let mut tile = vec![0.0f32; rows * COL_BLOCK.min(n)];
            for col_first in (0..n).step_by(COL_BLOCK) {
                let cols = COL_BLOCK.min(n - col_first);
                let tile = &mut tile[..rows * cols];
                let pool = &x.data[col_first * d..(col_first + cols) * d];
                gemm_abt(queries, rows, pool, cols, d, tile, Parallelism::None);
                for (top, sims) in tops.iter_mut().zip(tile.chunks_exact(cols)) {
                    top.scan(sims, col_first as u32);
                }
            }
            for (r, top) in tops.into_iter().enumerate() {
                let best = top.finish((first + r) as u32);
                for (slot, (s, j)) in best.into_iter().enumerate() {
                    index[r * m + slot] = j;
                    similarity[r * m + slot] = s;
                }
            }
            bar.inc(1);
        });
    bar.finish_and_clear();
    KnnGraph {
        neighbours: m,
        index,
        similarity,
    }
}

/// The m best `(similarity, index)` pairs seen so far. Candidates arrive in ascending index,
/// so one that merely equals the current m-th best similarity can never beat it.
struct TopM {
    m: usize,
    candidates: Vec<(f32, u32)>,
    threshold: f32,
}

fn better_first(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

impl TopM {
    fn new(m: usize) -> Self {
        Self {
            m,
            candidates: Vec::with_capacity(2 * m),
            threshold: f32::NEG_INFINITY,
        }
    }

    #[inline]
    fn scan(&mut self, sims: &[f32], offset: u32) {
        for (j, &s) in sims.iter().enumerate() {
            if s > self.threshold {
                self.candidates.push((s, offset + j as u32));
                if self.candidates.len() == 2 * self.m {
                    self.compact();
                }
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
            self.threshold = self
                .candidates
                .iter()
                .map(|c| c.0)
                .fold(f32::INFINITY, f32::min);
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
        // More rows than one tile in both directions; wide clusters so the candidate buffer
        // fills and compacts many times per row.
        let x = clustered_embeddings(COL_BLOCK + ROW_BLOCK + 17, 6, 5, 1.0, 11).embeddings;
        let g = knn_graph(&x, 9);
        assert_eq!((g.rows(), g.neighbours), (x.rows, 9));
        for i in [0, 1, ROW_BLOCK, COL_BLOCK + 3, x.rows - 1] {
            let got: Vec<u32> = g.row(i).map(|(j, _)| j as u32).collect();
            assert_eq!(got, naive(&x, i, 9), "row {i}");
            assert_eq!(got[0], i as u32, "a row is its own nearest neighbour");
        }
    }

    #[test]
    fn equal_similarities_keep_the_lower_indices() {
        let x = Matrix::from_rows(&vec![vec![1.0, 0.0]; 6]).unwrap();
        let g = knn_graph(&x, 3);
        for i in 0..6 {
            assert_eq!(g.row(i).map(|p| p.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        }
    }

    #[test]
    fn neighbours_are_capped_by_rows() {
        let x = Matrix::from_rows(&[vec![1.0, 0.0], vec![0.0, 1.0]]).unwrap();
        let g = knn_graph(&x, 64);
        assert_eq!(g.neighbours, 2);
        assert_eq!(g.row(1).collect::<Vec<_>>(), vec![(1, 1.0), (0, 0.0)]);
    }
}
