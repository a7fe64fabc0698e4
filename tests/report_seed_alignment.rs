//! Mean curves over seeds that did not run alike: a labeled count repeated, different labeled
//! counts, one seed running longer, seeds stopping at different costs, and a row its
//! state.json does not record.
mod support;

use atgen_lab::report::{write_report, write_report_with, ReportOptions, XAxis};
use support::report_curves::{close, summary_rows, write_curve};

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
