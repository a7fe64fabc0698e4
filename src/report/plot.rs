//! Figures: one line per strategy (mean over seeds) with the Student-t 95% confidence interval
//! of that mean as a shaded band (said in the legend); the reference strategy is drawn as a
//! black dashed line on top of the others.
use crate::report::aggregate::{MeanCurve, XAxis};
use crate::report::direction::{direction_of, Direction};
use crate::report::figure_text::{
    fitted_caption, legend_entry, x_tick_label, y_axis_title, CAPTION_SIZE,
};
use crate::report::font::{drawable, register_bundled_font, FAMILY};
use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The legend entry of the shaded bands (drawn when some strategy has two seeds or more).
pub const BAND_LABEL: &str = "shaded: 95% CI of the mean over seeds (Student t)";

/// Figure size in pixels (SVG user units).
pub const FIGURE_SIZE: (u32, u32) = (960, 600);

/// What one figure shows.
pub struct FigureSpec<'a> {
    pub experiment: &'a str,
    pub metric: &'a str,
    pub reference: &'a str,
    pub x: XAxis,
}

/// The figure as SVG text.
pub fn render_svg(curves: &[MeanCurve], spec: &FigureSpec<'_>) -> Result<String> {
    register_bundled_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, FIGURE_SIZE).into_drawing_area();
        // The SVG's viewer draws text with the system's fonts, which may have what ours lacks.
        draw(&root, curves, spec, &str::to_string)?;
    }
    Ok(svg)
}

/// Render the figure to a PNG file at `path`, atomically (temporary file, then rename).
pub fn write_png(curves: &[MeanCurve], spec: &FigureSpec<'_>, path: &Path) -> Result<()> {
    register_bundled_font()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The bitmap encoder picks the format from the extension, so the temporary keeps `.png`.
    let tmp = crate::util::atomic::shareable_temp_file(dir, ".tmp", ".png")?;
    {
        let root = BitMapBackend::new(tmp.path(), FIGURE_SIZE).into_drawing_area();
        draw(&root, curves, spec, &drawable)?;
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot move the new {} into place", path.display()))?;
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    curves: &[MeanCurve],
    spec: &FigureSpec<'_>,
    // Names as the backend can draw them.
    text: &dyn Fn(&str) -> String,
) -> Result<()> {
    let failed = |what: &str, e: &dyn std::fmt::Debug| {
        anyhow!(
            "cannot draw the {what} of the {} figure: {e:?}",
            spec.metric
        )
    };
    root.fill(&WHITE).map_err(|e| failed("background", &e))?;
    // A 95% CI from two seeds is wide (t = 12.7); drawn past the metric's own range it would
    // squash the curves into a thin strip, so bands are clipped to that range.
    let bounds = metric_bounds(spec.metric);
    let clip = |v: f64| bounds.map_or(v, |(lo, hi)| v.clamp(lo, hi));
    let (xr, yr) = ranges(curves, &clip, bounds);
    let x_span = xr.end - xr.start;
    // Whatever is not finite (an infinite CI from huge values, whose variance overflows) is
    // left out of the ranges above; drawn, it is held to the y range, so the axes stay finite.
    let (y_lo, y_hi) = (yr.start, yr.end);
    let clip = move |v: f64| {
        if v.is_nan() {
            v
        } else {
            clip(v).clamp(y_lo, y_hi)
        }
    };
    let mut chart = ChartBuilder::on(root)
        .caption(
            fitted_caption(&text(spec.experiment), &text(spec.metric)),
            (FAMILY, CAPTION_SIZE),
        )
        .margin(18)
        .x_label_area_size(52)
        .y_label_area_size(72)
        .build_cartesian_2d(xr, yr)
        .map_err(|e| failed("axes", &e))?;
    let x_format = |v: &f64| x_tick_label(*v, spec.x, x_span);
    chart
        .configure_mesh()
        .x_label_formatter(&x_format)
        .x_desc(spec.x.title())
        .y_desc(text(&y_axis_title(spec.metric)))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| failed("grid", &e))?;

    // Others first, the reference last so it stays visible on top.
    let mut ordered: Vec<(usize, &MeanCurve)> = curves
        .iter()
        .filter(|c| c.strategy != spec.reference)
        .enumerate()
        .collect();
    ordered.extend(
        curves
            .iter()
            .filter(|c| c.strategy == spec.reference)
            .map(|c| (0, c)),
    );

    for &(i, c) in &ordered {
        if c.points.iter().any(|p| p.summary.ci95.is_some()) {
            let color = color_of(c, i, spec.reference);
            let drawable: Vec<_> = c
                .points
                .iter()
                .filter(|p| p.x.is_finite() && p.summary.mean.is_finite())
                .collect();
            let bound = |p: &&crate::report::aggregate::MeanPoint, hi: bool| {
                let v = p
                    .summary
                    .ci95
                    .map_or(p.summary.mean, |ci| if hi { ci.1 } else { ci.0 });
                // A NaN bound (inf − inf) is drawn as the mean.
                if v.is_nan() {
                    clip(p.summary.mean)
                } else {
                    clip(v)
                }
            };
            let mut band: Vec<(f64, f64)> =
                drawable.iter().map(|p| (p.x, bound(p, true))).collect();
            band.extend(drawable.iter().rev().map(|p| (p.x, bound(p, false))));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band,
                    color.mix(0.15).filled(),
                )))
                .map_err(|e| failed("confidence band", &e))?;
        }
    }
    // Said only when strategies differ in seeds: a strategy drawn without a band then has one
    // seed, not a narrow spread.
    let seed_counts: Vec<usize> = curves.iter().map(seeds_of).collect();
    let show_seeds = seed_counts.iter().any(|&n| n != seed_counts[0]);
    for &(i, c) in &ordered {
        let color = color_of(c, i, spec.reference);
        let label = text(&legend_entry(
            &c.strategy,
            c.strategy == spec.reference,
            show_seeds.then(|| seeds_of(c)),
        ));
        let pts: Vec<(f64, f64)> = c
            .means()
            .into_iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|(x, y)| (x, clip(y)))
            .collect();
        let style = color.stroke_width(2);
        if c.strategy == spec.reference {
            chart
                .draw_series(DashedLineSeries::new(pts.clone(), 10, 6, style))
                .map_err(|e| failed("reference line", &e))?
                .label(label)
                .legend(move |(x, y)| {
                    // Dashed like the line it stands for.
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (8, 0)], style)
                        + PathElement::new(vec![(13, 0), (21, 0)], style)
                });
        } else {
            chart
                .draw_series(LineSeries::new(pts.clone(), style))
                .map_err(|e| failed("line", &e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 21, y)], style));
        }
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| failed("points", &e))?;
    }
    if curves
        .iter()
        .any(|c| c.points.iter().any(|p| p.summary.ci95.is_some()))
    {
        // Say what the shaded bands are, in the figure itself.
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())
            .map_err(|e| failed("legend", &e))?
            .label(BAND_LABEL)
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 21, y + 5)], BLACK.mix(0.15).filled())
            });
    }
    // Learning curves rise to the right (fall, when lower is better), so their ends stay clear
    // of a legend in the upper left (right); its font shrinks when there are many strategies.
    let legend_font = if curves.len() > 10 { 11 } else { 14 };
    let position = match direction_of(spec.metric).0 {
        Direction::Lower => SeriesLabelPosition::UpperRight,
        Direction::Higher | Direction::Neither => SeriesLabelPosition::UpperLeft,
    };
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, legend_font))
        .draw()
        .map_err(|e| failed("legend", &e))?;
    root.present().map_err(|e| failed("file", &e))?;
    Ok(())
}

/// Line colours of the strategies other than the reference (black): Tableau 10 with its light
/// hues darkened, then darker shades of each, every one at least 3:1 against white (the WCAG
/// contrast for graphics) so no line fades into the background. Reused in turn past 20.
pub const PALETTE: [RGBColor; 20] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xc2, 0x34, 0x8f),
    RGBColor(0x6b, 0x6b, 0x6b),
    RGBColor(0x7f, 0x80, 0x00),
    RGBColor(0x0e, 0x7c, 0x86),
    RGBColor(0x17, 0x40, 0x7a),
    RGBColor(0xa0, 0x40, 0x00),
    RGBColor(0x1b, 0x6b, 0x1b),
    RGBColor(0x8b, 0x1a, 0x1a),
    RGBColor(0x5e, 0x3c, 0x8f),
    RGBColor(0x5c, 0x3a, 0x30),
    RGBColor(0x8e, 0x1f, 0x6b),
    RGBColor(0x9c, 0x6b, 0x00),
    RGBColor(0x4f, 0x5a, 0x00),
    RGBColor(0x0b, 0x5c, 0x63),
];

fn color_of(curve: &MeanCurve, index: usize, reference: &str) -> RGBColor {
    if curve.strategy == reference {
        BLACK
    } else {
        PALETTE[index % PALETTE.len()]
    }
}

/// The seeds behind a mean curve: the most any of its points averages (a point where a seed's
/// value is not finite averages fewer).
fn seeds_of(curve: &MeanCurve) -> usize {
    curve.points.iter().map(|p| p.summary.n).max().unwrap_or(0)
}

/// The range a registered metric's values live in (`0-1`, `0-100`, `1-5`), if bounded.
fn metric_bounds(metric: &str) -> Option<(f64, f64)> {
    let scale = crate::metrics::registry::info_of(metric)?.scale;
    let (lo, hi) = scale.split_once('-')?;
    Some((lo.parse().ok()?, hi.parse().ok()?))
}

/// Axis ranges covering every finite mean and CI bound, padded so lines do not touch the
/// frame. Values not finite are left out, and magnitudes are held to ±1e300 so the padded span
/// stays finite: the axes of huge values are drawn instead of never finishing.
fn ranges(
    curves: &[MeanCurve],
    clip: &dyn Fn(f64) -> f64,
    bounds: Option<(f64, f64)>,
) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    const LIMIT: f64 = 1e300;
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let finite = |v: f64| v.is_finite().then(|| v.clamp(-LIMIT, LIMIT));
    for p in curves.iter().flat_map(|c| &c.points) {
        let (Some(x), Some(mean)) = (finite(p.x), finite(clip(p.summary.mean))) else {
            continue;
        };
        let (lo, hi) = p.summary.ci95.unwrap_or((mean, mean));
        let lo = finite(clip(lo)).unwrap_or(mean);
        let hi = finite(clip(hi)).unwrap_or(mean);
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(lo.min(mean));
        y1 = y1.max(hi.max(mean));
    }
    if x0 > x1 {
        return (0.0..1.0, 0.0..1.0);
    }
    let pad = |lo: f64, hi: f64, frac: f64| {
        let span = hi - lo;
        let p = if span > 0.0 {
            span * frac
        } else {
            lo.abs().max(1.0) * 0.05
        };
        (lo - p)..(hi + p)
    };
    let mut y = pad(y0, y1, 0.08);
    // The padding must not reach past a bounded metric's range far enough for a tick there
    // (a flat ROUGE of 0 was drawn on an axis from -0.05): a fiftieth of the span inside the
    // range is less than any tick spacing plotters picks for it.
    if let Some((lo, hi)) = bounds {
        if y.start < lo && lo <= y0 {
            y.start = lo - (y.start - lo).abs().min((y.end.min(hi) - lo) * 0.02);
        }
        if y.end > hi && y1 <= hi {
            y.end = hi + (y.end - hi).min((hi - y.start.max(lo)) * 0.02);
        }
    }
    (pad(x0, x1, 0.02), y)
}

#[cfg(test)]
mod tests {
    use super::{metric_bounds, ranges, PALETTE};

    /// WCAG contrast ratio of a colour against white.
    fn contrast_on_white(c: &plotters::style::RGBColor) -> f64 {
        let lin = |v: u8| {
            let v = v as f64 / 255.0;
            if v <= 0.039_28 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        let l = 0.2126 * lin(c.0) + 0.7152 * lin(c.1) + 0.0722 * lin(c.2);
        1.05 / (l + 0.05)
    }

    #[test]
    fn every_line_colour_stands_out_on_white_and_differs() {
        for c in &PALETTE {
            let ratio = contrast_on_white(c);
            assert!(ratio >= 3.0, "{c:?}: contrast {ratio:.2} on white");
            // Not black either: black is the reference's.
            assert_ne!((c.0, c.1, c.2), (0, 0, 0));
        }
        for (i, a) in PALETTE.iter().enumerate() {
            for b in &PALETTE[i + 1..] {
                let d = (a.0 as i32 - b.0 as i32).abs()
                    + (a.1 as i32 - b.1 as i32).abs()
                    + (a.2 as i32 - b.2 as i32).abs();
                assert!(d >= 40, "{a:?} and {b:?} are too alike");
            }
        }
    }

    #[test]
    fn the_y_axis_stays_within_a_bounded_metric_range_but_for_a_sliver() {
        use crate::report::aggregate::{MeanCurve, MeanPoint};
        use crate::report::stats::summarize;
        let flat = |y: f64| {
            [MeanCurve {
                strategy: "random".into(),
                metric: "rouge2".into(),
                points: [4.0, 8.0]
                    .iter()
                    .map(|&x| MeanPoint {
                        x,
                        summary: summarize(&[y, y]),
                    })
                    .collect(),
            }]
        };
        let same = |v: f64| v;
        // A flat 0 (a tiny run's ROUGE-2) and a flat 1: no tick past the range.
        let (_, y) = ranges(&flat(0.0), &same, Some((0.0, 1.0)));
        assert!(y.start < 0.0 && y.start > -0.002 && y.end >= 0.05, "{y:?}");
        let (_, y) = ranges(&flat(1.0), &same, Some((0.0, 1.0)));
        assert!(y.end > 1.0 && y.end < 1.002 && y.start <= 0.95, "{y:?}");
        // Inside the range, and for a metric without one, the padding stays.
        let (_, y) = ranges(&flat(0.5), &same, Some((0.0, 1.0)));
        assert!(
            (y.start - 0.45).abs() < 1e-12 && (y.end - 0.55).abs() < 1e-12,
            "{y:?}"
        );
        let (_, y) = ranges(&flat(0.0), &same, None);
        assert_eq!(y, -0.05..0.05);
    }

    #[test]
    fn bands_are_clipped_to_each_metric_scale() {
        assert_eq!(metric_bounds("rouge1"), Some((0.0, 1.0)));
        assert_eq!(metric_bounds("sacrebleu"), Some((0.0, 100.0)));
        assert_eq!(metric_bounds("llm_judge"), Some((1.0, 5.0)));
        assert_eq!(metric_bounds("pred_words"), None);
        assert_eq!(metric_bounds("not_a_metric"), None);
    }
}
