//! Hand-made results folders for the report tests: curve.csv files written as the runner
//! writes them, the three-strategy set whose numbers the tests work out by hand, and
//! summary.csv read back.
use atgen_lab::runner::curve::{Curve, CurveRow};
use std::path::{Path, PathBuf};

/// `<dir>/<strategy>/seed-<seed>`, one cell's folder.
pub fn cell_dir(dir: &Path, strategy: &str, seed: u64) -> PathBuf {
    dir.join(strategy).join(format!("seed-{seed}"))
}

/// Write `path` as a curve.csv (its folder created) with a column per `metrics` and one row
/// per (labeled, cost, values); iterations count from 0, and seconds equal the iteration.
pub fn write_curve_file(
    path: &Path,
    metrics: &[&str],
    rows: impl IntoIterator<Item = (usize, f64, Vec<f64>)>,
) {
    let mut curve = Curve::new(metrics.iter().map(|m| m.to_string()).collect());
    for (i, (labeled, cost, values)) in rows.into_iter().enumerate() {
        curve
            .push(CurveRow {
                iteration: i,
                labeled,
                cost,
                tokens: 0,
                seconds: i as f64,
                metrics: values,
            })
            .unwrap();
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, curve.to_csv_string()).unwrap();
}

/// Write `<dir>/<strategy>/seed-<seed>/curve.csv` with rows (labeled, cost, rouge1).
pub fn write_curve(dir: &Path, strategy: &str, seed: u64, rows: &[(usize, f64, f64)]) {
    write_curve_file(
        &cell_dir(dir, strategy, seed).join("curve.csv"),
        &["rouge1"],
        rows.iter()
            .map(|&(labeled, cost, rouge1)| (labeled, cost, vec![rouge1])),
    );
}

/// Write `<dir>/<strategy>/seed-<seed>/curve.csv` with `metrics` columns and rows
/// (labeled, values), free labels.
pub fn write_metrics_curve(
    dir: &Path,
    strategy: &str,
    seed: u64,
    metrics: &[&str],
    rows: &[(usize, &[f64])],
) {
    write_curve_file(
        &cell_dir(dir, strategy, seed).join("curve.csv"),
        metrics,
        rows.iter()
            .map(|&(labeled, values)| (labeled, 0.0, values.to_vec())),
    );
}

/// Write `path` as a curve of rougeL `values` at 10, 20, … labels, each label costing
/// `dollars_per_label`.
pub fn write_rouge_l_curve(path: &Path, values: &[f64], dollars_per_label: f64) {
    write_curve_file(
        path,
        &["rougeL"],
        values.iter().enumerate().map(|(i, &value)| {
            let labeled = 10 * (i + 1);
            (labeled, dollars_per_label * labeled as f64, vec![value])
        }),
    );
}

/// random: means 0.2, 0.3, 0.4 (std 0.1 everywhere) at 10, 20, 30 labels.
/// huds:   means 0.25, 0.45, 0.6 (std 0.1 everywhere).
/// mnlp:   two seeds, means 0.1, 0.2, 0.325; never reaches random's 0.4.
pub fn fixture(dir: &Path, cost_per_label: f64) {
    let c = |l: usize| l as f64 * cost_per_label;
    for (seed, base) in [(0, 0.1), (1, 0.2), (2, 0.3)] {
        let rows: Vec<_> = [10, 20, 30]
            .iter()
            .enumerate()
            .map(|(i, &l)| (l, c(l), base + 0.1 * i as f64))
            .collect();
        write_curve(dir, "random", seed, &rows);
    }
    for (seed, shift) in [(0, -0.1), (1, 0.0), (2, 0.1)] {
        let rows = [
            (10, c(10), 0.25 + shift),
            (20, c(20), 0.45 + shift),
            (30, c(30), 0.6 + shift),
        ];
        write_curve(dir, "huds", seed, &rows);
    }
    write_curve(
        dir,
        "mnlp",
        0,
        &[(10, c(10), 0.1), (20, c(20), 0.2), (30, c(30), 0.3)],
    );
    write_curve(
        dir,
        "mnlp",
        1,
        &[(10, c(10), 0.1), (20, c(20), 0.2), (30, c(30), 0.35)],
    );
}

/// Whether `a` is within `tol` of `b`.
pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// Read summary.csv rows as (strategy, labeled, mean, n) for `metric`.
pub fn summary_rows(dir: &Path, metric: &str) -> Vec<(String, String, f64, usize)> {
    let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|r| r[2] == metric)
        .map(|r| {
            (
                r[0].clone(),
                r[1].clone(),
                r[3].parse().unwrap(),
                r[7].parse().unwrap(),
            )
        })
        .collect()
}
