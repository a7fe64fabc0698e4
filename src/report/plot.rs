//! Figures: one line per strategy (mean over seeds) with the Student-t 95% confidence interval
//! of that mean as a shaded band (said in the legend); the reference strategy is drawn as a
//! black dashed line on top of the others, the legend to the right of the plot.
use crate::report::aggregate::{MeanCurve, XAxis};
use crate::report::figure_text::{
    fitted_caption, legend_entry, x_tick_label, y_axis_title, CAPTION_SIZE,
};
use crate::report::font::{drawable, register_bundled_font, FAMILY};
use crate::report::legend::{
    draw_legend, legend_layout, LegendEntry, LegendLayout, Swatch, SVG_TEXT_SLACK,
};
use crate::report::marks::{draw_line, draw_markers};
use crate::report::series_style::{reference_style, series_style, SeriesStyle};
use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The legend entry of the shaded bands (drawn when some strategy has two seeds or more).
pub const BAND_LABEL: &str = "shaded: 95% CI of the mean over seeds (Student t)";

/// Size in pixels (SVG user units) of the plot: caption, axes, curves and bands. The legend is
/// drawn to its right, the figure as much wider as the legend needs.
pub const PLOT_SIZE: (u32, u32) = (960, 600);

/// Space around the plot and right of the legend.
const MARGIN: u32 = 18;
/// The legend's top, level with the top of the plot's frame (under the caption).
const LEGEND_TOP: i32 = 48;

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
    // The SVG's viewer draws text with the system's fonts, which may have what ours lacks
    // and be wider than ours.
    let figure = plan(curves, spec, &str::to_string, SVG_TEXT_SLACK);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, figure.size()).into_drawing_area();
        draw(&root, &figure, spec)?;
    }
    Ok(svg)
}

/// Render the figure to a PNG file at `path`, atomically (temporary file, then rename).
pub fn write_png(curves: &[MeanCurve], spec: &FigureSpec<'_>, path: &Path) -> Result<()> {
    register_bundled_font()?;
    let figure = plan(curves, spec, &drawable, 1.0);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The bitmap encoder picks the format from the extension, so the temporary keeps `.png`.
    let tmp = crate::util::atomic::shareable_temp_file(dir, ".tmp", ".png")?;
    {
        let root = BitMapBackend::new(tmp.path(), figure.size()).into_drawing_area();
        draw(&root, &figure, spec)?;
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot move the new {} into place", path.display()))?;
    Ok(())
}

/// What a figure draws, worked out before its canvas is made: the canvas is as wide as the
/// plot and the legend together.
struct Plan<'a> {
    /// Each curve with its look: the others first, the reference last so it stays visible
    /// on top.
    ordered: Vec<(&'a MeanCurve, SeriesStyle)>,
    /// The curves in the order given, for the axes' ranges.
    curves: &'a [MeanCurve],
    legend: Vec<LegendEntry>,
    layout: LegendLayout,
    /// The caption and y axis title, as the backend can draw them.
    caption: String,
    y_title: String,
}

impl Plan<'_> {
    fn size(&self) -> (u32, u32) {
        let legend_width = self.layout.size.0.max(0) as u32;
        (PLOT_SIZE.0 + legend_width + MARGIN, PLOT_SIZE.1)
    }
}

fn plan<'a>(
    curves: &'a [MeanCurve],
    spec: &FigureSpec<'_>,
    // Names as the backend can draw them.
    text: &dyn Fn(&str) -> String,
    text_slack: f64,
) -> Plan<'a> {
    let is_reference = |c: &MeanCurve| c.strategy == spec.reference;
    let mut ordered: Vec<(&MeanCurve, SeriesStyle)> = curves
        .iter()
        .filter(|c| !is_reference(c))
        .enumerate()
        .map(|(i, c)| (c, series_style(i)))
        .collect();
    ordered.extend(
        curves
            .iter()
            .filter(|c| is_reference(c))
            .map(|c| (c, reference_style())),
    );
    // Said only when strategies differ in seeds: a strategy drawn without a band then has one
    // seed, not a narrow spread.
    let seed_counts: Vec<usize> = curves.iter().map(seeds_of).collect();
    let show_seeds = seed_counts.iter().any(|&n| n != seed_counts[0]);
    let mut legend: Vec<LegendEntry> = ordered
        .iter()
        .map(|&(c, style)| LegendEntry {
            label: text(&legend_entry(
                &c.strategy,
                is_reference(c),
                show_seeds.then(|| seeds_of(c)),
            )),
            swatch: Swatch::Series(style),
        })
        .collect();
    let any_band = curves
        .iter()
        .any(|c| c.points.iter().any(|p| p.summary.ci95.is_some()));
    if any_band {
        // Say what the shaded bands are, in the figure itself.
        legend.push(LegendEntry {
            label: BAND_LABEL.to_string(),
            swatch: Swatch::Band,
        });
    }
    // Many strategies get a smaller font, so fewer columns.
    let font_size = if curves.len() > 10 { 12 } else { 14 };
    let labels: Vec<String> = legend.iter().map(|e| e.label.clone()).collect();
    let room = PLOT_SIZE.1 as i32 - LEGEND_TOP - MARGIN as i32;
    let layout = legend_layout(&labels, font_size, room, text_slack);
    Plan {
        curves,
        ordered,
        legend,
        layout,
        caption: fitted_caption(&text(spec.experiment), &text(spec.metric)),
        y_title: text(&y_axis_title(spec.metric)),
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    figure: &Plan<'_>,
    spec: &FigureSpec<'_>,
) -> Result<()> {
    let failed = |what: &str, e: &dyn std::fmt::Debug| {
        anyhow!(
            "cannot draw the {what} of the {} figure: {e:?}",
            spec.metric
        )
    };
    root.fill(&WHITE).map_err(|e| failed("background", &e))?;
    let (plot_area, legend_area) = root.split_horizontally(PLOT_SIZE.0);
    // A 95% CI from two seeds is wide (t = 12.7); drawn past the metric's own range it would
    // squash the curves into a thin strip, so bands are clipped to that range.
    let bounds = metric_bounds(spec.metric);
    let clip = |v: f64| bounds.map_or(v, |(lo, hi)| v.clamp(lo, hi));
    let (xr, yr) = ranges(figure.curves, &clip, bounds);
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
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(&figure.caption, (FAMILY, CAPTION_SIZE))
        .margin(MARGIN)
        .x_label_area_size(52)
        .y_label_area_size(72)
        .build_cartesian_2d(xr, yr)
        .map_err(|e| failed("axes", &e))?;
    let x_format = |v: &f64| x_tick_label(*v, spec.x, x_span);
    chart
        .configure_mesh()
        .x_label_formatter(&x_format)
        .x_desc(spec.x.title())
        .y_desc(&figure.y_title)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| failed("grid", &e))?;

    // Bands first, under every line.
    for &(c, style) in &figure.ordered {
        if c.points.iter().any(|p| p.summary.ci95.is_some()) {
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
                    style.rgb().mix(0.15).filled(),
                )))
                .map_err(|e| failed("confidence band", &e))?;
        }
    }
    let area = chart.plotting_area();
    for &(c, style) in &figure.ordered {
        let pts: Vec<(f64, f64)> = c
            .means()
            .into_iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|(x, y)| (x, clip(y)))
            .collect();
        draw_line(area, pts.clone(), &style).map_err(|e| failed("line", &e))?;
        draw_markers(area, &pts, &style).map_err(|e| failed("points", &e))?;
    }
    draw_legend(
        &legend_area,
        &figure.legend,
        &figure.layout,
        (0, LEGEND_TOP),
    )
    .map_err(|e| failed("legend", &e))?;
    root.present().map_err(|e| failed("file", &e))?;
    Ok(())
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
    use super::{metric_bounds, ranges};

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
