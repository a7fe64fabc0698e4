//! `summary.csv`: strategy × labeled count × metric → mean, sample std, Student-t 95% CI, n.
use crate::report::aggregate::MeanCurve;
use anyhow::{Context, Result};

pub const SUMMARY_HEADER: [&str; 8] = [
    "strategy",
    "labeled",
    "metric",
    "mean",
    "std",
    "ci95_low",
    "ci95_high",
    "n",
];

/// CSV text of the summary. `curves` are mean curves by labeled count; rows keep their order
/// (strategy, then metric, then labeled). std and the CI are empty where only one seed exists.
pub fn summary_csv(curves: &[MeanCurve]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(SUMMARY_HEADER)?;
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for c in curves {
        for p in &c.points {
            let s = &p.summary;
            w.write_record([
                c.strategy.clone(),
                // x is an exact labeled count here, stored as f64 by the aggregation.
                format!("{}", p.x.round() as u64),
                c.metric.clone(),
                s.mean.to_string(),
                opt(s.std),
                opt(s.ci95.map(|ci| ci.0)),
                opt(s.ci95.map(|ci| ci.1)),
                s.n.to_string(),
            ])?;
        }
    }
    let bytes = w.into_inner().context("cannot finish summary.csv")?;
    String::from_utf8(bytes).context("summary.csv is not UTF-8")
}
