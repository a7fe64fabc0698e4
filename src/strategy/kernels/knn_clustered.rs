//! Exact k-NN by cluster pruning, for large pools of unit rows.
//!
//! Rows are grouped by a few Lloyd iterations into about √n clusters, each with a centre
//! direction and an angular radius (the largest angle from a member to the centre). For unit
//! vectors angles obey the triangle inequality, so any q in cluster Q and x in cluster P have
//! angle(q, x) ≥ angle(Q, P) − r_Q − r_P, hence cos(q, x) ≤ cos(max(0, that)). Each block of
//! query rows visits the clusters in order of that bound and stops once every row's m-th best
//! similarity beats the next bound: the answer is the same as scoring every pair. Clustered
//! pools skip most tiles; a pool without structure degrades to scoring every pair once per
//! direction.
use gemm::Parallelism;
use rayon::prelude::*;

use super::dense::gemm_abt;
use super::kmeans::lloyd;
use super::knn::TopM;
use crate::strategy::Matrix;

/// Query rows per task and candidate rows per tile: one 512 × 1024 f32 tile (2 MiB) per task.
const QUERY_BLOCK: usize = 512;
const CANDIDATE_BLOCK: usize = 1024;
/// Lloyd iterations for the grouping: it only has to be tight, not converged.
const GROUPING_ITERATIONS: usize = 4;
/// Slack on the bound, in angle (radians) and in cosine: together far above the f32 error of
/// the similarities (about 1e-5 at d = 384), so rounding never prunes a true neighbour.
const ANGLE_SLACK: f64 = 1e-3;
const COS_SLACK: f64 = 1e-4;

/// Every row's top-m, in row order.
pub(super) fn clustered_tops(x: &Matrix, m: usize) -> Vec<TopM> {
    let n = x.rows;
    let d = x.cols;
    let clusters = ((n as f64).sqrt() as usize).clamp(1, n);
    let stride = n / clusters;
    let start = x.take_rows(&(0..clusters).map(|c| c * stride).collect::<Vec<_>>());
    let grouping = lloyd(x, start, GROUPING_ITERATIONS);

    // Rows sorted by cluster (stable: ascending index inside a cluster).
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by_key(|&i| grouping.assignment[i as usize]);
    let mut span_start = vec![0usize; clusters + 1];
    for &c in &grouping.assignment {
        span_start[c + 1] += 1;
    }
    for c in 0..clusters {
        span_start[c + 1] += span_start[c];
    }
    let sorted = x.take_rows(&order.iter().map(|&i| i as usize).collect::<Vec<_>>());

    let directions: Vec<Vec<f64>> = (0..clusters)
        .map(|c| {
            let v: Vec<f64> = grouping
                .centroids
                .row(c)
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            v.into_iter()
                .map(|a| if norm > 0.0 { a / norm } else { 0.0 })
                .collect()
        })
        .collect();
    let dot =
        |a: &[f64], b: &[f32]| -> f64 { a.iter().zip(b).map(|(x, &y)| x * f64::from(y)).sum() };
    let radius: Vec<f64> = (0..clusters)
        .map(|c| {
            (span_start[c]..span_start[c + 1])
                .map(|r| dot(&directions[c], sorted.row(r)).clamp(-1.0, 1.0).acos())
                .fold(0.0, f64::max)
        })
        .collect();
    let occupied: Vec<usize> = (0..clusters)
        .filter(|&c| span_start[c + 1] > span_start[c])
        .collect();

    let mut tasks: Vec<(usize, usize, usize)> = Vec::new();
    for &c in &occupied {
        for first in (span_start[c]..span_start[c + 1]).step_by(QUERY_BLOCK) {
            tasks.push((c, first, (first + QUERY_BLOCK).min(span_start[c + 1])));
        }
    }
    let bar = crate::util::progress::bar(tasks.len() as u64, "knn graph");
    let blocks: Vec<Vec<TopM>> = tasks
        .par_iter()
        .map(|&(q, first, end)| {
            let mut tops: Vec<TopM> = (first..end).map(|_| TopM::new(m)).collect();
            let queries = &sorted.data[first * d..end * d];
            let mut visits: Vec<(f64, usize)> = occupied
                .iter()
                .map(|&p| {
                    let centre_angle = directions[q]
                        .iter()
                        .zip(&directions[p])
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
                        .clamp(-1.0, 1.0)
                        .acos();
                    let gap = centre_angle - radius[q] - radius[p] - ANGLE_SLACK;
                    (gap.max(0.0).cos() + COS_SLACK, p)
                })
                .collect();
            visits.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut tile = vec![0.0f32; (end - first) * CANDIDATE_BLOCK];
            for (bound, p) in visits {
                let weakest = tops
                    .iter_mut()
                    .map(|t| t.settled_threshold())
                    .fold(f32::INFINITY, f32::min);
                if f64::from(weakest) > bound {
                    break;
                }
                for c_first in (span_start[p]..span_start[p + 1]).step_by(CANDIDATE_BLOCK) {
                    let c_end = (c_first + CANDIDATE_BLOCK).min(span_start[p + 1]);
                    let w = c_end - c_first;
                    let tile = &mut tile[..(end - first) * w];
                    let candidates = &sorted.data[c_first * d..c_end * d];
                    gemm_abt(
                        queries,
                        end - first,
                        candidates,
                        w,
                        d,
                        tile,
                        Parallelism::None,
                    );
                    let index = &order[c_first..c_end];
                    for (top, sims) in tops.iter_mut().zip(tile.chunks_exact(w)) {
                        top.scan_indexed(sims, index);
                    }
                }
            }
            bar.inc(1);
            tops
        })
        .collect();
    bar.finish_and_clear();

    let mut by_row: Vec<Option<TopM>> = (0..n).map(|_| None).collect();
    for ((_, first, _), tops) in tasks.iter().zip(blocks) {
        for (offset, top) in tops.into_iter().enumerate() {
            by_row[order[first + offset] as usize] = Some(top);
        }
    }
    by_row
        .into_iter()
        .map(|t| t.expect("every row belongs to one query block"))
        .collect()
}
