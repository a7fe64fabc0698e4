//! What report.md warns about beside the numbers (cells run with other settings, curves ending
//! at different labeled counts, non-finite metric values), and a folder with no curves.
mod support;

use atgen_lab::report::write_report;
use std::path::Path;
use support::report_curves::{cell_dir, fixture, summary_rows, write_curve};

/// Write a cell's config.toml as the runner does (the whole experiment).
fn write_config(dir: &Path, strategy: &str, seed: u64, text: &str) {
    std::fs::write(cell_dir(dir, strategy, seed).join("config.toml"), text).unwrap();
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
fn empty_folder_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = format!("{:#}", write_report(tmp.path(), "random").unwrap_err());
    assert!(err.contains("no curves found"), "{err}");
    assert!(err.contains("seed-<n>/curve.csv"), "{err}");
}
