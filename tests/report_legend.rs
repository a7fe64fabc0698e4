//! The figures' legend: beside the plot, so it covers no curve or band wherever the curves
//! run; each strategy's entry looks different from every other, past the 20 colours; and its
//! box holds the SVG's text even when a browser draws it in a font wider than DejaVu Sans.
mod support;

use ab_glyph::{Font, FontRef};
use atgen_lab::report::write_report;
use support::report_curves::write_curve;

/// One SVG element: its name, attributes, and the text inside it (for `<text>`).
#[derive(Debug)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    text: String,
}

impl Element {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, key: &str) -> f64 {
        let value = self
            .attr(key)
            .unwrap_or_else(|| panic!("{self:?} has no {key}"));
        value.parse().unwrap_or_else(|_| panic!("{key}={value}"))
    }

    /// The pixel positions the element is drawn through.
    fn points(&self) -> Vec<(f64, f64)> {
        match self.name.as_str() {
            "circle" => vec![(self.number("cx"), self.number("cy"))],
            "polyline" | "polygon" => self
                .attr("points")
                .unwrap_or("")
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The elements of plotters' SVG in document order (it writes one tag per element, attribute
/// values in double quotes, and a text element's content on a line of its own).
fn elements(svg: &str) -> Vec<Element> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        if rest.starts_with('/') || rest.starts_with('?') || rest.starts_with('!') {
            continue;
        }
        let end = rest.find('>').unwrap();
        let tag = rest[..end].trim_end_matches('/');
        let name: String = tag.chars().take_while(|c| !c.is_whitespace()).collect();
        let mut attributes = Vec::new();
        for part in tag[name.len()..].split('"').collect::<Vec<_>>().chunks(2) {
            if let [key, value] = part {
                let key = key.trim().trim_end_matches('=').to_string();
                attributes.push((key, value.to_string()));
            }
        }
        let text = if name == "text" {
            let body = &rest[end + 1..];
            unescape(body[..body.find("</text>").unwrap()].trim())
        } else {
            String::new()
        };
        out.push(Element {
            name,
            attributes,
            text,
        });
        rest = &rest[end + 1..];
    }
    out
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The legend's box: the white rectangle that is not the figure's background. Returns its
/// index among `elements` and its left, top, right and bottom edges.
fn legend_box(elements: &[Element]) -> (usize, [f64; 4]) {
    let (i, rect) = elements
        .iter()
        .enumerate()
        .find(|(_, e)| {
            e.name == "rect"
                && e.attr("fill") == Some("#FFFFFF")
                && (e.number("x"), e.number("y")) != (0.0, 0.0)
        })
        .expect("no legend box");
    let (x, y) = (rect.number("x"), rect.number("y"));
    let (w, h) = (rect.number("width"), rect.number("height"));
    (i, [x, y, x + w, y + h])
}

fn report_svg(dir: &std::path::Path) -> String {
    std::env::set_var("LAB_QUIET", "1");
    write_report(dir, "random").unwrap();
    std::fs::read_to_string(dir.join("rouge1.svg")).unwrap()
}

/// The legend sat in the upper left (right, for a lower-is-better metric) on the claim that
/// learning curves start low; a strategy that starts high, or a wide band, ran under it.
#[test]
fn the_legend_covers_no_point_line_or_band_in_any_corner() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("corners");
    let steps: Vec<usize> = (1..=20).map(|i| i * 10).collect();
    let curve = |f: &dyn Fn(f64) -> f64, spread: f64, seed: u64| -> Vec<(usize, f64, f64)> {
        let last = *steps.last().unwrap() as f64;
        steps
            .iter()
            .map(|&l| (l, 0.0, f(l as f64 / last) + spread * (seed as f64 - 0.5)))
            .collect()
    };
    // High and low across the whole width, rising and falling corner to corner, each with
    // two seeds so its band is drawn too.
    for seed in [0, 1] {
        write_curve(&dir, "high", seed, &curve(&|_| 0.95, 0.04, seed));
        write_curve(&dir, "low", seed, &curve(&|_| 0.05, 0.04, seed));
        write_curve(&dir, "rise", seed, &curve(&|t| 0.05 + 0.9 * t, 0.04, seed));
        write_curve(&dir, "fall", seed, &curve(&|t| 0.95 - 0.9 * t, 0.04, seed));
        write_curve(&dir, "random", seed, &curve(&|_| 0.5, 0.1, seed));
    }
    let svg = report_svg(&dir);
    let elements = elements(&svg);
    let (at, [left, top, right, bottom]) = legend_box(&elements);
    let inside = |(x, y): (f64, f64)| x > left && x < right && y > top && y < bottom;
    let mut drawn = 0;
    for e in &elements[..at] {
        for p in e.points() {
            drawn += 1;
            assert!(!inside(p), "{} at {p:?} is under the legend", e.name);
        }
    }
    // Five strategies' lines, bands and 20 markers each were checked.
    assert!(drawn >= 5 * 20 * 3, "only {drawn} points drawn");
    // And the legend is on the canvas.
    let root = &elements[0];
    assert!(right <= root.number("width") && bottom <= root.number("height"));
}

/// The (colour, line pieces, marker) of each legend entry, with its label: the lines and
/// markers drawn in the legend's box are each given to the text just right of them on their
/// row, whatever the order they were drawn in.
fn legend_looks(elements: &[Element]) -> Vec<(String, String)> {
    let (at, _) = legend_box(elements);
    let legend = &elements[at + 1..];
    let texts: Vec<&Element> = legend.iter().filter(|e| e.name == "text").collect();
    // A text's middle: plotters anchors it at its top (`dy` 0.76em) or middle.
    let middle = |t: &Element| {
        let top = t.attr("dy") == Some("0.76em");
        t.number("y")
            + if top {
                0.5 * t.number("font-size")
            } else {
                0.0
            }
    };
    let mut swatches: Vec<Vec<&Element>> = vec![Vec::new(); texts.len()];
    for e in legend.iter().filter(|e| e.name != "text") {
        let points = e.points();
        if points.is_empty() {
            continue;
        }
        let n = points.len() as f64;
        let x = points.iter().map(|p| p.0).sum::<f64>() / n;
        let y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let owner = texts
            .iter()
            .enumerate()
            .filter(|(_, t)| t.number("x") > x && t.number("x") - x < 60.0)
            .min_by(|a, b| {
                let (da, db) = ((middle(a.1) - y).abs(), (middle(b.1) - y).abs());
                da.total_cmp(&db)
            })
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("{e:?} is beside no legend text"));
        swatches[owner].push(e);
    }
    texts
        .iter()
        .zip(&swatches)
        .map(|(text, swatch)| {
            let lines: Vec<&&Element> = swatch.iter().filter(|e| e.name == "polyline").collect();
            let colour = lines
                .first()
                .and_then(|l| l.attr("stroke"))
                .unwrap_or("none");
            let marker = swatch
                .iter()
                .find(|e| e.name == "circle" || e.name == "polygon")
                .map(|m| match m.name.as_str() {
                    "circle" => "circle".to_string(),
                    // The outline relative to its first point tells a square from a diamond.
                    _ => {
                        let p = m.points();
                        let outline: Vec<String> = p
                            .iter()
                            .map(|q| format!("{},{}", q.0 - p[0].0, q.1 - p[0].1))
                            .collect();
                        outline.join(" ")
                    }
                })
                .unwrap_or_default();
            let look = format!("{colour} {} {marker}", lines.len());
            (text.text.clone(), look)
        })
        .collect()
}

#[test]
fn sixty_strategies_each_have_a_legend_entry_that_looks_like_no_other() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sixty");
    for i in 0..60 {
        let y = 0.1 + 0.01 * i as f64;
        write_curve(
            &dir,
            &format!("strategy_{i:02}"),
            0,
            &[(10, 0.0, y), (20, 0.0, y + 0.1)],
        );
    }
    write_curve(&dir, "random", 0, &[(10, 0.0, 0.1), (20, 0.0, 0.2)]);
    let svg = report_svg(&dir);
    let elements = elements(&svg);
    let looks = legend_looks(&elements);
    assert_eq!(looks.len(), 61, "{looks:?}");
    for (i, (name, look)) in looks.iter().enumerate() {
        for (other, other_look) in &looks[i + 1..] {
            assert_ne!(look, other_look, "{name} and {other} look alike");
        }
    }
    // Every entry is on the canvas, however many columns that takes.
    let width = elements[0].number("width");
    let (_, [_, _, right, bottom]) = legend_box(&elements);
    assert!(right <= width && bottom <= elements[0].number("height"));
}

/// The legend was sized to its text in DejaVu Sans, but a browser draws the SVG's text in
/// the font `font-family` names, `sans-serif` being Arial, Helvetica or whatever the system
/// has: a wider one ran past the box.
#[test]
fn the_svg_legend_box_holds_its_text_in_a_font_a_fifth_wider_than_dejavu_sans() {
    static DEJAVU: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
    let font = FontRef::try_from_slice(DEJAVU).unwrap();
    let em = font.units_per_em().unwrap() as f64;
    let width_in_dejavu = |text: &str, size: f64| -> f64 {
        let glyphs: Vec<_> = text.chars().map(|c| font.glyph_id(c)).collect();
        let advance: f64 = glyphs
            .iter()
            .map(|&g| font.h_advance_unscaled(g) as f64)
            .sum();
        let kern: f64 = glyphs
            .windows(2)
            .map(|w| font.kern_unscaled(w[0], w[1]) as f64)
            .sum();
        (advance + kern) / em * size
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wide");
    let long = format!("a_long_strategy_name_WWWMMM_{}", "m".repeat(40));
    for seed in [0, 1] {
        write_curve(&dir, &long, seed, &[(10, 0.0, 0.3), (20, 0.0, 0.4)]);
        write_curve(&dir, "random", seed, &[(10, 0.0, 0.1), (20, 0.0, 0.2)]);
    }
    write_curve(&dir, "s", 0, &[(10, 0.0, 0.2), (20, 0.0, 0.3)]);
    let svg = report_svg(&dir);
    let elements = elements(&svg);
    let (at, [_, _, right, _]) = legend_box(&elements);
    let texts: Vec<&Element> = elements[at..].iter().filter(|e| e.name == "text").collect();
    assert_eq!(texts.len(), 4, "three strategies and the band");
    for text in texts {
        assert_eq!(text.attr("text-anchor"), Some("start"));
        let wider = 1.2 * width_in_dejavu(&text.text, text.number("font-size"));
        let end = text.number("x") + wider;
        assert!(
            end <= right,
            "{:?} would end at {end}, past {right}",
            text.text
        );
        let family = text.attr("font-family").unwrap();
        assert!(
            family.starts_with("DejaVu Sans,") && family.ends_with("sans-serif"),
            "font-family {family}"
        );
    }
}
