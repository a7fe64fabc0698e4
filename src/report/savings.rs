//! Label-efficiency numbers of a mean curve: normalised area under the curve, the labels
//! needed to reach the reference strategy's final score, and the resulting saving ratio.
use crate::report::aggregate::MeanCurve;
use crate::report::direction::{direction_of, Direction};

/// Trapezoid area under `(x, y)` points (sorted by x) divided by the x range, i.e. the
/// average height of the curve. A single point gives its own value.
pub fn normalized_auc(points: &[(f64, f64)]) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    let range = last.0 - first.0;
    if range <= 0.0 {
        return Some(points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64);
    }
    let area: f64 = points
        .windows(2)
        .map(|w| 0.5 * (w[0].1 + w[1].1) * (w[1].0 - w[0].0))
        .sum();
    Some(area / range)
}

/// The average height of the piecewise-linear curve through `points` (sorted by x) over
/// `lo..=hi`: its trapezoid area there divided by `hi - lo`, or its value at `lo` when the
/// range is one point. `None` when the curve does not cover the range.
pub fn auc_over(points: &[(f64, f64)], lo: f64, hi: f64) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    if lo < first.0 || hi > last.0 || lo > hi {
        return None;
    }
    if hi == lo {
        return value_at(points, lo);
    }
    let mut clipped = vec![(lo, value_at(points, lo)?)];
    clipped.extend(points.iter().copied().filter(|p| lo < p.0 && p.0 < hi));
    clipped.push((hi, value_at(points, hi)?));
    normalized_auc(&clipped)
}

/// The piecewise-linear curve through `points` (sorted by x) at `x`, inside its range.
fn value_at(points: &[(f64, f64)], x: f64) -> Option<f64> {
    let i = points.partition_point(|p| p.0 < x);
    let (x1, y1) = *points.get(i)?;
    if x1 == x {
        return Some(y1);
    }
    let (x0, y0) = *points.get(i.checked_sub(1)?)?;
    Some(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
}

/// Relative tolerance of "reaches the target": means of the same scores summed in another
/// order differ in the last bits (0.7 + 0.1 over 2 is 0.39999999999999997, not 0.4).
const REACH_TOLERANCE: f64 = 1e-9;

/// Whether `y` reaches `target`, within the relative tolerance.
fn reaches(y: f64, target: f64) -> bool {
    y >= target - REACH_TOLERANCE * target.abs().max(y.abs())
}

/// The smallest x at which the piecewise-linear curve through `points` (sorted by x) reaches
/// `target` (within a relative tolerance of 1e-9); `None` when it never does.
pub fn x_to_reach(points: &[(f64, f64)], target: f64) -> Option<f64> {
    let first = points.first()?;
    if reaches(first.1, target) {
        return Some(first.0);
    }
    points.windows(2).find_map(|w| {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        // Reached within the tolerance only: the crossing is at x1, not past it.
        reaches(y1, target).then(|| x0 + ((target - y0) / (y1 - y0)).clamp(0.0, 1.0) * (x1 - x0))
    })
}

/// One strategy's line in a metric's table.
#[derive(Clone, Debug, PartialEq)]
pub struct SavingsRow {
    pub strategy: String,
    /// Average height over the table's `auc_range`; `None` when the curves share no range.
    pub auc: Option<f64>,
    pub final_labeled: f64,
    pub final_score: f64,
    /// Labels needed to reach the reference's final mean score; `None`: not reached.
    pub labels_to_reach: Option<f64>,
    /// Already reached at the first evaluated point, so fewer labels may have sufficed.
    pub reached_at_first_point: bool,
    /// Reference's labels-to-reach divided by this strategy's; `None` when both are only
    /// bounds, or either needs no labels.
    pub saving: Option<f64>,
    /// Whether `saving` is exact or a bound (one side reached at its first point).
    pub saving_bound: SavingBound,
}

/// How a saving ratio relates to the true one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SavingBound {
    Exact,
    /// The strategy may have needed fewer labels than its count: the saving is at least this.
    AtLeast,
    /// The reference may have needed fewer labels than its count: the saving is at most this.
    AtMost,
}

/// The label-efficiency table of one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct SavingsTable {
    pub metric: String,
    /// Which way the metric improves; "reaches" means at or below the target when lower is
    /// better, and nothing is reached for a metric that is neither.
    pub direction: Direction,
    /// Whether `direction` is the lab's own (a registered metric) or guessed from the name.
    pub direction_known: bool,
    pub reference: String,
    /// The reference strategy's final mean score, when the reference has this metric and
    /// the metric has a better direction.
    pub target: Option<f64>,
    /// Labels the reference itself needs to first reach `target`.
    pub reference_labels: Option<f64>,
    /// The reference reached `target` at its first point (above 0 labels), so
    /// `reference_labels` is only an upper bound.
    pub reference_reached_at_first_point: bool,
    /// The labeled range every strategy's mean curve covers, over which AUC is computed (the
    /// same range for all, so their AUCs compare); `None` when there is none.
    pub auc_range: Option<(f64, f64)>,
    pub rows: Vec<SavingsRow>,
}

/// Build the table from mean curves keyed by labeled count. Every strategy, the reference
/// included, is measured the same way (first crossing of the target), so the reference's own
/// saving is exactly 1. Which way the metric improves comes from [`direction_of`].
pub fn savings_table(metric: &str, curves: &[MeanCurve], reference: &str) -> SavingsTable {
    let (direction, direction_known) = direction_of(metric);
    // The crossing is found on curves oriented so that higher is better.
    let sign = if direction == Direction::Lower {
        -1.0
    } else {
        1.0
    };
    let oriented = |c: &MeanCurve| -> Vec<(f64, f64)> {
        c.means().into_iter().map(|(x, y)| (x, sign * y)).collect()
    };
    let reference_curve = curves.iter().find(|c| c.strategy == reference);
    let target = reference_curve
        .and_then(|c| c.points.last().map(|p| p.summary.mean))
        .filter(|_| direction != Direction::Neither);
    let reference_labels = reference_curve
        .zip(target)
        .and_then(|(c, t)| x_to_reach(&oriented(c), sign * t));
    let starts = curves.iter().filter_map(|c| c.points.first().map(|p| p.x));
    let ends = curves.iter().filter_map(|c| c.points.last().map(|p| p.x));
    let auc_range = Some((
        starts.fold(f64::MIN, f64::max),
        ends.fold(f64::MAX, f64::min),
    ))
    .filter(|(lo, hi)| lo <= hi);
    let reference_reached_at_first_point = reference_curve
        .zip(reference_labels)
        .is_some_and(|(c, r)| at_first_point(&c.means(), r));
    let rows = curves
        .iter()
        .filter_map(|c| {
            let means = c.means();
            let last = *means.last()?;
            let labels_to_reach = target.and_then(|t| x_to_reach(&oriented(c), sign * t));
            let reached_at_first_point = labels_to_reach.is_some_and(|l| at_first_point(&means, l));
            // A count reached at the first point is only an upper bound on the labels needed,
            // so the ratio is a bound on one side, and unknown when both are bounds. The
            // reference compared with itself is exactly 1 all the same.
            let (saving, saving_bound) = match (reference_labels, labels_to_reach) {
                (Some(r), Some(s)) if r > 0.0 && s > 0.0 => {
                    match (reference_reached_at_first_point, reached_at_first_point) {
                        _ if c.strategy == reference => (Some(1.0), SavingBound::Exact),
                        (false, false) => (Some(r / s), SavingBound::Exact),
                        (false, true) => (Some(r / s), SavingBound::AtLeast),
                        (true, false) => (Some(r / s), SavingBound::AtMost),
                        (true, true) => (None, SavingBound::Exact),
                    }
                }
                _ => (None, SavingBound::Exact),
            };
            Some(SavingsRow {
                strategy: c.strategy.clone(),
                auc: auc_range.and_then(|(lo, hi)| auc_over(&means, lo, hi)),
                final_labeled: last.0,
                final_score: last.1,
                labels_to_reach,
                reached_at_first_point,
                saving,
                saving_bound,
            })
        })
        .collect();
    SavingsTable {
        metric: metric.to_string(),
        direction,
        direction_known,
        reference: reference.to_string(),
        target,
        reference_labels,
        reference_reached_at_first_point,
        auc_range,
        rows,
    }
}

/// `labels` is the first point of `means` and above 0: fewer labels than that might have
/// done, so it is only an upper bound (at 0 labels it is exact).
fn at_first_point(means: &[(f64, f64)], labels: f64) -> bool {
    means.first().is_some_and(|p| labels <= p.0 && p.0 > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_mean_height() {
        // Trapezoids: (0.2+0.4)/2*10 + (0.4+0.4)/2*20 = 3 + 8 = 11 over range 30.
        let pts = [(10.0, 0.2), (20.0, 0.4), (40.0, 0.4)];
        assert!((normalized_auc(&pts).unwrap() - 11.0 / 30.0).abs() < 1e-15);
        assert_eq!(normalized_auc(&[(5.0, 0.3)]), Some(0.3));
        assert_eq!(normalized_auc(&[]), None);
    }

    #[test]
    fn auc_over_a_shared_range_clips_and_interpolates() {
        let pts = [(10.0, 0.2), (20.0, 0.4), (40.0, 0.4)];
        assert_eq!(auc_over(&pts, 10.0, 40.0), normalized_auc(&pts));
        // 15..30: (0.3+0.4)/2·5 + 0.4·10 = 5.75 over 15.
        assert!((auc_over(&pts, 15.0, 30.0).unwrap() - 5.75 / 15.0).abs() < 1e-15);
        assert!((auc_over(&pts, 15.0, 15.0).unwrap() - 0.3).abs() < 1e-15);
        assert_eq!(auc_over(&pts, 5.0, 30.0), None);
        assert_eq!(auc_over(&pts, 30.0, 20.0), None);
    }

    #[test]
    fn reach_interpolates_first_crossing() {
        let pts = [(10.0, 0.1), (20.0, 0.3), (30.0, 0.2), (40.0, 0.5)];
        // Crosses 0.2 between 10 and 20: 10 + (0.1 / 0.2) * 10 = 15.
        assert!((x_to_reach(&pts, 0.2).unwrap() - 15.0).abs() < 1e-12);
        assert_eq!(x_to_reach(&pts, 0.05), Some(10.0));
        assert_eq!(x_to_reach(&pts, 0.5), Some(40.0));
        assert_eq!(x_to_reach(&pts, 0.51), None);
        // A floating-point tie is reached, at the point itself.
        let tie = [(10.0, 0.1), (20.0, (0.7 + 0.1) / 2.0)];
        assert!(tie[1].1 < 0.4);
        assert_eq!(x_to_reach(&tie, 0.4), Some(20.0));
        assert_eq!(x_to_reach(&tie, 0.4 + 1e-6), None);
    }

    #[test]
    fn table_flags_targets_met_at_the_first_point() {
        use crate::report::aggregate::{MeanCurve, MeanPoint};
        use crate::report::stats::summarize;
        let curve = |name: &str, ys: &[f64]| MeanCurve {
            strategy: name.into(),
            metric: "m".into(),
            points: ys
                .iter()
                .enumerate()
                .map(|(i, &y)| MeanPoint {
                    x: 10.0 * (i + 1) as f64,
                    summary: summarize(&[y]),
                })
                .collect(),
        };
        let curves = [
            curve("random", &[0.1, 0.2, 0.3]),
            curve("good", &[0.35, 0.4, 0.5]),
        ];
        let t = savings_table("m", &curves, "random");
        let good = t.rows.iter().find(|r| r.strategy == "good").unwrap();
        assert_eq!(good.labels_to_reach, Some(10.0));
        assert!(good.reached_at_first_point);
        // good may have needed fewer than 10 labels: the saving is at least 3.
        assert!((good.saving.unwrap() - 3.0).abs() < 1e-12);
        assert_eq!(good.saving_bound, SavingBound::AtLeast);
        let random = t.rows.iter().find(|r| r.strategy == "random").unwrap();
        assert!(!random.reached_at_first_point);
        let md = crate::report::markdown::render_report(
            "e",
            &[],
            &crate::report::markdown::ReportNotes::default(),
            &[t],
            &[],
        );
        assert!(
            md.contains("| good | 0.4125 | 30 | 0.5000 | ≤ 10 | ≥ 3.00× |"),
            "{md}"
        );
    }
}
