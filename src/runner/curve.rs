//! `curve.csv`: one row per finished iteration, keyed by the number of labeled examples.
//!
//! Columns: `iteration, labeled, cost, tokens, seconds`, then one column per metric in the
//! experiment's configured order. Values are cumulative (labels, dollars, labeller tokens,
//! wall-clock seconds of the cell so far).
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The fixed columns that precede the metric columns.
pub const FIXED_COLUMNS: [&str; 5] = ["iteration", "labeled", "cost", "tokens", "seconds"];

#[derive(Clone, Debug, PartialEq)]
pub struct CurveRow {
    pub iteration: usize,
    /// Labeled examples the model of this iteration was trained on.
    pub labeled: usize,
    /// Cumulative labelling cost in dollars.
    pub cost: f64,
    /// Cumulative labeller tokens (input + output).
    pub tokens: u64,
    /// Cumulative wall-clock seconds spent in this cell.
    pub seconds: f64,
    /// One value per metric, in the order of [`Curve::metrics`].
    pub metrics: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub metrics: Vec<String>,
    pub rows: Vec<CurveRow>,
}

impl Curve {
    pub fn new(metrics: Vec<String>) -> Self {
        Curve {
            metrics,
            rows: Vec::new(),
        }
    }

    /// The value of `metric` in `row`, if the curve has that metric.
    pub fn value(&self, row: &CurveRow, metric: &str) -> Option<f64> {
        let col = self.metrics.iter().position(|m| m == metric)?;
        row.metrics.get(col).copied()
    }

    /// Append a row, checking it has one value per metric.
    pub fn push(&mut self, row: CurveRow) -> Result<()> {
        if row.metrics.len() != self.metrics.len() {
            bail!(
                "curve row for iteration {} has {} metric values but the curve has {} metrics ({})",
                row.iteration,
                row.metrics.len(),
                self.metrics.len(),
                self.metrics.join(", ")
            );
        }
        self.rows.push(row);
        Ok(())
    }

    pub fn header_line(&self) -> String {
        let mut cols: Vec<&str> = FIXED_COLUMNS.to_vec();
        cols.extend(self.metrics.iter().map(String::as_str));
        cols.join(",")
    }

    /// The CSV text, header included. Floats use Rust's shortest round-trip form, so reading
    /// the file back gives bit-identical values.
    pub fn to_csv_string(&self) -> String {
        let mut out = self.header_line();
        out.push('\n');
        for row in &self.rows {
            out.push_str(&row_line(row));
            out.push('\n');
        }
        out
    }

    /// Parse curve CSV text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Curve> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header)) = lines.next() else {
            bail!(
                "{} is empty: expected a header line `{}`",
                origin.display(),
                FIXED_COLUMNS.join(",")
            );
        };
        let cols: Vec<&str> = header.split(',').map(str::trim).collect();
        if cols.len() < FIXED_COLUMNS.len() || cols[..FIXED_COLUMNS.len()] != FIXED_COLUMNS {
            bail!(
                "{} line 1: header must start with `{}`, found `{}`",
                origin.display(),
                FIXED_COLUMNS.join(","),
                header
            );
        }
        let mut curve = Curve::new(
            cols[FIXED_COLUMNS.len()..]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        for (idx, line) in lines {
            let row = parse_row(line, cols.len())
                .with_context(|| format!("{} line {}: `{}`", origin.display(), idx + 1, line))?;
            curve.rows.push(row);
        }
        Ok(curve)
    }

    pub fn read(path: &Path) -> Result<Curve> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Curve::parse(&text, path)
    }
}

fn row_line(row: &CurveRow) -> String {
    let mut fields = vec![
        row.iteration.to_string(),
        row.labeled.to_string(),
        row.cost.to_string(),
        row.tokens.to_string(),
        row.seconds.to_string(),
    ];
    fields.extend(row.metrics.iter().map(|v| v.to_string()));
    fields.join(",")
}

fn parse_row(line: &str, columns: usize) -> Result<CurveRow> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() != columns {
        bail!(
            "expected {columns} comma-separated values (as in the header), found {}",
            fields.len()
        );
    }
    let float = |i: usize| -> Result<f64> {
        fields[i]
            .parse::<f64>()
            .with_context(|| format!("column {} is not a number: `{}`", i + 1, fields[i]))
    };
    let int = |i: usize| -> Result<u64> {
        fields[i].parse::<u64>().with_context(|| {
            format!(
                "column {} ({}) is not a whole number: `{}`",
                i + 1,
                FIXED_COLUMNS[i],
                fields[i]
            )
        })
    };
    let cost = float(2)?;
    if !cost.is_finite() || cost < 0.0 {
        bail!(
            "column 3 (cost) must be a finite dollar amount of 0 or more, found `{}`",
            fields[2]
        );
    }
    Ok(CurveRow {
        iteration: int(0)? as usize,
        labeled: int(1)? as usize,
        cost,
        tokens: int(3)?,
        seconds: float(4)?,
        metrics: (FIXED_COLUMNS.len()..fields.len())
            .map(float)
            .collect::<Result<_>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Curve {
        let mut c = Curve::new(vec!["rouge1".into(), "rougeL".into()]);
        c.push(CurveRow {
            iteration: 0,
            labeled: 10,
            cost: 0.0,
            tokens: 0,
            seconds: 1.25,
            metrics: vec![0.1, 1.0 / 3.0],
        })
        .unwrap();
        c.push(CurveRow {
            iteration: 1,
            labeled: 20,
            cost: 0.013,
            tokens: 1234,
            seconds: 2.5,
            metrics: vec![0.2, f64::NAN],
        })
        .unwrap();
        c
    }

    #[test]
    fn round_trips_bit_exactly() {
        let c = sample();
        let text = c.to_csv_string();
        assert!(text.starts_with("iteration,labeled,cost,tokens,seconds,rouge1,rougeL\n"));
        let back = Curve::parse(&text, Path::new("curve.csv")).unwrap();
        assert_eq!(back.metrics, c.metrics);
        assert_eq!(back.rows[0], c.rows[0]);
        assert_eq!(back.rows[0].metrics[1].to_bits(), (1.0f64 / 3.0).to_bits());
        assert!(back.rows[1].metrics[1].is_nan());
        assert_eq!(back.value(&back.rows[1], "rouge1"), Some(0.2));
        assert_eq!(back.value(&back.rows[1], "bleu"), None);
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let text = "iteration,labeled,cost,tokens,seconds,rouge1\n0,10,0,0,1,0.1\n1,x,0,0,1,0.2\n";
        let err = format!(
            "{:#}",
            Curve::parse(text, Path::new("r/curve.csv")).unwrap_err()
        );
        assert!(err.contains("r/curve.csv line 3"), "{err}");
        assert!(err.contains("labeled"), "{err}");
        let err = format!(
            "{:#}",
            Curve::parse("iter,labeled\n", Path::new("c.csv")).unwrap_err()
        );
        assert!(err.contains("header must start with"), "{err}");
        let err = format!(
            "{:#}",
            Curve::parse(
                "iteration,labeled,cost,tokens,seconds,m\n0,1,0,0,0\n",
                Path::new("c.csv")
            )
            .unwrap_err()
        );
        assert!(err.contains("expected 6"), "{err}");
    }

    #[test]
    fn non_finite_or_negative_cost_is_refused_with_file_and_line() {
        for bad in ["NaN", "inf", "-inf", "-0.5"] {
            let text = format!(
                "iteration,labeled,cost,tokens,seconds,m\n0,10,0.1,0,0,0.1\n1,20,{bad},0,1,0.2\n"
            );
            let err = format!(
                "{:#}",
                Curve::parse(&text, Path::new("r/s/seed-0/curve.csv")).unwrap_err()
            );
            assert!(err.contains("r/s/seed-0/curve.csv line 3"), "{err}");
            assert!(err.contains("(cost) must be a finite"), "{err}");
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
        // Metric values may still be NaN (a metric that could not be computed).
        let text = "iteration,labeled,cost,tokens,seconds,m\n0,10,0,0,0,NaN\n";
        assert!(Curve::parse(text, Path::new("c.csv")).unwrap().rows[0].metrics[0].is_nan());
    }

    #[test]
    fn push_rejects_wrong_metric_count() {
        let mut c = Curve::new(vec!["a".into()]);
        let err = c
            .push(CurveRow {
                iteration: 0,
                labeled: 1,
                cost: 0.0,
                tokens: 0,
                seconds: 0.0,
                metrics: vec![],
            })
            .unwrap_err();
        assert!(err.to_string().contains("0 metric values"));
    }
}
