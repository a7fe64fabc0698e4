//! Mean curves over seeds, by labeled count or by cost: each seed is interpolated within its
//! own range onto the x values of all seeds, and averaged where every seed has a value.
use crate::report::load::ExperimentCurves;
use crate::report::stats::{summarize, Summary};

/// What the x axis of a curve measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XAxis {
    /// Number of labeled examples; figures by labelling cost are added when any labelling cost
    /// money.
    Labeled,
    /// Cumulative labelling cost in dollars, only (tables stay by labeled count).
    Cost,
}

impl XAxis {
    pub fn title(self) -> &'static str {
        match self {
            XAxis::Labeled => "labeled examples",
            XAxis::Cost => "labelling cost ($)",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MeanPoint {
    pub x: f64,
    pub summary: Summary,
}

/// One strategy's mean curve for one metric, sorted by x.
#[derive(Clone, Debug, PartialEq)]
pub struct MeanCurve {
    pub strategy: String,
    pub metric: String,
    pub points: Vec<MeanPoint>,
}

impl MeanCurve {
    /// `(x, mean)` pairs.
    pub fn means(&self) -> Vec<(f64, f64)> {
        self.points.iter().map(|p| (p.x, p.summary.mean)).collect()
    }
}

/// Mean curves of `metric` for every strategy that has it.
///
/// Seeds need not share x values (labeled counts differ when an iteration added fewer labels,
/// cost always differs for paid labellers), so each seed is first reduced to one row per x (the
/// last), then interpolated linearly within its own range onto the union of the x values of
/// the strategy's seeds. The mean is taken only at x covered by every seed, never by
/// extrapolation; when every seed has the same x values this is the plain per-x mean.
///
/// Non-finite values (a metric that could not be computed) are left out: at a seed's own row
/// with such a value the seed adds nothing to that point (and its neighbours are not
/// interpolated across it), a seed with no finite value at all is left out of the strategy,
/// and a point with no value is dropped.
pub fn mean_curves(curves: &ExperimentCurves, metric: &str, x: XAxis) -> Vec<MeanCurve> {
    let mut out = Vec::new();
    for strategy in &curves.strategies {
        let seeds: Vec<SeedPoints> = strategy
            .seeds
            .iter()
            .filter_map(|seed| {
                let col = seed.curve.metrics.iter().position(|m| m == metric)?;
                let rows = seed.curve.rows.iter().map(|row| {
                    let xv = match x {
                        XAxis::Labeled => row.labeled as f64,
                        XAxis::Cost => row.cost,
                    };
                    (xv, row.metrics[col])
                });
                SeedPoints::new(rows)
            })
            .collect();
        let mut xs: Vec<f64> = seeds
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        let points: Vec<MeanPoint> = xs
            .into_iter()
            .filter(|&xv| seeds.iter().all(|s| s.covers(xv)))
            .filter_map(|xv| {
                let values: Vec<f64> = seeds.iter().filter_map(|s| s.at(xv)).collect();
                (!values.is_empty()).then(|| MeanPoint {
                    x: xv,
                    summary: summarize(&values),
                })
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        out.push(MeanCurve {
            strategy: strategy.strategy.clone(),
            metric: metric.to_string(),
            points,
        });
    }
    out
}

/// One line per strategy and metric with values that are not finite (NaN or ±inf: a metric
/// that could not be computed, or overflowed), which the means leave out, counted over every
/// row of every seed; empty when all are finite.
pub fn non_finite_values(curves: &ExperimentCurves) -> Vec<String> {
    let mut lines = Vec::new();
    for strategy in &curves.strategies {
        for metric in &curves.metrics {
            let (mut bad, mut total) = (0usize, 0usize);
            for seed in &strategy.seeds {
                let Some(col) = seed.curve.metrics.iter().position(|m| m == metric) else {
                    continue;
                };
                total += seed.curve.rows.len();
                bad += seed
                    .curve
                    .rows
                    .iter()
                    .filter(|r| !r.metrics[col].is_finite())
                    .count();
            }
            if bad > 0 {
                lines.push(format!(
                    "`{}` {metric}: {bad} of {total} values not finite",
                    strategy.strategy
                ));
            }
        }
    }
    lines
}

/// One seed's curve: one `(x, value)` per x (the last row with it), sorted by x, and the range
/// of its finite values.
struct SeedPoints {
    points: Vec<(f64, f64)>,
    range: (f64, f64),
}

impl SeedPoints {
    /// `None` when no value is finite.
    fn new(rows: impl Iterator<Item = (f64, f64)>) -> Option<SeedPoints> {
        let mut points: Vec<(f64, f64)> = rows.filter(|p| p.0.is_finite()).collect();
        // Stable: rows with one x keep their file order, so the last is kept below.
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut unique: Vec<(f64, f64)> = Vec::with_capacity(points.len());
        for p in points {
            match unique.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => unique.push(p),
            }
        }
        let first = unique.iter().find(|p| p.1.is_finite())?.0;
        let last = unique.iter().rfind(|p| p.1.is_finite())?.0;
        Some(SeedPoints {
            points: unique,
            range: (first, last),
        })
    }

    fn covers(&self, x: f64) -> bool {
        self.range.0 <= x && x <= self.range.1
    }

    /// The seed's value at `x`: its own row's (if finite), else linear interpolation between
    /// its neighbouring rows when both are finite; `None` outside its range.
    fn at(&self, x: f64) -> Option<f64> {
        if !self.covers(x) {
            return None;
        }
        let i = self.points.partition_point(|p| p.0 < x);
        let (x1, y1) = *self.points.get(i)?;
        if x1 == x {
            return y1.is_finite().then_some(y1);
        }
        let (x0, y0) = *self.points.get(i.checked_sub(1)?)?;
        (y0.is_finite() && y1.is_finite()).then(|| y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_is_interpolated_within_its_own_range_only() {
        let s = SeedPoints::new([(10.0, 0.1), (20.0, 0.3), (20.0, 0.5), (30.0, 0.7)].into_iter())
            .unwrap();
        assert_eq!(s.points, [(10.0, 0.1), (20.0, 0.5), (30.0, 0.7)]);
        assert!((s.at(15.0).unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(s.at(20.0), Some(0.5));
        assert_eq!(s.at(9.0), None);
        assert_eq!(s.at(31.0), None);
        // A NaN row is a hole: nothing there, nothing interpolated across it.
        let s = SeedPoints::new([(10.0, 0.1), (20.0, f64::NAN), (30.0, 0.3)].into_iter()).unwrap();
        assert_eq!(s.at(20.0), None);
        assert_eq!(s.at(25.0), None);
        assert!(s.covers(30.0));
        assert!(SeedPoints::new([(10.0, f64::NAN)].into_iter()).is_none());
    }
}
