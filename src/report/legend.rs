//! The legend, drawn beside the plot (to its right) so it covers no curve or band wherever
//! the curves run, in as many columns as the plot's height needs; the figure grows wider to
//! hold it.
use crate::report::font::FAMILY;
use crate::report::marks::{draw_line, draw_markers, LINE_WIDTH};
use crate::report::series_style::SeriesStyle;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// What an entry's swatch shows.
#[derive(Clone, Debug)]
pub enum Swatch {
    /// A curve: its line, dash and marker.
    Series(SeriesStyle),
    /// The shaded confidence bands.
    Band,
}

/// One legend entry.
#[derive(Clone, Debug)]
pub struct LegendEntry {
    pub label: String,
    pub swatch: Swatch,
}

/// Room left in the SVG's legend for text wider than the DejaVu Sans it is measured with:
/// browsers draw it with the first font of the list they have, and one as wide as Verdana
/// (about as wide as DejaVu Sans) or wider than Arial (narrower) must still fit in the box.
pub const SVG_TEXT_SLACK: f64 = 1.2;

const PADDING: i32 = 8;
const SWATCH_LENGTH: i32 = 28;
const SWATCH_GAP: i32 = 6;
const COLUMN_GAP: i32 = 16;

/// Where the legend's entries go and how big its box is, in pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct LegendLayout {
    pub font_size: u32,
    pub row_height: i32,
    pub rows_per_column: usize,
    /// Swatch, gap and text of each column.
    pub column_widths: Vec<i32>,
    /// The box's width and height.
    pub size: (i32, i32),
}

/// The legend of `labels` at `font_size`, in columns no taller than `max_height`; each text is
/// given its DejaVu Sans width times `text_slack`.
pub fn legend_layout(
    labels: &[String],
    font_size: u32,
    max_height: i32,
    text_slack: f64,
) -> LegendLayout {
    let row_height = font_size as i32 + 7;
    let rows_per_column = (((max_height - 2 * PADDING) / row_height).max(1)) as usize;
    let column_widths: Vec<i32> = labels
        .chunks(rows_per_column)
        .map(|column| {
            let widest = column
                .iter()
                .map(|label| text_width(label, font_size))
                .fold(0.0, f64::max);
            SWATCH_LENGTH + SWATCH_GAP + (widest * text_slack).ceil() as i32
        })
        .collect();
    let columns = column_widths.len() as i32;
    let width = 2 * PADDING + column_widths.iter().sum::<i32>() + COLUMN_GAP * (columns - 1).max(0);
    let rows = labels.len().min(rows_per_column) as i32;
    LegendLayout {
        font_size,
        row_height,
        rows_per_column,
        column_widths,
        size: (width, 2 * PADDING + rows * row_height),
    }
}

/// `text`'s width in pixels in the bundled font at `size`; estimated from its length should
/// the font not be registered.
fn text_width(text: &str, size: u32) -> f64 {
    let font = FontDesc::from((FAMILY, size as f64));
    match font.box_size(text) {
        Ok((width, _)) => width as f64,
        Err(_) => text.chars().count() as f64 * size as f64 * 0.7,
    }
}

/// Draw `entries`, laid out by `layout`, with the box's top left corner at `corner` of `area`.
pub fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    layout: &LegendLayout,
    corner: (i32, i32),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (x0, y0) = corner;
    let (width, height) = layout.size;
    let frame = [(x0, y0), (x0 + width, y0 + height)];
    area.draw(&Rectangle::new(frame, WHITE.filled()))?;
    area.draw(&Rectangle::new(frame, BLACK.stroke_width(1)))?;
    let font = TextStyle::from((FAMILY, layout.font_size as f64).into_font())
        .pos(Pos::new(HPos::Left, VPos::Center));
    let mut column_x = x0 + PADDING;
    for (column, chunk) in entries.chunks(layout.rows_per_column).enumerate() {
        for (row, entry) in chunk.iter().enumerate() {
            let y = y0 + PADDING + row as i32 * layout.row_height + layout.row_height / 2;
            let (start, end) = ((column_x, y), (column_x + SWATCH_LENGTH, y));
            match &entry.swatch {
                Swatch::Series(style) => {
                    draw_line(area, vec![start, end], style)?;
                    draw_markers(area, &[(column_x + SWATCH_LENGTH / 2, y)], style)?;
                }
                Swatch::Band => {
                    let half = 5.max(LINE_WIDTH as i32);
                    area.draw(&Rectangle::new(
                        [(start.0, y - half), (end.0, y + half)],
                        BLACK.mix(0.15).filled(),
                    ))?;
                }
            }
            let text_x = column_x + SWATCH_LENGTH + SWATCH_GAP;
            area.draw(&Text::new(entry.label.clone(), (text_x, y), font.clone()))?;
        }
        column_x += layout.column_widths[column] + COLUMN_GAP;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("strategy_{i:02}")).collect()
    }

    #[test]
    fn a_legend_taller_than_the_plot_is_split_into_columns_that_fit() {
        crate::report::font::register_bundled_font().unwrap();
        let one = legend_layout(&labels(5), 14, 530, 1.0);
        assert_eq!(one.column_widths.len(), 1);
        assert_eq!(one.size.1, 2 * PADDING + 5 * one.row_height);
        let many = legend_layout(&labels(62), 12, 530, 1.0);
        assert!(many.column_widths.len() >= 2, "{many:?}");
        assert!(many.size.1 <= 530, "{many:?}");
        assert!(many.rows_per_column * many.column_widths.len() >= 62);
    }

    #[test]
    fn the_slack_widens_each_column_by_its_text() {
        crate::report::font::register_bundled_font().unwrap();
        let long = vec!["a_rather_long_strategy_name (3 seeds)".to_string()];
        let tight = legend_layout(&long, 14, 530, 1.0);
        let loose = legend_layout(&long, 14, 530, SVG_TEXT_SLACK);
        let text = text_width(&long[0], 14);
        assert!(text > 100.0, "{text}");
        let added = (loose.size.0 - tight.size.0) as f64;
        assert!(
            (added - text * (SVG_TEXT_SLACK - 1.0)).abs() <= 1.0,
            "{added}"
        );
    }
}
