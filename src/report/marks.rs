//! A series' line and point markers drawn in its [`SeriesStyle`], the same way on the plot
//! (data coordinates) and in the legend's swatches (pixels).
use crate::report::series_style::SeriesStyle;
use plotters::coord::CoordTranslate;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Width of every series' line, in pixels.
pub const LINE_WIDTH: u32 = 2;

/// `points` joined by a line in `style`'s colour and dash.
pub fn draw_line<DB, CT>(
    area: &DrawingArea<DB, CT>,
    points: Vec<CT::From>,
    style: &SeriesStyle,
) -> DrawResult<DB>
where
    DB: DrawingBackend,
    CT: CoordTranslate,
    CT::From: Clone,
{
    let stroke = style.rgb().stroke_width(LINE_WIDTH);
    match style.dash.pattern() {
        None => area.draw(&PathElement::new(points, stroke)),
        Some((dash, gap)) => area.draw(&DashedPathElement::new(points, dash, gap, stroke)),
    }
}

/// `style`'s marker at each of `points`.
pub fn draw_markers<DB, CT>(
    area: &DrawingArea<DB, CT>,
    points: &[CT::From],
    style: &SeriesStyle,
) -> DrawResult<DB>
where
    DB: DrawingBackend,
    CT: CoordTranslate,
    CT::From: Clone,
{
    let fill = style.rgb().filled();
    for point in points {
        let at = EmptyElement::at(point.clone());
        match style.marker.outline() {
            None => area.draw(&(at + Circle::new((0, 0), 3, fill)))?,
            Some(outline) => area.draw(&(at + Polygon::new(outline, fill)))?,
        }
    }
    Ok(())
}
