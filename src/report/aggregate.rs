//! Mean curves over seeds. By labeled count, rows of all seeds with the same number of labeled
//! examples are pooled; by cost (which differs between seeds for paid labellers), rows with the
//! same iteration are pooled and placed at their mean cost.
use crate::report::load::ExperimentCurves;
use crate::report::stats::{summarize, Summary};
use std::collections::BTreeMap;

/// What the x axis of a curve measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XAxis {
    /// Number of labeled examples.
    Labeled,
    /// Cumulative labelling cost in dollars.
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

/// Mean curves of `metric` for every strategy that has it. NaN values (a metric that could not
/// be computed) are left out of the mean; a point with no finite value is dropped.
pub fn mean_curves(curves: &ExperimentCurves, metric: &str, x: XAxis) -> Vec<MeanCurve> {
    let mut out = Vec::new();
    for strategy in &curves.strategies {
        // key → (x values, metric values)
        let mut groups: BTreeMap<usize, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for seed in &strategy.seeds {
            let Some(col) = seed.curve.metrics.iter().position(|m| m == metric) else {
                continue;
            };
            // One row per key and seed, the last: an iteration that added no labels (empty
            // LLM replies, a budget stop) repeats the labeled count, and must not count as
            // another seed.
            let mut own: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
            for row in &seed.curve.rows {
                let (key, xv) = match x {
                    XAxis::Labeled => (row.labeled, row.labeled as f64),
                    XAxis::Cost => (row.iteration, row.cost),
                };
                own.insert(key, (xv, row.metrics[col]));
            }
            for (key, (xv, value)) in own {
                if !value.is_finite() {
                    continue;
                }
                let g = groups.entry(key).or_default();
                g.0.push(xv);
                g.1.push(value);
            }
        }
        if groups.is_empty() {
            continue;
        }
        let mut points: Vec<MeanPoint> = groups
            .into_values()
            .map(|(xs, values)| MeanPoint {
                x: xs.iter().sum::<f64>() / xs.len() as f64,
                summary: summarize(&values),
            })
            .collect();
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
        out.push(MeanCurve {
            strategy: strategy.strategy.clone(),
            metric: metric.to_string(),
            points,
        });
    }
    out
}
