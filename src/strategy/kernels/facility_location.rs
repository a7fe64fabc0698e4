//! Facility location (Bhatt et al. 2024): maximise F(S) = Σ_{i∈U} max_{j∈S∪L} sim(i, j) with
//! sim = (1 + cos)/2 ∈ [0, 1], by lazy greedy.
//!
//! Small pools use the exact objective: the first gains come from gemm tiles, each later
//! re-evaluation from one matrix–vector product, so no pool × pool matrix is ever held. Large
//! pools use a sparse k-NN graph: sim(i, j) counts only when j is among i's `neighbours`
//! nearest rows; a gain then touches only the rows that list j.
use gemm::Parallelism;
use rayon::prelude::*;

use super::cosine::max_similarity_to;
use super::dense::{gemm_abt, matvec};
use super::knn::knn_graph;
use super::lazy_greedy::{lazy_greedy, Gain, GreedyObjective};
use super::ties::{cosine_sum_error, f64_sum_error};
use crate::strategy::Matrix;

/// Largest similarity tile the exact mode's first pass holds at once (all tasks together),
/// unless the memory cap is lower.
const EXACT_TILE_BYTES: usize = 64 << 20;

#[derive(Clone, Debug, PartialEq)]
pub struct FacilityLocationOptions {
    /// Pools up to this size use the exact objective; larger ones the sparse k-NN graph.
    pub exact_max_items: usize,
    /// Neighbours per item in the sparse graph.
    pub neighbours: usize,
    /// Bound on the similarity tiles held at once in exact mode. (Sparse mode holds its graph,
    /// rows × neighbours × 8 bytes, plus a 2 MiB tile per thread.)
    pub memory_cap_bytes: usize,
}

impl Default for FacilityLocationOptions {
    fn default() -> Self {
        Self {
            exact_max_items: 20_000,
            neighbours: 64,
            memory_cap_bytes: 1 << 30,
        }
    }
}

/// Pick `min(k, pool.rows)` pool positions greedily; items already covered by `labeled` add
/// nothing. Ties, rounding included, go to the lower position; once everything is covered the
/// remaining picks (gain 0) come in position order.
///
/// # Panics
/// If `labeled` has rows and a different width from `pool`.
pub fn facility_location_greedy(
    pool: &Matrix,
    labeled: &Matrix,
    k: usize,
    opts: &FacilityLocationOptions,
) -> Vec<usize> {
    let k = k.min(pool.rows);
    if k == 0 {
        return Vec::new();
    }
    let cover: Vec<f64> = if labeled.rows > 0 {
        max_similarity_to(labeled, pool)
            .into_iter()
            .map(similarity)
            .collect()
    } else {
        vec![0.0; pool.rows]
    };
    let picks = if pool.rows <= opts.exact_max_items {
        let mut objective = Exact {
            pool,
            cover,
            last_column: None,
        };
        let initial = objective.all_gains(opts.memory_cap_bytes);
        lazy_greedy(&mut objective, &initial, k)
    } else {
        let mut objective = Sparse::new(pool, opts.neighbours, cover);
        let initial: Vec<Gain> = (0..pool.rows)
            .into_par_iter()
            .map(|j| objective.gain_of(j))
            .collect();
        lazy_greedy(&mut objective, &initial, k)
    };
    picks.into_iter().map(|(item, _)| item).collect()
}

#[inline]
fn similarity(cos: f32) -> f64 {
    (1.0 + f64::from(cos)) * 0.5
}

/// Σ of the positive terms `(sim − covered)⁺`, with its rounding bound: each positive term
/// holds two cosines (sim and the cover), counted twice because a term exactly 0 may round to
/// either side and whichever twin keeps it positive pays for both; plus the f64 sum's own
/// error. Neither grows as the cover does.
fn gain_of_terms(terms: impl Iterator<Item = f64>, d: usize) -> Gain {
    let (mut value, mut positive) = (0.0f64, 0usize);
    for t in terms {
        if t > 0.0 {
            value += t;
            positive += 1;
        }
    }
    Gain {
        value,
        slack: cosine_sum_error(d, 4 * positive) + f64_sum_error(positive) * value,
    }
}

/// Gain of a candidate whose similarities to every pool row are `column`.
fn gain_from(column: &[f32], cover: &[f64], d: usize) -> Gain {
    gain_of_terms(
        column
            .iter()
            .zip(cover)
            .map(|(&c, &covered)| similarity(c) - covered),
        d,
    )
}

struct Exact<'a> {
    pool: &'a Matrix,
    cover: Vec<f64>,
    /// The column computed by the latest `gain`: usually the next pick's, reused by `take`.
    last_column: Option<(usize, Vec<f32>)>,
}

impl Exact<'_> {
    fn column(&mut self, item: usize) -> Vec<f32> {
        match self.last_column.take() {
            Some((i, column)) if i == item => column,
            _ => matvec(self.pool, self.pool.row(item)),
        }
    }

    /// Every candidate's gain, from candidate-block × pool tiles.
    fn all_gains(&self, memory_cap_bytes: usize) -> Vec<Gain> {
        let n = self.pool.rows;
        let d = self.pool.cols;
        let budget = EXACT_TILE_BYTES.min(memory_cap_bytes);
        let per_task = budget / rayon::current_num_threads().max(1);
        let block = (per_task / (4 * n)).clamp(1, 256);
        let mut gains = vec![
            Gain {
                value: 0.0,
                slack: 0.0
            };
            n
        ];
        gains
            .par_chunks_mut(block)
            .enumerate()
            .for_each(|(b, gains)| {
                let first = b * block;
                let candidates = &self.pool.data[first * d..(first + gains.len()) * d];
                let mut tile = vec![0.0f32; gains.len() * n];
                gemm_abt(
                    candidates,
                    gains.len(),
                    &self.pool.data,
                    n,
                    d,
                    &mut tile,
                    Parallelism::None,
                );
                for (g, column) in gains.iter_mut().zip(tile.chunks_exact(n)) {
                    *g = gain_from(column, &self.cover, self.pool.cols);
                }
            });
        gains
    }
}

impl GreedyObjective for Exact<'_> {
    fn gain(&mut self, item: usize) -> Gain {
        let column = self.column(item);
        let gain = gain_from(&column, &self.cover, self.pool.cols);
        self.last_column = Some((item, column));
        gain
    }

    fn take(&mut self, item: usize) {
        let column = self.column(item);
        for (covered, c) in self.cover.iter_mut().zip(column) {
            *covered = covered.max(similarity(c));
        }
    }
}

/// The k-NN graph turned around: for every candidate j, the rows that list j as a neighbour.
struct Sparse {
    /// Rows listing j are `listed_by[offsets[j]..offsets[j + 1]]`.
    offsets: Vec<usize>,
    listed_by: Vec<(u32, f32)>,
    cover: Vec<f64>,
    /// Width of the embeddings, for the gains' rounding bounds.
    d: usize,
}

impl Sparse {
    fn new(pool: &Matrix, neighbours: usize, cover: Vec<f64>) -> Self {
        let graph = knn_graph(pool, neighbours);
        let mut offsets = vec![0usize; pool.rows + 1];
        for &j in &graph.index {
            offsets[j as usize + 1] += 1;
        }
        for j in 0..pool.rows {
            offsets[j + 1] += offsets[j];
        }
        let mut fill = offsets.clone();
        let mut listed_by = vec![(0u32, 0.0f32); graph.index.len()];
        for i in 0..graph.rows() {
            for (j, cos) in graph.row(i) {
                listed_by[fill[j]] = (i as u32, similarity(cos) as f32);
                fill[j] += 1;
            }
        }
        Self {
            offsets,
            listed_by,
            cover,
            d: pool.cols,
        }
    }

    fn listing(&self, item: usize) -> &[(u32, f32)] {
        &self.listed_by[self.offsets[item]..self.offsets[item + 1]]
    }

    fn gain_of(&self, item: usize) -> Gain {
        gain_of_terms(
            self.listing(item)
                .iter()
                .map(|&(i, s)| f64::from(s) - self.cover[i as usize]),
            self.d,
        )
    }
}

impl GreedyObjective for Sparse {
    fn gain(&mut self, item: usize) -> Gain {
        self.gain_of(item)
    }

    fn take(&mut self, item: usize) {
        for k in self.offsets[item]..self.offsets[item + 1] {
            let (i, s) = self.listed_by[k];
            let covered = &mut self.cover[i as usize];
            *covered = covered.max(f64::from(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::kernels::cosine_block;
    use crate::strategy::kernels::knn::knn_graph;
    use crate::strategy::kernels::synthetic::clustered_embeddings;

    fn sparse_opts(neighbours: usize) -> FacilityLocationOptions {
        FacilityLocationOptions {
            exact_max_items: 0,
            neighbours,
            ..Default::default()
        }
    }

    /// Plain greedy over an explicit similarity matrix (f64 sums): the lowest index whose gain
    /// is within both rounding bounds (`gain_of_terms`, width `d`) of the best gain.
    fn naive(sims: &[Vec<f64>], cover: &[f64], k: usize, d: usize) -> Vec<usize> {
        let n = sims.len();
        let mut cover = cover.to_vec();
        let mut picks = Vec::new();
        for _ in 0..k {
            let gains: Vec<Option<Gain>> = (0..n)
                .map(|j| {
                    (!picks.contains(&j)).then(|| {
                        let terms = (0..n).map(|i| sims[i][j] - cover[i]);
                        gain_of_terms(terms, d)
                    })
                })
                .collect();
            let best = gains
                .iter()
                .flatten()
                .fold(None::<Gain>, |b, g| match b {
                    Some(b) if b.value >= g.value => Some(b),
                    _ => Some(*g),
                })
                .unwrap();
            let pick = (0..n)
                .find(|&j| gains[j].is_some_and(|g| g.value + g.slack >= best.value - best.slack))
                .unwrap();
            picks.push(pick);
            for i in 0..n {
                cover[i] = cover[i].max(sims[i][pick]);
            }
        }
        picks
    }

    fn one_per_cluster(picks: &[usize], cluster: &[usize], clusters: usize) {
        let mut seen: Vec<usize> = picks.iter().map(|&p| cluster[p]).collect();
        seen.sort();
        assert_eq!(seen, (0..clusters).collect::<Vec<_>>(), "picks {picks:?}");
    }

    #[test]
    fn picks_one_item_per_cluster_exact_and_sparse() {
        let data = clustered_embeddings(120, 16, 4, 0.1, 3);
        let none = Matrix::zeros(0, 16);
        let exact = facility_location_greedy(&data.embeddings, &none, 4, &Default::default());
        one_per_cluster(&exact, &data.cluster, 4);
        let sparse = facility_location_greedy(&data.embeddings, &none, 4, &sparse_opts(8));
        one_per_cluster(&sparse, &data.cluster, 4);
    }

    #[test]
    fn clusters_covered_by_labeled_items_are_skipped() {
        let data = clustered_embeddings(120, 16, 4, 0.1, 3);
        let first_of_cluster_0 = data.cluster.iter().position(|&c| c == 0).unwrap();
        let labeled = data.embeddings.take_rows(&[first_of_cluster_0]);
        for opts in [FacilityLocationOptions::default(), sparse_opts(8)] {
            let picks = facility_location_greedy(&data.embeddings, &labeled, 3, &opts);
            let mut seen: Vec<usize> = picks.iter().map(|&p| data.cluster[p]).collect();
            seen.sort();
            assert_eq!(seen, vec![1, 2, 3], "{opts:?}");
        }
    }

    #[test]
    fn lazy_greedy_equals_naive_greedy_on_random_data() {
        let data = clustered_embeddings(70, 8, 3, 1.5, 21);
        let x = &data.embeddings;
        let labeled = clustered_embeddings(5, 8, 3, 1.5, 22).embeddings;
        let cos = cosine_block(x, x);
        let sims: Vec<Vec<f64>> = (0..x.rows)
            .map(|i| cos.row(i).iter().map(|&c| similarity(c)).collect())
            .collect();
        let labeled_cover: Vec<f64> = cosine_block(x, &labeled)
            .data
            .chunks(labeled.rows)
            .map(|r| similarity(r.iter().cloned().fold(f32::MIN, f32::max)))
            .collect();
        let k = 30;
        let none = Matrix::zeros(0, 8);
        let opts = FacilityLocationOptions::default();
        assert_eq!(
            facility_location_greedy(x, &none, k, &opts),
            naive(&sims, &vec![0.0; 70], k, 8)
        );
        assert_eq!(
            facility_location_greedy(x, &labeled, k, &opts),
            naive(&sims, &labeled_cover, k, 8)
        );

        // Sparse mode against the same greedy on the k-NN-restricted matrix.
        let graph = knn_graph(x, 10);
        let mut restricted = vec![vec![0.0; x.rows]; x.rows];
        for (i, row) in restricted.iter_mut().enumerate() {
            for (j, c) in graph.row(i) {
                row[j] = f64::from(similarity(c) as f32);
            }
        }
        assert_eq!(
            facility_location_greedy(x, &none, k, &sparse_opts(10)),
            naive(&restricted, &vec![0.0; 70], k, 8)
        );
    }

    #[test]
    fn tiny_memory_cap_still_gives_the_same_picks() {
        let data = clustered_embeddings(50, 8, 3, 0.8, 5);
        let none = Matrix::zeros(0, 8);
        let roomy = facility_location_greedy(&data.embeddings, &none, 10, &Default::default());
        let tight = FacilityLocationOptions {
            memory_cap_bytes: 1,
            ..Default::default()
        };
        assert_eq!(
            facility_location_greedy(&data.embeddings, &none, 10, &tight),
            roomy
        );
    }
}
