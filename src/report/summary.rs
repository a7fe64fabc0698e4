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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::aggregate::MeanPoint;
    use crate::report::stats::summarize;

    #[test]
    fn single_seed_rows_leave_spread_empty() {
        let curves = [MeanCurve {
            strategy: "random, v2".into(),
            metric: "rouge1".into(),
            points: vec![
                MeanPoint {
                    x: 10.0,
                    summary: summarize(&[0.25]),
                },
                MeanPoint {
                    x: 20.0,
                    summary: summarize(&[0.5, 0.7]),
                },
            ],
        }];
        let csv = summary_csv(&curves).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], SUMMARY_HEADER.join(","));
        // A comma in a strategy name is quoted, not a broken column.
        assert_eq!(lines[1], "\"random, v2\",10,rouge1,0.25,,,,1");
        assert!(
            lines[2].starts_with("\"random, v2\",20,rouge1,0.6,"),
            "{}",
            lines[2]
        );
        assert!(lines[2].ends_with(",2"));
    }
}
