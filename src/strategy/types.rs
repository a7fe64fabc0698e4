//! Vectors and matrices as Rhai values: Arc-backed, so passing them around scripts copies a
//! pointer, and every element-wise operation runs natively.
use crate::strategy::sandbox::within_data_limits;
use crate::strategy::Matrix;
use rhai::{Array, Dynamic, Engine, EvalAltResult, NativeCallContext, FLOAT, INT};
use std::sync::Arc;

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// One score per item.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FloatVec(pub Arc<Vec<f64>>);

/// Ids or positions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntVec(pub Arc<Vec<i64>>);

/// An embedding matrix, one row per item.
#[derive(Clone, Debug)]
pub struct MatrixRef(pub Arc<Matrix>);

impl FloatVec {
    pub fn new(v: Vec<f64>) -> Self {
        Self(Arc::new(v))
    }
}

impl IntVec {
    pub fn new(v: Vec<i64>) -> Self {
        Self(Arc::new(v))
    }
    pub fn from_usize(v: &[usize]) -> Self {
        Self::new(v.iter().map(|&i| i as i64).collect())
    }
}

impl MatrixRef {
    pub fn new(m: Matrix) -> Self {
        Self(Arc::new(m))
    }
}

pub fn err<T>(msg: impl Into<String>) -> RhaiResult<T> {
    Err(msg.into().into())
}

/// The most elements a script may ask a native vector to hold (2^27: 1 GiB of floats). The
/// sandbox's `max_array_size` limits Rhai arrays only; without this, `zeros(1 << 62)` would
/// abort the process on allocation instead of failing the script with its line.
pub const MAX_VECTOR_LEN: usize = 1 << 27;

/// `n` as a vector length: negative counts as 0, above [`MAX_VECTOR_LEN`] is an error.
pub fn vector_len(n: INT, what: &str) -> RhaiResult<usize> {
    let n = n.max(0) as u64;
    if n > MAX_VECTOR_LEN as u64 {
        return err(format!(
            "{what}: {n} elements is more than the {MAX_VECTOR_LEN} a vector may hold; \
             pools are far smaller, so check the length passed"
        ));
    }
    Ok(n as usize)
}

/// Check that `i` is a valid position in a sequence of length `len`.
pub fn position(i: INT, len: usize, what: &str) -> RhaiResult<usize> {
    if i < 0 || i as usize >= len {
        let valid = match len {
            0 => "it is empty, so no position is".to_string(),
            1 => "only position 0 is".to_string(),
            n => format!("positions 0 to {} are", n - 1),
        };
        return err(format!(
            "{what}: position {i} is outside 0..{len} ({valid} valid; positions count from 0)"
        ));
    }
    Ok(i as usize)
}

pub fn positions(idx: &IntVec, len: usize, what: &str) -> RhaiResult<Vec<usize>> {
    idx.0.iter().map(|&i| position(i, len, what)).collect()
}

/// Indices of the `k` largest values, largest first; ties go to the lower index; NaN ranks last.
pub fn topk(v: &[f64], k: usize) -> Vec<usize> {
    let mut order = argsort_desc(v);
    order.truncate(k);
    order
}

/// Indices ordered by descending value, ties by ascending index, NaN last.
pub fn argsort_desc(v: &[f64]) -> Vec<usize> {
    argsort(v, true)
}

/// Indices ordered by ascending value, ties by ascending index, NaN last.
pub fn argsort_asc(v: &[f64]) -> Vec<usize> {
    argsort(v, false)
}

fn argsort(v: &[f64], descending: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (v[a], v[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => a.cmp(&b),
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if descending => y.total_cmp(&x).then(a.cmp(&b)),
            _ => x.total_cmp(&y).then(a.cmp(&b)),
        }
    });
    order
}

/// Min-max normalise to [0, 1]; a constant vector becomes all zeros.
pub fn minmax(v: &[f64]) -> Vec<f64> {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = hi - lo;
    v.iter()
        .map(|x| if span > 0.0 { (x - lo) / span } else { 0.0 })
        .collect()
}

fn zscore(v: &[f64]) -> Vec<f64> {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    v.iter()
        .map(|x| if sd > 0.0 { (x - mean) / sd } else { 0.0 })
        .collect()
}

fn zip_with(a: &FloatVec, b: &FloatVec, op: &str, f: fn(f64, f64) -> f64) -> RhaiResult<FloatVec> {
    if a.0.len() != b.0.len() {
        return err(format!(
            "FloatVec {op}: lengths differ ({} vs {})",
            a.0.len(),
            b.0.len()
        ));
    }
    Ok(FloatVec::new(
        a.0.iter().zip(b.0.iter()).map(|(x, y)| f(*x, *y)).collect(),
    ))
}

fn map(a: &FloatVec, f: impl Fn(f64) -> f64) -> FloatVec {
    FloatVec::new(a.0.iter().map(|x| f(*x)).collect())
}

fn to_float(d: &Dynamic, what: &str) -> RhaiResult<f64> {
    if let Some(f) = d.clone().try_cast::<FLOAT>() {
        return Ok(f);
    }
    if let Some(i) = d.clone().try_cast::<INT>() {
        return Ok(i as f64);
    }
    err(format!("{what}: expected a number, got {}", d.type_name()))
}

pub fn array_to_floats(a: &Array, what: &str) -> RhaiResult<Vec<f64>> {
    a.iter().map(|d| to_float(d, what)).collect()
}

pub fn array_to_strings(a: &Array, what: &str) -> RhaiResult<Vec<String>> {
    a.iter()
        .map(|d| {
            d.clone()
                .into_immutable_string()
                .map(|s| s.to_string())
                .map_err(|t| format!("{what}: expected a string, got {t}").into())
        })
        .collect()
}

pub fn strings_to_array(v: &[String]) -> Array {
    v.iter().map(|s| Dynamic::from(s.clone())).collect()
}

/// Rank 1 for the largest value; equal values (NaNs among themselves) get the mean rank of
/// their group.
fn fractional_ranks(values: &[f64]) -> Vec<f64> {
    let order = argsort_desc(values);
    let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && same(values[order[end]], values[order[start]]) {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end; their mean:
        let mean = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = mean;
        }
        start = end;
    }
    ranks
}

/// Register `FloatVec`, `IntVec` and `Matrix` with their native methods.
pub fn register(engine: &mut Engine) {
    register_float_vec(engine);
    register_float_arithmetic(engine);
    register_int_vec(engine);
    super::matrix_methods::register_matrix(engine);
}

fn register_float_vec(engine: &mut Engine) {
    engine.register_type_with_name::<FloatVec>("FloatVec");
    engine
        .register_fn("float_vec", |a: Array| -> RhaiResult<FloatVec> {
            Ok(FloatVec::new(array_to_floats(&a, "float_vec")?))
        })
        .register_fn("full", |n: INT, v: FLOAT| -> RhaiResult<FloatVec> {
            Ok(FloatVec::new(vec![v; vector_len(n, "full")?]))
        })
        .register_fn("zeros", |n: INT| -> RhaiResult<FloatVec> {
            Ok(FloatVec::new(vec![0.0; vector_len(n, "zeros")?]))
        })
        .register_fn("len", |v: &mut FloatVec| v.0.len() as INT)
        .register_fn("get", |v: &mut FloatVec, i: INT| -> RhaiResult<FLOAT> {
            Ok(v.0[position(i, v.0.len(), "FloatVec.get")?])
        })
        .register_indexer_get(|v: &mut FloatVec, i: INT| -> RhaiResult<FLOAT> {
            Ok(v.0[position(i, v.0.len(), "FloatVec[]")?])
        })
        .register_fn("to_array", |cx: NativeCallContext, v: &mut FloatVec| {
            within_data_limits(&cx, v.0.iter().map(|x| Dynamic::from_float(*x)).collect())
        })
        .register_fn("sum", |v: &mut FloatVec| v.0.iter().sum::<f64>())
        .register_fn("mean", |v: &mut FloatVec| {
            v.0.iter().sum::<f64>() / v.0.len().max(1) as f64
        })
        .register_fn("min", |v: &mut FloatVec| {
            v.0.iter().copied().fold(f64::INFINITY, f64::min)
        })
        .register_fn("max", |v: &mut FloatVec| {
            v.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        })
        .register_fn("topk", |v: &mut FloatVec, k: INT| {
            IntVec::from_usize(&topk(&v.0, k.max(0) as usize))
        })
        .register_fn("argsort", |v: &mut FloatVec| {
            IntVec::from_usize(&argsort_asc(&v.0))
        })
        .register_fn("argsort_desc", |v: &mut FloatVec| {
            IntVec::from_usize(&argsort_desc(&v.0))
        })
        // Rank 1 is the largest value, so a rank-sum is "smaller is better", as in TE-delfy.
        // Tied values share the mean of their ranks: splitting ties by position would act as
        // an extra ranking by id inside a rank-sum. NaN ranks after every number.
        .register_fn("rank", |v: &mut FloatVec| {
            FloatVec::new(fractional_ranks(&v.0))
        })
        .register_fn("minmax", |v: &mut FloatVec| FloatVec::new(minmax(&v.0)))
        .register_fn("zscore", |v: &mut FloatVec| FloatVec::new(zscore(&v.0)))
        .register_fn("log", |v: &mut FloatVec| map(v, f64::ln))
        .register_fn("exp", |v: &mut FloatVec| map(v, f64::exp))
        .register_fn("abs", |v: &mut FloatVec| map(v, f64::abs))
        .register_fn("sqrt", |v: &mut FloatVec| map(v, f64::sqrt))
        .register_fn("neg", |v: &mut FloatVec| map(v, |x| -x))
        .register_fn("-", |v: FloatVec| map(&v, |x| -x))
        // Replace NaN (e.g. a value missing from memory) with `x`.
        .register_fn("fill_nan", |v: &mut FloatVec, x: FLOAT| {
            map(v, move |y| if y.is_nan() { x } else { y })
        })
        .register_fn(
            "take",
            |v: &mut FloatVec, idx: IntVec| -> RhaiResult<FloatVec> {
                let p = positions(&idx, v.0.len(), "FloatVec.take")?;
                Ok(FloatVec::new(p.iter().map(|&i| v.0[i]).collect()))
            },
        )
        .register_fn(
            "gather",
            |v: &mut FloatVec, idx: IntVec| -> RhaiResult<FloatVec> {
                let p = positions(&idx, v.0.len(), "FloatVec.gather")?;
                Ok(FloatVec::new(p.iter().map(|&i| v.0[i]).collect()))
            },
        )
        // A copy with `values[j]` written at position `idx[j]`.
        .register_fn(
            "scatter",
            |v: &mut FloatVec, idx: IntVec, values: FloatVec| -> RhaiResult<FloatVec> {
                if idx.0.len() != values.0.len() {
                    return err("FloatVec.scatter: positions and values differ in length");
                }
                let p = positions(&idx, v.0.len(), "FloatVec.scatter")?;
                let mut out = v.0.as_ref().clone();
                for (i, x) in p.into_iter().zip(values.0.iter()) {
                    out[i] = *x;
                }
                Ok(FloatVec::new(out))
            },
        )
        // Positions whose value is in [lo, hi].
        .register_fn(
            "positions_between",
            |v: &mut FloatVec, lo: FLOAT, hi: FLOAT| {
                IntVec::new(
                    (0..v.0.len())
                        .filter(|&i| v.0[i] >= lo && v.0[i] <= hi)
                        .map(|i| i as i64)
                        .collect(),
                )
            },
        )
        // Equal-width bin of each value over [min, max]: 0..bins-1 (the maximum joins the last).
        .register_fn(
            "equal_width_bins",
            |v: &mut FloatVec, bins: INT| -> RhaiResult<IntVec> {
                if bins < 1 {
                    return err("FloatVec.equal_width_bins: bins must be at least 1");
                }
                let lo = v.0.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let width = (hi - lo) / bins as f64;
                Ok(IntVec::new(
                    v.0.iter()
                        .map(|x| {
                            if width > 0.0 {
                                (((x - lo) / width).floor() as i64).clamp(0, bins - 1)
                            } else {
                                0
                            }
                        })
                        .collect(),
                ))
            },
        )
        // Quantile level 0..levels-1 of each value (by rank, so ties do not collapse levels).
        .register_fn(
            "quantile_levels",
            |v: &mut FloatVec, levels: INT| -> RhaiResult<IntVec> {
                if levels < 1 {
                    return err("FloatVec.quantile_levels: levels must be at least 1");
                }
                let n = v.0.len();
                let mut out = vec![0i64; n];
                for (r, i) in argsort_asc(&v.0).into_iter().enumerate() {
                    // In i128 so a huge `levels` cannot overflow; the level is < levels.
                    out[i] = ((r as i128 * levels as i128) / n.max(1) as i128) as i64;
                }
                Ok(IntVec::new(out))
            },
        )
        .register_fn("to_string", |v: &mut FloatVec| format!("FloatVec{:?}", v.0))
        .register_fn("to_debug", |v: &mut FloatVec| format!("FloatVec{:?}", v.0));
}

macro_rules! scalar_ops {
    ($engine:ident, $op:literal, $f:expr) => {
        $engine
            .register_fn($op, |a: FloatVec, b: FloatVec| zip_with(&a, &b, $op, $f))
            .register_fn($op, |a: FloatVec, s: FLOAT| map(&a, |x| $f(x, s)))
            .register_fn($op, |a: FloatVec, s: INT| map(&a, |x| $f(x, s as f64)))
            .register_fn($op, |s: FLOAT, a: FloatVec| map(&a, |x| $f(s, x)))
            .register_fn($op, |s: INT, a: FloatVec| map(&a, |x| $f(s as f64, x)));
    };
}

fn register_float_arithmetic(engine: &mut Engine) {
    scalar_ops!(engine, "+", |x: f64, y: f64| x + y);
    scalar_ops!(engine, "-", |x: f64, y: f64| x - y);
    scalar_ops!(engine, "*", |x: f64, y: f64| x * y);
    scalar_ops!(engine, "/", |x: f64, y: f64| x / y);
    // Rhai's power operator, so a length penalty (`len ** alpha`) needs no loop.
    scalar_ops!(engine, "**", f64::powf);
    // Element-wise larger / smaller (`+` etc. are arithmetic, so this needs names). As with
    // f64::max, a number beats NaN: a NaN in one vector is filled from the other.
    engine
        .register_fn("max_with", |a: &mut FloatVec, b: FloatVec| {
            zip_with(a, &b, "max_with", f64::max)
        })
        .register_fn("min_with", |a: &mut FloatVec, b: FloatVec| {
            zip_with(a, &b, "min_with", f64::min)
        })
        .register_fn("max_with", |a: &mut FloatVec, s: FLOAT| {
            map(a, |x| x.max(s))
        })
        .register_fn("min_with", |a: &mut FloatVec, s: FLOAT| {
            map(a, |x| x.min(s))
        });
}

fn register_int_vec(engine: &mut Engine) {
    engine.register_type_with_name::<IntVec>("IntVec");
    engine
        .register_fn("int_vec", |a: Array| -> RhaiResult<IntVec> {
            a.iter()
                .map(|d| {
                    d.as_int()
                        .map_err(|t| format!("int_vec: expected an integer, got {t}").into())
                })
                .collect::<RhaiResult<Vec<i64>>>()
                .map(IntVec::new)
        })
        .register_fn("range_vec", |n: INT| -> RhaiResult<IntVec> {
            Ok(IntVec::new(
                (0..vector_len(n, "range_vec")? as INT).collect(),
            ))
        })
        .register_fn("len", |v: &mut IntVec| v.0.len() as INT)
        .register_fn("get", |v: &mut IntVec, i: INT| -> RhaiResult<INT> {
            Ok(v.0[position(i, v.0.len(), "IntVec.get")?])
        })
        .register_indexer_get(|v: &mut IntVec, i: INT| -> RhaiResult<INT> {
            Ok(v.0[position(i, v.0.len(), "IntVec[]")?])
        })
        .register_fn("to_array", |cx: NativeCallContext, v: &mut IntVec| {
            within_data_limits(&cx, v.0.iter().map(|x| Dynamic::from_int(*x)).collect())
        })
        .register_fn("to_float", |v: &mut IntVec| {
            FloatVec::new(v.0.iter().map(|&x| x as f64).collect())
        })
        .register_fn(
            "take",
            |v: &mut IntVec, idx: IntVec| -> RhaiResult<IntVec> {
                let p = positions(&idx, v.0.len(), "IntVec.take")?;
                Ok(IntVec::new(p.iter().map(|&i| v.0[i]).collect()))
            },
        )
        .register_fn(
            "gather",
            |v: &mut IntVec, idx: IntVec| -> RhaiResult<IntVec> {
                let p = positions(&idx, v.0.len(), "IntVec.gather")?;
                Ok(IntVec::new(p.iter().map(|&i| v.0[i]).collect()))
            },
        )
        .register_fn("contains", |v: &mut IntVec, x: INT| v.0.contains(&x))
        // Positions whose value equals `x`.
        .register_fn("positions_of", |v: &mut IntVec, x: INT| {
            IntVec::new(
                (0..v.0.len())
                    .filter(|&i| v.0[i] == x)
                    .map(|i| i as i64)
                    .collect(),
            )
        })
        // Positions whose value is at most `x`.
        .register_fn("positions_le", |v: &mut IntVec, x: INT| {
            IntVec::new(
                (0..v.0.len())
                    .filter(|&i| v.0[i] <= x)
                    .map(|i| i as i64)
                    .collect(),
            )
        })
        // Values of `self` not in `other`, order kept.
        .register_fn("except", |v: &mut IntVec, other: IntVec| {
            let drop: std::collections::HashSet<i64> = other.0.iter().copied().collect();
            IntVec::new(v.0.iter().copied().filter(|x| !drop.contains(x)).collect())
        })
        .register_fn("sorted", |v: &mut IntVec| {
            let mut values = v.0.to_vec();
            values.sort_unstable();
            IntVec::new(values)
        })
        .register_fn("unique_count", |v: &mut IntVec| {
            v.0.iter().collect::<std::collections::HashSet<_>>().len() as INT
        })
        .register_fn("+", |a: IntVec, b: IntVec| {
            IntVec::new(a.0.iter().chain(b.0.iter()).copied().collect())
        })
        .register_fn("to_string", |v: &mut IntVec| format!("IntVec{:?}", v.0))
        .register_fn("to_debug", |v: &mut IntVec| format!("IntVec{:?}", v.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_breaks_ties_by_lower_index_and_puts_nan_last() {
        let v = [1.0, 3.0, f64::NAN, 3.0, 2.0];
        assert_eq!(topk(&v, 3), vec![1, 3, 4]);
        assert_eq!(argsort_asc(&v), vec![0, 4, 1, 3, 2]);
    }

    #[test]
    fn minmax_maps_to_unit_interval() {
        assert_eq!(minmax(&[2.0, 4.0, 3.0]), vec![0.0, 1.0, 0.5]);
        assert_eq!(minmax(&[5.0, 5.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn script_arithmetic_and_ranking() {
        let mut e = Engine::new();
        register(&mut e);
        let r: IntVec = e
            .eval("let a = float_vec([1.0, 5, 3]); let b = a * 2 - 1; (-b).rank().topk(1)")
            .unwrap();
        // -b = [-1, -9, -5]; rank 1 goes to the largest (-1 at 0), so rank = [1, 3, 2].
        assert_eq!(*r.0, vec![1]);
        let bins: IntVec = e
            .eval("float_vec([0.0, 0.5, 1.0, 0.99]).equal_width_bins(2)")
            .unwrap();
        assert_eq!(*bins.0, vec![0, 1, 1, 1]);
        let q: IntVec = e
            .eval("float_vec([4.0, 1.0, 3.0, 2.0]).quantile_levels(4)")
            .unwrap();
        assert_eq!(*q.0, vec![3, 0, 2, 1]);
        let r: FloatVec = e
            .eval("float_vec([3.0, 1.0, 3.0, 0.0 / 0.0, 2.0]).rank()")
            .unwrap();
        assert_eq!(
            *r.0,
            vec![1.5, 4.0, 1.5, 5.0, 3.0],
            "ties share their mean rank"
        );
        // A huge level count keeps the ranks' order instead of overflowing.
        let q: IntVec = e
            .eval("float_vec([4.0, 1.0, 3.0, 2.0]).quantile_levels(9223372036854775807)")
            .unwrap();
        assert!(
            q.0[1] < q.0[3] && q.0[3] < q.0[2] && q.0[2] < q.0[0],
            "{:?}",
            q.0
        );
        let bad = e.eval::<FloatVec>("float_vec([1.0]) + float_vec([1.0, 2.0])");
        assert!(bad.unwrap_err().to_string().contains("lengths differ"));
    }
}
