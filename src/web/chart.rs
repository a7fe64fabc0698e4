//! A small inline SVG line chart of one cell's curve (a metric against labeled examples),
//! drawn from curve.csv so the cell page shows the curve growing while the run goes on; the
//! report's figures only exist once the run has finished.
use crate::runner::curve::Curve;
use crate::web::html::escape;

const WIDTH: f64 = 420.0;
const HEIGHT: f64 = 220.0;
const MARGIN: f64 = 40.0;

/// Points of `metric` as (labeled, value), non-finite values left out.
pub fn points(curve: &Curve, metric: &str) -> Vec<(f64, f64)> {
    curve
        .rows
        .iter()
        .filter_map(|r| Some((r.labeled as f64, curve.value(r, metric)?)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// Map data points into the plot area (SVG y grows downwards). A flat range is widened so
/// a constant curve draws as a line in the middle.
pub fn to_pixels(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let range = |vals: Vec<f64>| {
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, lo + 0.5)
        }
    };
    let (x0, x1) = range(points.iter().map(|p| p.0).collect());
    let (y0, y1) = range(points.iter().map(|p| p.1).collect());
    let (w, h) = (WIDTH - 2.0 * MARGIN, HEIGHT - 2.0 * MARGIN);
    points
        .iter()
        .map(|&(x, y)| {
            (
                MARGIN + (x - x0) / (x1 - x0) * w,
                HEIGHT - MARGIN - (y - y0) / (y1 - y0) * h,
            )
        })
        .collect()
}

/// The chart, or nothing when the metric has no finite point yet.
pub fn curve_svg(curve: &Curve, metric: &str) -> String {
    let data = points(curve, metric);
    if data.is_empty() {
        return String::new();
    }
    let pixels = to_pixels(&data);
    let line: Vec<String> = pixels
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let dots: String = pixels
        .iter()
        .zip(&data)
        .map(|((x, y), (l, v))| {
            format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\"><title>{l} labeled: {v:.4}</title></circle>")
        })
        .collect();
    let (min, max) = data
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    format!(
        "<svg class=\"live-curve\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\">\
         <rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#fff\" stroke=\"#ddd\"/>\
         <text x=\"{MARGIN}\" y=\"18\" font-size=\"13\">{m} (min {min:.4}, max {max:.4})</text>\
         <text x=\"{MARGIN}\" y=\"{yb}\" font-size=\"11\">labeled examples: {first} → {last}</text>\
         <polyline fill=\"none\" stroke=\"#23395d\" stroke-width=\"2\" points=\"{pts}\"/>{dots}</svg>",
        m = escape(metric),
        yb = HEIGHT - 10.0,
        first = data[0].0,
        last = data[data.len() - 1].0,
        pts = line.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::curve::CurveRow;

    fn curve(values: &[(usize, f64)]) -> Curve {
        let mut c = Curve::new(vec!["rouge1".into()]);
        for (i, &(labeled, v)) in values.iter().enumerate() {
            c.push(CurveRow {
                iteration: i,
                labeled,
                cost: 0.0,
                tokens: 0,
                seconds: 0.0,
                metrics: vec![v],
            })
            .unwrap();
        }
        c
    }

    #[test]
    fn points_span_the_plot_area_with_higher_values_higher_up() {
        let c = curve(&[(10, 0.1), (20, f64::NAN), (30, 0.3)]);
        assert_eq!(points(&c, "rouge1"), [(10.0, 0.1), (30.0, 0.3)]);
        let px = to_pixels(&points(&c, "rouge1"));
        assert_eq!(px[0], (MARGIN, HEIGHT - MARGIN));
        assert_eq!(px[1], (WIDTH - MARGIN, MARGIN));
        let flat = to_pixels(&[(1.0, 0.0), (2.0, 0.0)]);
        assert_eq!(flat[0].1, HEIGHT / 2.0);
    }

    #[test]
    fn svg_has_one_dot_per_point_and_escapes_the_metric() {
        let c = curve(&[(2, 0.0), (4, 0.5)]);
        let svg = curve_svg(&c, "rouge1");
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("labeled examples: 2 → 4"));
        assert_eq!(curve_svg(&c, "bleu"), "", "no such metric, no chart");
        let mut odd = Curve::new(vec!["<b>".into()]);
        odd.push(CurveRow {
            iteration: 0,
            labeled: 1,
            cost: 0.0,
            tokens: 0,
            seconds: 0.0,
            metrics: vec![1.0],
        })
        .unwrap();
        assert!(curve_svg(&odd, "<b>").contains("&lt;b&gt; (min"));
    }
}
