//! The report's figures: PNG and SVG decode and are not blank, a cost axis only for paid
//! labels, a readable legend for many strategies, the band named as a 95% CI, and the same
//! results giving byte-identical files.
mod support;

use atgen_lab::report::{write_report, write_report_with, ReportOptions, XAxis};
use support::report_curves::{close, fixture, write_curve, write_metrics_curve};

#[test]
fn figures_decode_and_are_not_blank() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("toy");
    fixture(&dir, 0.0);
    write_report(&dir, "random").unwrap();

    let png = image::open(dir.join("rouge1.png")).unwrap().to_rgb8();
    // The plot, and the legend to its right.
    let (width, height) = png.dimensions();
    assert!(
        height == 600 && width > 960 + 200 && width < 960 + 600,
        "{width}x{height}"
    );
    let non_white = png.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    let total = (png.width() * png.height()) as usize;
    // Lines, bands, text and axes cover a few percent of the canvas; a blank or flooded image
    // would be near 0% or 100%.
    assert!(non_white > total / 100, "only {non_white} non-white pixels");
    assert!(
        non_white < total * 9 / 10,
        "{non_white} non-white pixels of {total}"
    );
    // The reference is black; there must be some pure black pixels (its dashed line).
    assert!(png.pixels().any(|p| p.0 == [0, 0, 0]));

    let svg = std::fs::read_to_string(dir.join("rouge1.svg")).unwrap();
    let elements = xml_elements(&svg).unwrap_or_else(|e| panic!("SVG is not well-formed: {e}"));
    assert_eq!(elements.first().map(String::as_str), Some("svg"));
    let count = |name: &str| elements.iter().filter(|e| *e == name).count();
    // 3 strategy lines + legend swatches are drawn as polylines or paths; 3 CI bands as polygons.
    assert!(count("polyline") + count("path") >= 3, "{elements:?}");
    assert!(count("polygon") >= 3, "{elements:?}");
    assert!(count("text") >= 5, "axis labels and legend are text");
    assert!(svg.contains("huds") && svg.contains("random (reference, 3 seeds)"));
}

/// A minimal XML well-formedness check: balanced, properly nested tags, quoted attributes.
/// Returns element names in document order.
fn xml_elements(xml: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        if let Some(after) = rest.strip_prefix("?") {
            let end = after.find("?>").ok_or("unterminated <?")?;
            rest = &after[end + 2..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("!--") {
            let end = after.find("-->").ok_or("unterminated comment")?;
            rest = &after[end + 3..];
            continue;
        }
        let end = tag_end(rest).ok_or("unterminated tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("stray </{name}>"))?;
            if open != name.trim() {
                return Err(format!("<{open}> closed by </{name}>"));
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
        if name.is_empty() {
            return Err("empty tag name".into());
        }
        if !body[name.len()..].matches('"').count().is_multiple_of(2) {
            return Err(format!("unbalanced quotes in <{name}>"));
        }
        names.push(name.clone());
        if !self_closing {
            stack.push(name);
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> never closed"));
    }
    Ok(names)
}

/// Index of the `>` ending a tag, skipping `>` inside quoted attribute values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

#[test]
fn cost_axis_needs_paid_labels() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("free");
    fixture(&dir, 0.0);
    let options = ReportOptions {
        reference: "random".into(),
        x: XAxis::Cost,
    };
    let err = write_report_with(&dir, &options).unwrap_err().to_string();
    assert!(err.contains("--x labeled"), "{err}");

    let dir = tmp.path().join("paid");
    fixture(&dir, 0.002);
    let report = write_report_with(&dir, &options).unwrap();
    assert!(dir.join("rouge1-by-cost.svg").is_file());
    assert!(dir.join("rouge1-by-cost.png").is_file());
    // Tables stay keyed by labeled count whatever the figure axis.
    assert!(close(
        report.tables[0].reference_labels.unwrap(),
        30.0,
        1e-9
    ));
    let svg = std::fs::read_to_string(dir.join("rouge1-by-cost.svg")).unwrap();
    assert!(svg.contains("labelling cost"));
}

#[test]
fn twenty_strategies_and_a_long_name_keep_a_readable_legend() {
    use atgen_lab::report::series_style::PALETTE;
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("many");
    let long = format!("a_very_long_strategy_name_{}", "x".repeat(120));
    for i in 0..20 {
        let name = if i == 3 {
            long.clone()
        } else {
            format!("strategy_{i:02}")
        };
        let y = 0.1 + 0.01 * i as f64;
        write_curve(&dir, &name, 0, &[(10, 0.0, y), (20, 0.0, y + 0.1)]);
    }
    write_curve(&dir, "random", 0, &[(10, 0.0, 0.1), (20, 0.0, 0.2)]);
    write_report(&dir, "random").unwrap();
    let svg = std::fs::read_to_string(dir.join("rouge1.svg")).unwrap();
    assert!(!svg.contains(&long), "the full 146-character name is drawn");
    assert!(svg.contains(&format!("{}…", &long[..39])), "no cut label");
    // Every line is black (the reference) or a palette colour; none is a near-white tint.
    let allowed: Vec<String> = PALETTE
        .iter()
        .map(|c| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2))
        .chain(["#000000".to_string()])
        .collect();
    let mut lines = 0;
    for poly in svg.split("<polyline").skip(1) {
        let stroke = poly
            .split("stroke=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(allowed.iter().any(|a| a == stroke), "line colour {stroke}");
        lines += 1;
    }
    assert!(lines >= 21, "{lines} lines");
    assert!(!svg.contains("#FFFAC8"), "a Palette99 tint is still used");
}

#[test]
fn the_figure_and_report_say_the_band_is_a_95_ci_of_the_mean() {
    use atgen_lab::report::plot::BAND_LABEL;
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("toy");
    fixture(&dir, 0.0);
    write_report(&dir, "random").unwrap();
    let svg = std::fs::read_to_string(dir.join("rouge1.svg")).unwrap();
    assert!(svg.contains(BAND_LABEL), "the legend names the band");
    assert!(BAND_LABEL.contains("95% CI"));
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("The shaded band is the Student-t 95% confidence interval of that mean"),
        "{md}"
    );

    // One seed each: no band, so the legend does not name one.
    let dir = tmp.path().join("single");
    write_curve(&dir, "random", 0, &[(10, 0.0, 0.1), (20, 0.0, 0.2)]);
    write_curve(&dir, "s", 0, &[(10, 0.0, 0.2), (20, 0.0, 0.3)]);
    write_report(&dir, "random").unwrap();
    let svg = std::fs::read_to_string(dir.join("rouge1.svg")).unwrap();
    assert!(!svg.contains(BAND_LABEL));
}

#[test]
fn the_same_results_give_byte_identical_files() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    // The same curves in two places (the experiment name, drawn in the caption, is the same),
    // and the second reported twice.
    let (a, b) = (tmp.path().join("a/toy"), tmp.path().join("b/toy"));
    fixture(&a, 0.002);
    fixture(&b, 0.002);
    for options in [
        ReportOptions::default(),
        ReportOptions {
            reference: "random".into(),
            x: XAxis::Cost,
        },
    ] {
        let first = write_report_with(&a, &options).unwrap();
        write_report_with(&b, &options).unwrap();
        let again = write_report_with(&b, &options).unwrap();
        // By default the paid curves are drawn by labeled count and by cost.
        let figures = if options.x == XAxis::Labeled { 4 } else { 2 };
        assert_eq!(first.files.len(), figures + 2, "{:?}", first.files);
        for (fa, fb) in first.files.iter().zip(&again.files) {
            assert_eq!(fa.file_name(), fb.file_name());
            let (ba, bb) = (std::fs::read(fa).unwrap(), std::fs::read(fb).unwrap());
            assert!(ba == bb, "{} differs between runs", fa.display());
        }
    }
}

#[test]
fn the_legend_counts_seeds_when_strategies_differ_and_keeps_a_long_reference_marked() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let legend = |dir: &std::path::Path| {
        write_report(dir, "random").unwrap();
        std::fs::read_to_string(dir.join("rouge1.svg")).unwrap()
    };
    // random and huds have three seeds, mnlp two: mnlp's band is wider for that alone.
    let dir = tmp.path().join("uneven");
    fixture(&dir, 0.0);
    let svg = legend(&dir);
    // plotters writes each text element's content on a line of its own.
    for entry in [
        "\nhuds (3 seeds)\n",
        "\nmnlp (2 seeds)\n",
        "\nrandom (reference, 3 seeds)\n",
    ] {
        assert!(svg.contains(entry), "no legend entry {entry}");
    }

    // The same seeds everywhere: nothing to tell apart, so no counts.
    let dir = tmp.path().join("even");
    for seed in [0, 1] {
        write_curve(&dir, "random", seed, &[(10, 0.0, 0.1), (20, 0.0, 0.2)]);
        write_curve(&dir, "s", seed, &[(10, 0.0, 0.2), (20, 0.0, 0.3)]);
    }
    let svg = legend(&dir);
    assert!(svg.contains("\nrandom (reference)\n") && svg.contains("\ns\n"));
    assert!(!svg.contains("seeds)"));

    // A reference whose name is cut in the legend is still marked as the reference, and a
    // strategy drawn without a band is said to have one seed.
    let dir = tmp.path().join("long");
    let long = format!("random_{}", "x".repeat(60));
    for seed in [0, 1] {
        write_curve(&dir, &long, seed, &[(10, 0.0, 0.1), (20, 0.0, 0.2)]);
    }
    write_curve(&dir, "s", 0, &[(10, 0.0, 0.2), (20, 0.0, 0.3)]);
    write_report(&dir, &long).unwrap();
    let svg = std::fs::read_to_string(dir.join("rouge1.svg")).unwrap();
    assert!(
        svg.contains(&format!("\n{}… (reference, 2 seeds)\n", &long[..39])),
        "the long reference lost its mark"
    );
    assert!(svg.contains("\ns (1 seed)\n"));
}

/// `bleu score` and `bleu_score` both made `bleu_score.svg`, and `rouge1-by-cost` is the file
/// name of rouge1's figure by cost: one figure overwrote the other.
#[test]
fn metrics_whose_file_names_would_clash_get_a_figure_each() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("clash");
    let metrics = ["bleu score", "bleu_score", "rouge1", "rouge1-by-cost"];
    for seed in [0, 1] {
        let rows: [(usize, &[f64]); 2] = [(10, &[0.1, 0.2, 0.3, 0.4]), (20, &[0.5, 0.6, 0.7, 0.8])];
        write_metrics_curve(&dir, "random", seed, &metrics, &rows);
    }
    // Paid, so rouge1 also gets rouge1-by-cost.svg.
    let paid = dir.join("random/seed-0/curve.csv");
    let text = std::fs::read_to_string(&paid).unwrap();
    std::fs::write(&paid, text.replace("\n1,20,0,", "\n1,20,0.5,")).unwrap();
    let report = write_report(&dir, "random").unwrap();
    let mut svgs: Vec<String> = report
        .files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "svg"))
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    svgs.sort();
    let mut unique = svgs.clone();
    unique.dedup();
    assert_eq!(svgs, unique, "two figures were written to one file");
    // Four metrics by labeled count and by cost.
    assert_eq!(svgs.len(), 8, "{svgs:?}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for svg in &svgs {
        assert!(dir.join(svg).is_file(), "{svg}");
        assert!(
            md.contains(&format!("![{svg}]({svg})")),
            "{svg} not in report.md"
        );
    }
}
