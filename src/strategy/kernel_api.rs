//! The native kernels (`strategy::kernels`) as script functions, plus the small glue ones
//! strategies need (distance to an assigned centroid, per-group capped top-k, mean JSD).
use crate::strategy::context::{Ctx, GenerationsRef};
use crate::strategy::kernels::{self, FacilityLocationOptions, KMeansResult};
use crate::strategy::text::Docs;
use crate::strategy::types::{
    argsort_desc, err, positions, FloatVec, IntVec, MatrixRef, RhaiResult,
};
use crate::strategy::Matrix;
use rhai::{Dynamic, Engine, Map, FLOAT, INT};
use std::sync::Arc;

thread_local! {
    /// Nanoseconds spent inside native kernels on this thread (scripts run on one thread).
    static KERNEL_NANOS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Run a kernel, adding its wall time to this thread's kernel clock.
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let out = f();
    let ns = t.elapsed().as_nanos() as u64;
    KERNEL_NANOS.with(|c| c.set(c.get() + ns));
    out
}

/// Reset this thread's kernel clock, returning the seconds it held.
pub fn take_kernel_seconds() -> f64 {
    KERNEL_NANOS.with(|c| c.replace(0)) as f64 * 1e-9
}

/// A k-means result as a script sees it.
#[derive(Clone)]
pub struct KMeansRef(pub Arc<KMeansResult>);

fn nonneg(x: INT, what: &str) -> RhaiResult<usize> {
    if x < 0 {
        return err(format!("{what} must not be negative (got {x})"));
    }
    Ok(x as usize)
}

/// A labeled set with no rows still needs the pool's width for the kernels.
fn as_set(labeled: &MatrixRef, cols: usize) -> RhaiResult<Arc<Matrix>> {
    if labeled.0.rows == 0 {
        return Ok(Arc::new(Matrix::zeros(0, cols)));
    }
    if labeled.0.cols != cols {
        return err(format!(
            "embedding widths differ: {} vs {} columns",
            labeled.0.cols, cols
        ));
    }
    Ok(labeled.0.clone())
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut d, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        d += (*x as f64) * (*y as f64);
        na += (*x as f64).powi(2);
        nb += (*y as f64).powi(2);
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    d / (na.sqrt() * nb.sqrt())
}

/// Positions in descending score order, at most `cap` per group; if the caps leave fewer than
/// `k`, the best remaining positions fill up. Ties go to the lower position.
pub fn capped_topk(scores: &[f64], groups: &[i64], k: usize, cap: usize) -> Vec<usize> {
    let order = argsort_desc(scores);
    let mut taken = vec![false; scores.len()];
    let mut per_group = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(k);
    for &i in &order {
        if out.len() == k {
            break;
        }
        let c = per_group.entry(groups[i]).or_insert(0usize);
        if *c < cap {
            *c += 1;
            taken[i] = true;
            out.push(i);
        }
    }
    for &i in &order {
        if out.len() == k {
            break;
        }
        if !taken[i] {
            out.push(i);
        }
    }
    out
}

/// Per row of `h`, the mean Jensen–Shannon divergence to the rows of `set`, each row first
/// normalised to sum 1; 0 when `set` is empty.
pub fn mean_jsd_to(h: &Matrix, set: &Matrix) -> Vec<f64> {
    let norm = |r: &[f32]| -> Vec<f64> {
        let s: f64 = r.iter().map(|&x| x.max(0.0) as f64).sum();
        if s > 0.0 {
            r.iter().map(|&x| x.max(0.0) as f64 / s).collect()
        } else {
            vec![1.0 / r.len().max(1) as f64; r.len()]
        }
    };
    let set_rows: Vec<Vec<f64>> = (0..set.rows).map(|j| norm(set.row(j))).collect();
    (0..h.rows)
        .map(|i| {
            if set_rows.is_empty() {
                return 0.0;
            }
            let p = norm(h.row(i));
            set_rows
                .iter()
                .map(|q| kernels::jensen_shannon(&p, q))
                .sum::<f64>()
                / set_rows.len() as f64
        })
        .collect()
}

fn facility_options(o: &Map) -> RhaiResult<FacilityLocationOptions> {
    let mut opts = FacilityLocationOptions::default();
    for (key, v) in o {
        let n = v.as_int().map_err(|t| {
            format!("facility_location option `{key}`: expected an integer, got {t}")
        })?;
        let n = nonneg(n, key)?;
        match key.as_str() {
            "exact_max_items" => opts.exact_max_items = n,
            "neighbours" => opts.neighbours = n.max(1),
            "memory_cap_mb" => opts.memory_cap_bytes = n << 20,
            other => {
                return err(format!(
                    "unknown facility_location option `{other}`: use exact_max_items, neighbours, memory_cap_mb"
                ))
            }
        }
    }
    Ok(opts)
}

pub fn register(engine: &mut Engine) {
    register_similarity(engine);
    register_selection(engine);
    register_text_kernels(engine);
}

fn register_similarity(engine: &mut Engine) {
    engine
        .register_fn(
            "cosine",
            |a: &mut MatrixRef, b: MatrixRef| -> RhaiResult<MatrixRef> {
                if a.0.rows == 0 || b.0.rows == 0 {
                    return Ok(MatrixRef::new(Matrix::zeros(a.0.rows, b.0.rows)));
                }
                if a.0.cols != b.0.cols {
                    return err(format!(
                        "cosine: rows of the first matrix have {} values, rows of the second {}: \
                         compare embeddings of the same model",
                        a.0.cols, b.0.cols
                    ));
                }
                Ok(MatrixRef::new(timed(|| kernels::cosine_block(&a.0, &b.0))))
            },
        )
        // Per item (row of self), the largest cosine to any row of `set` (−1 when empty).
        .register_fn(
            "max_similarity_to",
            |items: &mut MatrixRef, set: MatrixRef| -> RhaiResult<FloatVec> {
                let set = as_set(&set, items.0.cols)?;
                Ok(FloatVec::new(
                    timed(|| kernels::max_similarity_to(&set, &items.0))
                        .into_iter()
                        .map(f64::from)
                        .collect(),
                ))
            },
        )
        .register_fn("mean_jsd_to", |h: &mut MatrixRef, set: MatrixRef| {
            FloatVec::new(timed(|| mean_jsd_to(&h.0, &set.0)))
        });

    engine.register_type_with_name::<KMeansRef>("KMeans");
    engine
        .register_fn(
            "kmeans",
            |x: MatrixRef, k: INT, seed: INT, max_iter: INT| -> RhaiResult<KMeansRef> {
                let k = nonneg(k, "kmeans k")?;
                if k == 0 || x.0.rows == 0 {
                    return err("kmeans needs k ≥ 1 and at least one row");
                }
                let it = nonneg(max_iter, "kmeans max_iter")?;
                Ok(KMeansRef(Arc::new(timed(|| {
                    kernels::kmeans(&x.0, k, seed as u64, it)
                }))))
            },
        )
        .register_fn("assignment", |r: &mut KMeansRef| {
            IntVec::from_usize(&r.0.assignment)
        })
        .register_fn("centroids", |r: &mut KMeansRef| {
            MatrixRef::new(r.0.centroids.clone())
        })
        .register_fn("iterations", |r: &mut KMeansRef| r.0.iterations as INT)
        // Per non-empty cluster, the position of the item nearest its centroid.
        .register_fn(
            "nearest",
            |r: &mut KMeansRef, x: MatrixRef| -> RhaiResult<IntVec> {
                if x.0.rows != r.0.assignment.len() || x.0.cols != r.0.centroids.cols {
                    return err("KMeans.nearest: the matrix is not the one clustered");
                }
                Ok(IntVec::from_usize(&timed(|| {
                    kernels::nearest_to_centroids(&x.0, &r.0)
                })))
            },
        )
        // Per item, 1 − cos(item, centroid of its cluster).
        .register_fn(
            "distance_to_centroid",
            |r: &mut KMeansRef, x: MatrixRef| -> RhaiResult<FloatVec> {
                if x.0.rows != r.0.assignment.len() {
                    return err("distance_to_centroid: the matrix is not the one clustered");
                }
                Ok(FloatVec::new(
                    (0..x.0.rows)
                        .map(|i| 1.0 - cosine(x.0.row(i), r.0.centroids.row(r.0.assignment[i])))
                        .collect(),
                ))
            },
        );
}

fn register_selection(engine: &mut Engine) {
    engine
        .register_fn(
            "k_center_greedy",
            |pool: MatrixRef, lab: MatrixRef, k: INT| -> RhaiResult<IntVec> {
                let set = as_set(&lab, pool.0.cols)?;
                let k = nonneg(k, "k")?;
                Ok(IntVec::from_usize(&timed(|| {
                    kernels::k_center_greedy(&pool.0, &set, k)
                })))
            },
        )
        .register_fn(
            "idds_greedy",
            |pool: MatrixRef, lab: MatrixRef, k: INT, lambda: FLOAT| -> RhaiResult<IntVec> {
                let set = as_set(&lab, pool.0.cols)?;
                let k = nonneg(k, "k")?;
                Ok(IntVec::from_usize(&timed(|| {
                    kernels::idds_greedy(&pool.0, &set, k, lambda as f32)
                })))
            },
        )
        .register_fn(
            "facility_location_greedy",
            |pool: MatrixRef, lab: MatrixRef, k: INT, o: Map| -> RhaiResult<IntVec> {
                let set = as_set(&lab, pool.0.cols)?;
                let opts = facility_options(&o)?;
                let k = nonneg(k, "k")?;
                Ok(IntVec::from_usize(&timed(|| {
                    kernels::facility_location_greedy(&pool.0, &set, k, &opts)
                })))
            },
        )
        .register_fn(
            "graph_cut_greedy",
            |pool: MatrixRef, k: INT, lambda: FLOAT| -> RhaiResult<IntVec> {
                let k = nonneg(k, "k")?;
                Ok(IntVec::from_usize(&timed(|| {
                    kernels::graph_cut_greedy(&pool.0, k, lambda as f32)
                })))
            },
        )
        .register_fn(
            "capped_topk",
            |s: FloatVec, groups: IntVec, k: INT, cap: INT| -> RhaiResult<IntVec> {
                if s.0.len() != groups.0.len() {
                    return err("capped_topk: scores and groups differ in length");
                }
                Ok(IntVec::from_usize(&capped_topk(
                    &s.0,
                    &groups.0,
                    nonneg(k, "k")?,
                    nonneg(cap, "cap")?.max(1),
                )))
            },
        );
}

fn register_text_kernels(engine: &mut Engine) {
    engine
        // #{positions, scores}: greedy picks with the score each had when picked.
        .register_fn(
            "ngf_smp_greedy",
            |pool: Docs, lab: Docs, k: INT, order: INT| -> RhaiResult<Map> {
                let k = nonneg(k, "k")?;
                let order = nonneg(order, "max_order")?.max(1);
                let picks = timed(|| kernels::ngf_smp_greedy(&pool.0, &lab.0, k, order));
                let mut m = Map::new();
                m.insert(
                    "positions".into(),
                    Dynamic::from(IntVec::new(picks.iter().map(|p| p.0 as i64).collect())),
                );
                m.insert(
                    "scores".into(),
                    Dynamic::from(FloatVec::new(picks.iter().map(|p| p.1).collect())),
                );
                Ok(m)
            },
        )
        .register_fn(
            "delfy_scores",
            |pool: Docs, lab: Docs, l1: FLOAT, l2: FLOAT| {
                FloatVec::new(timed(|| kernels::delfy_scores(&pool.0, &lab.0, l1, l2)))
            },
        )
        .register_fn(
            "jensen_shannon",
            |p: FloatVec, q: FloatVec| -> RhaiResult<FLOAT> {
                if p.0.len() != q.0.len() {
                    return err("jensen_shannon: distributions differ in length");
                }
                Ok(kernels::jensen_shannon(&p.0, &q.0))
            },
        )
        // Per item, the mean pairwise (1 − BLEU)² over its samples (BLEUVar).
        .register_fn("bleu_variance", |c: &mut Ctx, g: GenerationsRef| {
            let samples: Vec<Vec<String>> =
                g.0.per_item
                    .iter()
                    .map(|s| s.iter().map(|r| r.text.clone()).collect())
                    .collect();
            let host = c.host();
            let bleu = |h: &str, r: &[&str]| host.sentence_bleu(h, r);
            FloatVec::new(timed(|| kernels::bleu_variance(&samples, &bleu)))
        })
        .register_fn("take", |d: &mut Docs, idx: IntVec| -> RhaiResult<Docs> {
            let p = positions(&idx, d.0.len(), "Docs.take")?;
            Ok(Docs(Arc::new(p.iter().map(|&i| d.0[i].clone()).collect())))
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_topk_spreads_over_groups_then_fills() {
        let s = [0.9, 0.8, 0.7, 0.1, 0.05];
        let g = [0, 0, 0, 1, 2];
        assert_eq!(capped_topk(&s, &g, 3, 1), vec![0, 3, 4]);
        assert_eq!(capped_topk(&s, &g, 4, 1), vec![0, 3, 4, 1]);
    }
}
