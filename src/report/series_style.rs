//! How each strategy's curve looks: a colour, a line dash and a point marker, cycled on
//! different periods so no two of the first 240 strategies look alike, however many share a
//! colour.
use plotters::style::{RGBColor, BLACK};

/// Line colours of the strategies other than the reference (black): Tableau 10 with its light
/// hues darkened, then darker shades of each, every one at least 3:1 against white (the WCAG
/// contrast for graphics) so no line fades into the background. Reused in turn past 20, where
/// the dash and marker tell the strategies that share one apart.
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

/// A line's dash pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dash {
    Solid,
    Dashed,
    Dotted,
}

impl Dash {
    pub const ALL: [Dash; 3] = [Dash::Solid, Dash::Dashed, Dash::Dotted];

    /// Lengths in pixels of each drawn piece and of the gap after it; `None` for a solid line.
    pub fn pattern(self) -> Option<(u32, u32)> {
        match self {
            Dash::Solid => None,
            Dash::Dashed => Some((9, 5)),
            // As long as the line is wide, so each piece reads as a dot.
            Dash::Dotted => Some((2, 4)),
        }
    }
}

/// The shape drawn at each point of a curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
}

impl Marker {
    pub const ALL: [Marker; 4] = [
        Marker::Circle,
        Marker::Square,
        Marker::Triangle,
        Marker::Diamond,
    ];

    /// The marker's outline as pixel offsets from the point, or `None` for a circle.
    pub fn outline(self) -> Option<Vec<(i32, i32)>> {
        match self {
            Marker::Circle => None,
            Marker::Square => Some(vec![(-3, -3), (3, -3), (3, 3), (-3, 3)]),
            Marker::Triangle => Some(vec![(0, -4), (4, 3), (-4, 3)]),
            Marker::Diamond => Some(vec![(0, -4), (4, 0), (0, 4), (-4, 0)]),
        }
    }
}

/// The look of one curve, its band (in its colour) and its legend entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeriesStyle {
    pub color: (u8, u8, u8),
    pub dash: Dash,
    pub marker: Marker,
}

impl SeriesStyle {
    pub fn rgb(&self) -> RGBColor {
        RGBColor(self.color.0, self.color.1, self.color.2)
    }
}

/// The reference strategy's look: black and dashed, apart from every other strategy's colour.
pub fn reference_style() -> SeriesStyle {
    SeriesStyle {
        color: (BLACK.0, BLACK.1, BLACK.2),
        dash: Dash::Dashed,
        marker: Marker::Circle,
    }
}

/// The look of the `index`-th strategy other than the reference. The colour repeats every 20,
/// the dash every 3 and the marker every 4 (shifted by one every 60), so two strategies look
/// alike only 240 apart; strategies 10 apart, whose colours are shades of one hue, differ in
/// dash and marker too.
pub fn series_style(index: usize) -> SeriesStyle {
    let color = PALETTE[index % PALETTE.len()];
    SeriesStyle {
        color: (color.0, color.1, color.2),
        dash: Dash::ALL[index % Dash::ALL.len()],
        marker: Marker::ALL[(index % 4 + index / 60) % Marker::ALL.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG contrast ratio of a colour against white.
    fn contrast_on_white(c: &RGBColor) -> f64 {
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

    /// Past 20 strategies the colours came round again, with nothing else to tell two curves
    /// apart.
    #[test]
    fn the_first_240_strategies_each_look_different() {
        let styles: Vec<SeriesStyle> = (0..240).map(series_style).collect();
        for (i, a) in styles.iter().enumerate() {
            for (j, b) in styles.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "strategies {i} and {j} look alike");
            }
            assert_ne!(
                *a,
                reference_style(),
                "strategy {i} looks like the reference"
            );
        }
        // Shades of one hue (10 apart) differ in more than the shade.
        for i in 0..230 {
            let (a, b) = (series_style(i), series_style(i + 10));
            assert!(
                a.dash != b.dash && a.marker != b.marker,
                "{i} and {}",
                i + 10
            );
        }
    }
}
