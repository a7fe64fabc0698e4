//! The report's numbers on hand-made curve sets, worked out by hand beside each check: the CI,
//! AUC, labels to reach the reference's final score and savings, with bounds, ties and a
//! lower-is-better metric.
mod support;

use atgen_lab::report::write_report;
use support::report_curves::{close, fixture, write_curve, write_metrics_curve};

// t(0.975, df) from published tables, more digits than the 3 usually printed.
const T_DF1: f64 = 12.706_204_736;
const T_DF2: f64 = 4.302_652_730;

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
