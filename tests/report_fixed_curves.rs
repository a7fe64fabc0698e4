//! The report on a hand-made curve set whose CI, AUC, labels-to-reach and savings are worked
//! out by hand below, plus checks that the figures decode and are not blank.
use atgen_lab::report::{write_report, write_report_with, ReportOptions, XAxis};
use atgen_lab::runner::curve::{Curve, CurveRow};
use std::path::Path;

// t(0.975, df) from published tables, more digits than the 3 usually printed.
const T_DF1: f64 = 12.706_204_736;
const T_DF2: f64 = 4.302_652_730;

/// Write `<dir>/<strategy>/seed-<seed>/curve.csv` with rows (labeled, cost, rouge1).
fn write_curve(dir: &Path, strategy: &str, seed: u64, rows: &[(usize, f64, f64)]) {
    let mut curve = Curve::new(vec!["rouge1".to_string()]);
    for (i, &(labeled, cost, rouge1)) in rows.iter().enumerate() {
        curve
            .push(CurveRow {
                iteration: i,
                labeled,
                cost,
                tokens: 0,
                seconds: i as f64,
                metrics: vec![rouge1],
            })
            .unwrap();
    }
    let path = dir
        .join(strategy)
        .join(format!("seed-{seed}"))
        .join("curve.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, curve.to_csv_string()).unwrap();
}

/// random: means 0.2, 0.3, 0.4 (std 0.1 everywhere) at 10, 20, 30 labels.
/// huds:   means 0.25, 0.45, 0.6 (std 0.1 everywhere).
/// mnlp:   two seeds, means 0.1, 0.2, 0.325; never reaches random's 0.4.
fn fixture(dir: &Path, cost_per_label: f64) {
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

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn summary_ci_auc_and_savings_match_hand_computation() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("toy");
    fixture(&dir, 0.0);
    let report = write_report(&dir, "random").unwrap();
    assert_eq!(report.strategies, ["huds", "mnlp", "random"]);
    assert_eq!(report.metrics, ["rouge1"]);

    // summary.csv: exact header, 9 rows (3 strategies × 3 labeled counts).
    let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "strategy,labeled,metric,mean,std,ci95_low,ci95_high,n"
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 9);
    let find = |s: &str, l: &str| {
        rows.iter()
            .find(|r| r[0] == s && r[1] == l && r[2] == "rouge1")
            .unwrap_or_else(|| panic!("no row {s},{l}"))
            .clone()
    };
    let num = |r: &[String], i: usize| r[i].parse::<f64>().unwrap();
    // huds at 20: values 0.35, 0.45, 0.55 → mean 0.45, sd 0.1, half-width t(2)·0.1/√3.
    let r = find("huds", "20");
    let half = T_DF2 * 0.1 / 3f64.sqrt();
    assert!(close(num(&r, 3), 0.45, 1e-12));
    assert!(close(num(&r, 4), 0.1, 1e-12));
    assert!(close(num(&r, 5), 0.45 - half, 1e-8), "{r:?}");
    assert!(close(num(&r, 6), 0.45 + half, 1e-8), "{r:?}");
    assert_eq!(r[7], "3");
    // mnlp at 30: values 0.3, 0.35 → mean 0.325, sd 0.05/√2, half-width t(1)·sd/√2 = t(1)·0.025.
    let r = find("mnlp", "30");
    assert!(close(num(&r, 3), 0.325, 1e-12));
    assert!(close(num(&r, 4), 0.05 / 2f64.sqrt(), 1e-12));
    assert!(close(num(&r, 6) - num(&r, 3), T_DF1 * 0.025, 1e-8), "{r:?}");
    assert_eq!(r[7], "2");

    // Savings table.
    let t = &report.tables[0];
    assert_eq!(t.metric, "rouge1");
    assert!(close(t.target.unwrap(), 0.4, 1e-12));
    assert!(close(t.reference_labels.unwrap(), 30.0, 1e-9));
    let row = |s: &str| t.rows.iter().find(|r| r.strategy == s).unwrap();
    // random AUC: (0.25·10 + 0.35·10) / 20 = 0.3; huds: (0.35·10 + 0.525·10) / 20 = 0.4375.
    assert!(close(row("random").auc.unwrap(), 0.3, 1e-12));
    assert!(close(row("huds").auc.unwrap(), 0.4375, 1e-12));
    // mnlp AUC: (0.15·10 + 0.2625·10) / 20 = 0.20625.
    assert!(close(row("mnlp").auc.unwrap(), 0.20625, 1e-12));
    // huds crosses 0.4 between (10, 0.25) and (20, 0.45): 10 + 0.15/0.2·10 = 17.5 labels.
    assert!(close(row("huds").labels_to_reach.unwrap(), 17.5, 1e-9));
    assert!(close(row("huds").saving.unwrap(), 30.0 / 17.5, 1e-9));
    assert!(close(row("random").saving.unwrap(), 1.0, 1e-12));
    assert_eq!(row("mnlp").labels_to_reach, None);
    assert_eq!(row("mnlp").saving, None);
    assert!(close(row("huds").final_score, 0.6, 1e-12));

    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("| huds | 0.4375 | 30 | 0.6000 | 17.5 | 1.71× |"),
        "{md}"
    );
    assert!(
        md.contains("| mnlp | 0.2062 | 30 | 0.3250 | not reached | – |"),
        "{md}"
    );
    assert!(
        md.contains("| random (reference) | 0.3000 | 30 | 0.4000 | 30 | 1.00× |"),
        "{md}"
    );
}

#[test]
fn figures_decode_and_are_not_blank() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("toy");
    fixture(&dir, 0.0);
    write_report(&dir, "random").unwrap();

    let png = image::open(dir.join("rouge1.png")).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), (960, 600));
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
    assert!(svg.contains("huds") && svg.contains("random (reference)"));
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
fn empty_folder_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = format!("{:#}", write_report(tmp.path(), "random").unwrap_err());
    assert!(err.contains("no curves found"), "{err}");
    assert!(err.contains("seed-<n>/curve.csv"), "{err}");
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

/// Write a cell's config.toml as the runner does (the whole experiment).
fn write_config(dir: &Path, strategy: &str, seed: u64, text: &str) {
    let path = dir
        .join(strategy)
        .join(format!("seed-{seed}"))
        .join("config.toml");
    std::fs::write(path, text).unwrap();
}

const CONFIG: &str = r#"
name = "toy"
seeds = [0, 1, 2]
[model]
path = "models/a.gguf"
[train]
learning_rate = 0.0003
[al]
iterations = 3
[[strategy]]
name = "random"
[[strategy]]
name = "huds"
params = { lambda = 0.5 }
[[strategy]]
name = "mnlp"
"#;

#[test]
fn the_report_names_cells_run_with_other_settings() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("toy");
    fixture(&dir, 0.0);
    let cells = [
        ("random", 0),
        ("random", 1),
        ("random", 2),
        ("huds", 0),
        ("huds", 1),
        ("huds", 2),
        ("mnlp", 0),
        ("mnlp", 1),
    ];
    // Free changes (seeds, stopping, description) between cells are not a mix.
    for (i, (strategy, seed)) in cells.iter().enumerate() {
        let text = CONFIG.replace("iterations = 3", &format!("iterations = {}", 3 + i));
        write_config(&dir, strategy, *seed, &text);
    }
    let report = write_report(&dir, "random").unwrap();
    assert!(
        report.mixed_settings.is_empty(),
        "{:?}",
        report.mixed_settings
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(!md.contains("mix settings"), "{md}");

    // mnlp seed 1 after the model changed; huds seed 2 with another lambda.
    write_config(
        &dir,
        "mnlp",
        1,
        &CONFIG.replace("models/a.gguf", "models/b.gguf"),
    );
    write_config(
        &dir,
        "huds",
        2,
        &CONFIG.replace("lambda = 0.5", "lambda = 0.9"),
    );
    let report = write_report(&dir, "random").unwrap();
    assert_eq!(
        report.mixed_settings,
        [
            "`huds` seed-2 ran with other `[[strategy]]` settings than seed-0, seed-1 in: \
             params.lambda (its mean curve averages both)",
            "mnlp/seed-1 ran with other settings than huds/seed-0, huds/seed-1, huds/seed-2, \
             mnlp/seed-0, random/seed-0, random/seed-1 and 1 more in: model.path",
        ]
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("**Warning: these results mix settings.**"),
        "{md}"
    );
    assert!(md.contains("- mnlp/seed-1 ran with other settings"), "{md}");
}

#[test]
fn the_report_notes_curves_that_end_at_different_labeled_counts() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("toy");
    fixture(&dir, 0.0);
    let report = write_report(&dir, "random").unwrap();
    assert_eq!(report.uneven_ends, None);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(!md.contains("end at different labeled counts"), "{md}");

    // random was extended by one query; huds and mnlp were not.
    for seed in 0..3 {
        write_curve(
            &dir,
            "random",
            seed,
            &[
                (10, 0.0, 0.1),
                (20, 0.0, 0.2),
                (30, 0.0, 0.3),
                (40, 0.0, 0.4),
            ],
        );
    }
    let report = write_report(&dir, "random").unwrap();
    let note = report.uneven_ends.expect("a note");
    assert!(
        note.starts_with(
            "The curves end at different labeled counts (random at 40; huds, mnlp at 30)"
        ),
        "{note}"
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("**Note:** The curves end at different labeled counts"),
        "{md}"
    );
}

/// Read summary.csv rows as (strategy, labeled, mean, n) for `metric`.
fn summary_rows(dir: &Path, metric: &str) -> Vec<(String, String, f64, usize)> {
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

#[test]
fn a_seed_with_two_rows_at_one_labeled_count_is_one_seed() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dup");
    write_curve(&dir, "random", 0, &[(10, 0.0, 0.1), (20, 0.0, 0.2)]);
    // An iteration that added no labels repeats 20; the last row is the one kept.
    write_curve(
        &dir,
        "random",
        1,
        &[(10, 0.0, 0.3), (20, 0.0, 0.5), (20, 0.0, 0.4)],
    );
    write_report(&dir, "random").unwrap();
    let rows = summary_rows(&dir, "rouge1");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (_, labeled, mean, n) = &rows[1];
    assert_eq!((labeled.as_str(), *n), ("20", 2), "{rows:?}");
    assert!(close(*mean, 0.3, 1e-12), "{rows:?}");
}

#[test]
fn seeds_with_different_labeled_counts_are_aligned_not_interleaved() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("misaligned");
    for seed in 0..2 {
        write_curve(
            &dir,
            "random",
            seed,
            &[(10, 0.0, 0.1), (20, 0.0, 0.2), (30, 0.0, 0.3)],
        );
    }
    write_curve(
        &dir,
        "llm",
        0,
        &[(10, 0.0, 0.1), (20, 0.0, 0.3), (30, 0.0, 0.5)],
    );
    write_curve(
        &dir,
        "llm",
        1,
        &[(8, 0.0, 0.3), (17, 0.0, 0.32), (26, 0.0, 0.34)],
    );
    let report = write_report(&dir, "random").unwrap();
    let llm: Vec<_> = summary_rows(&dir, "rouge1")
        .into_iter()
        .filter(|r| r.0 == "llm")
        .collect();
    // Only 10..=26 is covered by both seeds; 8 and 30 are one seed's and left out.
    let labeled: Vec<&str> = llm.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(labeled, ["10", "17", "20", "26"], "{llm:?}");
    assert!(llm.iter().all(|r| r.3 == 2), "{llm:?}");
    // Seed 0 at 17: 0.1 + 0.7·0.2 = 0.24; seed 1 at 10: 0.3 + (2/9)·0.02.
    let mean = |l: &str| llm.iter().find(|r| r.1 == l).unwrap().2;
    assert!(close(mean("17"), (0.24 + 0.32) / 2.0, 1e-12), "{llm:?}");
    assert!(close(
        mean("10"),
        (0.1 + 0.3 + 0.02 * 2.0 / 9.0) / 2.0,
        1e-12
    ));
    // Seed 0 at 26: 0.3 + 0.6·0.2 = 0.42; seed 1: 0.34.
    assert!(close(mean("26"), (0.42 + 0.34) / 2.0, 1e-12), "{llm:?}");
    // The curve rises monotonically (the interleaved one zigzagged) and ends at 26.
    assert!(llm.windows(2).all(|w| w[1].2 > w[0].2), "{llm:?}");
    let row = report.tables[0]
        .rows
        .iter()
        .find(|r| r.strategy == "llm")
        .unwrap();
    assert_eq!(row.final_labeled, 26.0);
    assert!(close(row.final_score, 0.38, 1e-12));
}

#[test]
fn one_seed_running_longer_sets_neither_the_target_nor_the_end() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dropout");
    let three = [(10, 0.0, 0.1), (20, 0.0, 0.2), (30, 0.0, 0.3)];
    write_curve(&dir, "random", 0, &three);
    // Seed 1 alone went one query further, to a high score.
    write_curve(
        &dir,
        "random",
        1,
        &[three[0], three[1], three[2], (40, 0.0, 0.9)],
    );
    for seed in 0..2 {
        write_curve(
            &dir,
            "s",
            seed,
            &[
                (10, 0.0, 0.2),
                (20, 0.0, 0.3),
                (30, 0.0, 0.4),
                (40, 0.0, 0.5),
            ],
        );
    }
    let report = write_report(&dir, "random").unwrap();
    let t = &report.tables[0];
    // The target is the mean both seeds reach at 30, not seed 1's 0.9 at 40.
    assert!(close(t.target.unwrap(), 0.3, 1e-12), "{t:?}");
    assert!(close(t.reference_labels.unwrap(), 30.0, 1e-9), "{t:?}");
    let s = t.rows.iter().find(|r| r.strategy == "s").unwrap();
    assert!(close(s.labels_to_reach.unwrap(), 20.0, 1e-9), "{s:?}");
    assert!(close(s.saving.unwrap(), 1.5, 1e-9), "{s:?}");
    // The note describes the mean curves: random ends at 30 (every seed), s at 40.
    let note = report.uneven_ends.expect("a note");
    assert!(note.contains("(s at 40; random at 30)"), "{note}");
}

#[test]
fn auc_is_over_the_range_all_strategies_share() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ranges");
    write_curve(&dir, "random", 0, &[(10, 0.0, 0.1), (100, 0.0, 0.5)]);
    write_curve(
        &dir,
        "short",
        0,
        &[(10, 0.0, 0.1), (30, 0.0, 0.3), (70, 0.0, 0.4)],
    );
    write_curve(
        &dir,
        "latestart",
        0,
        &[(30, 0.0, 0.2), (50, 0.0, 0.3), (100, 0.0, 0.5)],
    );
    let report = write_report(&dir, "random").unwrap();
    let t = &report.tables[0];
    assert_eq!(t.auc_range, Some((30.0, 70.0)));
    let auc = |s: &str| {
        t.rows
            .iter()
            .find(|r| r.strategy == s)
            .unwrap()
            .auc
            .unwrap()
    };
    // random is a straight line 0.1 → 0.5 over 10..100: its mean height over 30..70 is its
    // value at 50, 0.1 + 0.4·40/90.
    assert!(close(auc("random"), 0.1 + 0.4 * 40.0 / 90.0, 1e-12));
    // short over 30..70: 0.3 → 0.4, mean 0.35 (over its own 10..70 it would be 0.2833).
    assert!(close(auc("short"), 0.35, 1e-12));
    // latestart: (0.2+0.3)/2·20 + (0.3+0.38)/2·20 over 40, with 0.38 its value at 70.
    assert!(close(auc("latestart"), (5.0 + 6.8) / 40.0, 1e-12));
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("AUC over labeled 30–70, the range all strategies cover."),
        "{md}"
    );
    let note = report.uneven_ends.expect("a note");
    assert!(
        note.starts_with(
            "The curves end at different labeled counts (latestart, random at 100; short at \
             70) and start at different labeled counts (latestart at 30; random, short at 10)"
        ),
        "{note}"
    );
    assert!(
        note.contains("AUC is computed only over the labeled range"),
        "{note}"
    );

    // Disjoint ranges: no AUC, said in report.md.
    let dir = tmp.path().join("disjoint");
    write_curve(&dir, "random", 0, &[(10, 0.0, 0.1), (20, 0.0, 0.5)]);
    write_curve(&dir, "late", 0, &[(30, 0.0, 0.1), (40, 0.0, 0.5)]);
    let report = write_report(&dir, "random").unwrap();
    assert_eq!(report.tables[0].auc_range, None);
    assert!(report.tables[0].rows.iter().all(|r| r.auc.is_none()));
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("share no labeled range"), "{md}");
    assert!(md.contains("| late | – | 40 |"), "{md}");
}

#[test]
fn savings_from_a_bound_are_printed_as_bounds() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    // The reference reaches its final score at its first point: its count is a bound.
    let dir = tmp.path().join("flat");
    let flat = [(10, 0.0, 0.3), (20, 0.0, 0.3), (30, 0.0, 0.3)];
    write_curve(&dir, "random", 0, &flat);
    write_curve(
        &dir,
        "above",
        0,
        &[(10, 0.0, 0.35), (20, 0.0, 0.4), (30, 0.0, 0.5)],
    );
    write_curve(
        &dir,
        "tie",
        0,
        &[(10, 0.0, 0.1), (20, 0.0, 0.3), (30, 0.0, 0.3)],
    );
    let report = write_report(&dir, "random").unwrap();
    assert!(report.tables[0].reference_reached_at_first_point);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("final mean 0.3000 reached with ≤ 10 labels."),
        "{md}"
    );
    // Both sides bounds: unknown.
    assert!(
        md.contains("| above | 0.4125 | 30 | 0.5000 | ≤ 10 | – |"),
        "{md}"
    );
    // Only the reference's side is a bound: at most 10/20.
    assert!(
        md.contains("| tie | 0.2500 | 30 | 0.3000 | 20 | ≤ 0.50× |"),
        "{md}"
    );
    assert!(
        md.contains("| random (reference) | 0.3000 | 30 | 0.3000 | ≤ 10 | 1.00× |"),
        "{md}"
    );

    // Only the strategy's side is a bound: at least 20/10.
    let dir = tmp.path().join("tq");
    write_curve(&dir, "random", 0, &[(10, 0.0, 0.3), (20, 0.0, 0.4)]);
    write_curve(&dir, "n1", 0, &[(10, 0.0, 0.5), (20, 0.0, 0.6)]);
    write_report(&dir, "random").unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("final mean 0.4000 reached with 20 labels."),
        "{md}"
    );
    assert!(
        md.contains("| n1 | 0.5500 | 20 | 0.6000 | ≤ 10 | ≥ 2.00× |"),
        "{md}"
    );

    // The reference needs no labels at all (its first point is at 0): no ratio, and 0 is
    // exact, not a bound.
    let dir = tmp.path().join("zero");
    write_curve(
        &dir,
        "random",
        0,
        &[(0, 0.0, 0.3), (10, 0.0, 0.3), (20, 0.0, 0.3)],
    );
    write_curve(
        &dir,
        "s",
        0,
        &[(0, 0.0, 0.2), (10, 0.0, 0.3), (20, 0.0, 0.4)],
    );
    write_report(&dir, "random").unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("final mean 0.3000 reached with 0 labels."),
        "{md}"
    );
    assert!(md.contains("| s | 0.3000 | 20 | 0.4000 | 10 | – |"), "{md}");
}

#[test]
fn the_cost_axis_aligns_seeds_that_stop_at_different_iterations() {
    use atgen_lab::report::{aggregate::mean_curves, load::load_experiment_curves};
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cost");
    write_curve(
        &dir,
        "llm",
        0,
        &[
            (10, 1.0, 0.1),
            (20, 2.0, 0.2),
            (30, 3.0, 0.3),
            (40, 10.0, 0.5),
        ],
    );
    write_curve(&dir, "llm", 1, &[(10, 9.0, 0.3), (20, 12.0, 0.4)]);
    let curves = load_experiment_curves(&dir).unwrap();
    let mean = mean_curves(&curves, "rouge1", XAxis::Cost);
    let pts: Vec<(f64, f64, usize)> = mean[0]
        .points
        .iter()
        .map(|p| (p.x, p.summary.mean, p.summary.n))
        .collect();
    // Both seeds cover $9..$10 only; seed 0 at $9 is 0.3 + 0.2·6/7, seed 1 at $10 is
    // 0.3 + 0.1/3. Grouping by iteration placed iteration 2 (seed 0 alone, $3) left of
    // iteration 0 (mean of $1 and $9) with values from different seed subsets.
    assert_eq!(pts.len(), 2, "{pts:?}");
    assert_eq!((pts[0].0, pts[0].2), (9.0, 2), "{pts:?}");
    assert!(close(pts[0].1, (0.3 + 0.2 * 6.0 / 7.0 + 0.3) / 2.0, 1e-12));
    assert_eq!((pts[1].0, pts[1].2), (10.0, 2), "{pts:?}");
    assert!(close(pts[1].1, (0.5 + 0.3 + 0.1 / 3.0) / 2.0, 1e-12));
    // The figure is drawn from these points.
    let options = ReportOptions {
        reference: "llm".into(),
        x: XAxis::Cost,
    };
    write_report_with(&dir, &options).unwrap();
    assert!(dir.join("rouge1-by-cost.svg").is_file());
}

#[test]
fn a_floating_point_tie_with_the_target_is_reached() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiefloat");
    write_curve(&dir, "random", 0, &[(10, 0.0, 0.1), (20, 0.0, 0.4)]);
    // Mean at 20: (0.7 + 0.1) / 2 = 0.39999999999999997.
    write_curve(&dir, "s", 0, &[(10, 0.0, 0.1), (20, 0.0, 0.7)]);
    write_curve(&dir, "s", 1, &[(10, 0.0, 0.1), (20, 0.0, 0.1)]);
    let report = write_report(&dir, "random").unwrap();
    let s = report.tables[0]
        .rows
        .iter()
        .find(|r| r.strategy == "s")
        .unwrap();
    assert!(
        s.final_score < 0.4,
        "the tie is not exact: {}",
        s.final_score
    );
    assert_eq!(s.labels_to_reach, Some(20.0));
    assert!(close(s.saving.unwrap(), 1.0, 1e-12));
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("| s | 0.2500 | 20 | 0.4000 | 20 | 1.00× |"),
        "{md}"
    );
}

#[test]
fn non_finite_metric_values_are_counted_in_the_report() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nan");
    write_curve(
        &dir,
        "random",
        0,
        &[(10, 0.0, 0.1), (20, 0.0, 0.2), (30, 0.0, 0.3)],
    );
    write_curve(
        &dir,
        "random",
        1,
        &[(10, 0.0, 0.2), (20, 0.0, f64::NAN), (30, 0.0, 0.4)],
    );
    write_curve(
        &dir,
        "s",
        0,
        &[
            (10, 0.0, f64::NAN),
            (20, 0.0, f64::NAN),
            (30, 0.0, f64::INFINITY),
        ],
    );
    let report = write_report(&dir, "random").unwrap();
    assert_eq!(
        report.non_finite,
        [
            "`random` rouge1: 1 of 6 values not finite",
            "`s` rouge1: 3 of 3 values not finite"
        ]
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("**Note:** some metric values are not finite"),
        "{md}"
    );
    assert!(
        md.contains("- `s` rouge1: 3 of 3 values not finite"),
        "{md}"
    );
    // random at 20 is the one finite value: n = 1.
    let rows = summary_rows(&dir, "rouge1");
    assert!(
        rows.contains(&("random".into(), "20".into(), 0.2, 1)),
        "{rows:?}"
    );

    // All finite: no note.
    let dir = tmp.path().join("finite");
    fixture(&dir, 0.0);
    let report = write_report(&dir, "random").unwrap();
    assert!(report.non_finite.is_empty());
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(!md.contains("not finite"), "{md}");
}

#[test]
fn twenty_strategies_and_a_long_name_keep_a_readable_legend() {
    use atgen_lab::report::plot::PALETTE;
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

/// Write `<dir>/<strategy>/seed-<seed>/curve.csv` with `metrics` columns and rows
/// (labeled, values), free labels.
fn write_metrics_curve(
    dir: &Path,
    strategy: &str,
    seed: u64,
    metrics: &[&str],
    rows: &[(usize, &[f64])],
) {
    let mut curve = Curve::new(metrics.iter().map(|m| m.to_string()).collect());
    for (i, &(labeled, values)) in rows.iter().enumerate() {
        curve
            .push(CurveRow {
                iteration: i,
                labeled,
                cost: 0.0,
                tokens: 0,
                seconds: i as f64,
                metrics: values.to_vec(),
            })
            .unwrap();
    }
    let path = dir
        .join(strategy)
        .join(format!("seed-{seed}"))
        .join("curve.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, curve.to_csv_string()).unwrap();
}

#[test]
fn a_loss_is_reached_by_falling_and_a_length_by_nothing() {
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lower");
    let metrics = ["eval_loss", "pred_words"];
    // random: loss means 0.8, 0.6, 0.4; words means 10, 11, 12.
    write_metrics_curve(
        &dir,
        "random",
        0,
        &metrics,
        &[(10, &[0.9, 9.0]), (20, &[0.7, 10.0]), (30, &[0.5, 11.0])],
    );
    write_metrics_curve(
        &dir,
        "random",
        1,
        &metrics,
        &[(10, &[0.7, 11.0]), (20, &[0.5, 12.0]), (30, &[0.3, 13.0])],
    );
    // good: loss 0.6, 0.3, 0.2; words 8, 11, 14.
    write_metrics_curve(
        &dir,
        "good",
        0,
        &metrics,
        &[(10, &[0.6, 8.0]), (20, &[0.3, 11.0]), (30, &[0.2, 14.0])],
    );
    let report = write_report(&dir, "random").unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();

    // The loss: random's final mean 0.4 is first reached (from above) by good between
    // (10, 0.6) and (20, 0.3): 10 + 0.2/0.3·10 = 16.7 labels, a saving of 30/16.7 = 1.80.
    // AUC: good ((0.6+0.3)/2·10 + (0.3+0.2)/2·10)/20 = 0.35; random (0.7·10 + 0.5·10)/20.
    let loss = &report.tables[0];
    assert_eq!(loss.metric, "eval_loss");
    let good = loss.rows.iter().find(|r| r.strategy == "good").unwrap();
    assert!(
        close(good.labels_to_reach.unwrap(), 50.0 / 3.0, 1e-9),
        "{good:?}"
    );
    assert!(!good.reached_at_first_point);
    assert!(close(good.saving.unwrap(), 1.8, 1e-9), "{good:?}");
    assert!(close(good.auc.unwrap(), 0.35, 1e-12));
    assert!(
        md.contains("Lower is better (assumed from its name"),
        "{md}"
    );
    assert!(
        md.contains("| good | 0.3500 | 30 | 0.2000 | 16.7 | 1.80× |"),
        "{md}"
    );
    assert!(
        md.contains("| random (reference) | 0.6000 | 30 | 0.4000 | 30 | 1.00× |"),
        "{md}"
    );

    // Words describe the outputs: finals and AUC, but no target to reach.
    let words = &report.tables[1];
    assert_eq!(words.metric, "pred_words");
    assert_eq!(words.target, None);
    assert!(words
        .rows
        .iter()
        .all(|r| r.labels_to_reach.is_none() && r.saving.is_none()));
    assert!(md.contains("neither higher nor lower is better"), "{md}");
    assert!(!md.contains("No `random` curve"), "{md}");
    // good: (8+11)/2·10 + (11+14)/2·10 over 20 = 11.
    assert!(
        md.contains("| good | 11.0000 | 30 | 14.0000 | – | – |"),
        "{md}"
    );
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
fn a_curve_row_its_state_json_does_not_record_is_left_out() {
    use rand::SeedableRng;
    std::env::set_var("LAB_QUIET", "1");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("killed");
    let rows = [(10, 0.0, 0.1), (20, 0.0, 0.2), (30, 0.0, 0.3)];
    write_curve(&dir, "random", 0, &rows);
    write_curve(
        &dir,
        "random",
        1,
        &[(10, 0.0, 0.3), (20, 0.0, 0.4), (30, 0.0, 0.9)],
    );
    // Seed 1 was killed after writing the row of iteration 2 but before state.json, which
    // still records 2 finished iterations: resuming recomputes that row.
    let rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut state = atgen_lab::runner::state::CellState::new("killed", "random", 1, &rng);
    state.iterations_done = 2;
    std::fs::write(
        dir.join("random/seed-1/state.json"),
        state.to_json().unwrap(),
    )
    .unwrap();
    let report = write_report(&dir, "random").unwrap();
    // The mean curve ends at 20 (both seeds finished it): (0.2 + 0.4) / 2.
    let rows = summary_rows(&dir, "rouge1");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[1].1.as_str(), rows[1].3), ("20", 2), "{rows:?}");
    assert!(close(rows[1].2, 0.3, 1e-12), "{rows:?}");
    assert!(close(report.tables[0].target.unwrap(), 0.3, 1e-12));
    assert_eq!(
        report.unfinished,
        [
            "random/seed-1: stopped after iterations 0–1 — interrupted, or failed (the error is \
          in the `lab run` output); `lab run` resumes it"
        ]
    );
}
