//! `lab report` on a results folder holding two experiments, and its errors.
mod support;

use std::path::Path;
use std::process::Command;
use support::report_curves::write_rouge_l_curve;
use support::tiny_run::lab;

/// A free curve of rougeL `values` at 10, 20, … labels.
fn write_curve(path: &Path, values: &[f64]) {
    write_rouge_l_curve(path, values, 0.0);
}

#[test]
fn reports_every_experiment_below_a_results_folder() {
    let tmp = tempfile::tempdir().unwrap();
    for exp in ["alpha", "beta"] {
        for (strategy, shift) in [("random", 0.0), ("idds", 0.05)] {
            for seed in 0..2 {
                let values = [0.1 + shift, 0.2 + shift + 0.01 * seed as f64];
                let p = tmp
                    .path()
                    .join(exp)
                    .join(strategy)
                    .join(format!("seed-{seed}"))
                    .join("curve.csv");
                write_curve(&p, &values);
            }
        }
    }
    // A stray file and a cell that has not written its curve yet are ignored.
    std::fs::write(tmp.path().join("README.md"), "results").unwrap();
    std::fs::create_dir_all(tmp.path().join("beta/idds/seed-9")).unwrap();

    let out = lab(&["report", tmp.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("report: alpha (2 strategies, 1 metric)"),
        "{stdout}"
    );
    assert!(stdout.contains("report: beta"), "{stdout}");
    for exp in ["alpha", "beta"] {
        for file in ["summary.csv", "report.md", "rougeL.svg", "rougeL.png"] {
            let p = tmp.path().join(exp).join(file);
            assert!(
                p.metadata().map(|m| m.len() > 100).unwrap_or(false),
                "{}",
                p.display()
            );
        }
    }
    // idds reaches random's final 0.205 between 10 (0.15) and 20 (0.255): 10 + 0.055/0.105·10.
    let md = std::fs::read_to_string(tmp.path().join("alpha/report.md")).unwrap();
    assert!(
        md.contains("| idds | 0.2025 | 20 | 0.2550 | 15.2 | 1.31× |"),
        "{md}"
    );

    // One experiment folder directly works too, and --x cost explains why it cannot plot.
    let out = lab(&[
        "report",
        tmp.path().join("alpha").to_str().unwrap(),
        "--x",
        "cost",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--x labeled"), "{stderr}");

    // A run that failed before its first curve row leaves a folder with no curves: the
    // others are still reported, and the exit status says one was not.
    std::fs::create_dir_all(tmp.path().join("aaa-failed/random/seed-0")).unwrap();
    std::fs::remove_file(tmp.path().join("beta/report.md")).unwrap();
    let out = lab(&["report", tmp.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("aaa-failed: no curves found"), "{stderr}");
    assert!(
        stderr.contains("1 of 3 experiment folders could not be reported"),
        "{stderr}"
    );
    assert!(
        tmp.path().join("beta/report.md").exists(),
        "beta reported after the failure"
    );
}

#[test]
fn a_folder_without_results_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = lab(&["report", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no experiment results"), "{stderr}");
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "not results").unwrap();
    let out = lab(&["report", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a folder"), "{stderr}");
}

#[test]
fn a_missing_results_folder_is_said_not_to_exist_with_the_nearest_folder() {
    let out = lab(&["report", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/definitely/not/here does not exist; pass results/<experiment>"),
        "{stderr}"
    );
    assert!(!stderr.contains("is not a folder"), "{stderr}");

    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("quickstart")).unwrap();
    let typo = tmp.path().join("quikstart");
    let out = lab(&["report", typo.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let near = tmp.path().join("quickstart");
    assert!(
        stderr.contains(&format!(
            "{} does not exist; did you mean {}?",
            typo.display(),
            near.display()
        )),
        "{stderr}"
    );
}

#[test]
fn an_unknown_reference_strategy_is_refused_with_the_strategies_present() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("exp");
    for strategy in ["random", "mnlp"] {
        for seed in 0..2 {
            let p = exp
                .join(strategy)
                .join(format!("seed-{seed}"))
                .join("curve.csv");
            write_curve(&p, &[0.1, 0.2 + 0.01 * seed as f64]);
        }
    }
    let out = lab(&["report", exp.to_str().unwrap(), "--reference", "mnlpp"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--reference mnlpp"), "{stderr}");
    assert!(stderr.contains("did you mean `mnlp`?"), "{stderr}");
    assert!(stderr.contains("mnlp, random"), "{stderr}");
    // Refused before anything is written.
    assert!(!exp.join("report.md").exists());

    // A strategy that is there works, and so does the default when `random` is there.
    let out = lab(&["report", exp.to_str().unwrap(), "--reference", "mnlp"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(exp.join("report.md")).unwrap();
    assert!(md.contains("mnlp (reference)"), "{md}");

    // Below a folder of experiments, the one lacking it is named.
    let other = tmp.path().join("other");
    write_curve(&other.join("idds/seed-0/curve.csv"), &[0.1, 0.2]);
    let out = lab(&[
        "report",
        tmp.path().to_str().unwrap(),
        "--reference",
        "random",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("other"), "{stderr}");
    assert!(stderr.contains("idds"), "{stderr}");
}

#[test]
fn a_curve_with_a_non_finite_or_negative_cost_is_refused_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("nancost");
    let good = exp.join("random/seed-1/curve.csv");
    write_curve(&good, &[0.1, 0.3]);
    for bad in ["NaN", "-1"] {
        let path = exp.join("random/seed-0/curve.csv");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            format!("iteration,labeled,cost,tokens,seconds,rougeL\n0,10,{bad},0,0,0.1\n1,20,2.0,0,1,0.2\n"),
        )
        .unwrap();
        let out = lab(&["report", exp.to_str().unwrap(), "--x", "cost"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("{} line 2", path.display())),
            "{stderr}"
        );
        assert!(stderr.contains("(cost) must be a finite"), "{stderr}");
    }
}

/// Run `lab` with a time limit: a report that spins forever must fail, not hang the suite.
fn lab_within(args: &[&str], limit: std::time::Duration) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(args)
        .env("LAB_QUIET", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("lab {args:?} still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn huge_metric_values_are_plotted_and_the_report_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("huge");
    // Seeds of ±1e200: the sample variance overflows, so the CI is infinite.
    for (seed, first) in [(0, "1e200"), (1, "-1e200")] {
        let path = exp.join(format!("random/seed-{seed}/curve.csv"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            format!(
                "iteration,labeled,cost,tokens,seconds,pred_words\n0,10,0,0,0,{first}\n\
                 1,20,0,0,1,1e200\n"
            ),
        )
        .unwrap();
    }
    let out = lab_within(
        &["report", exp.to_str().unwrap()],
        std::time::Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(exp.join("pred_words.svg")).unwrap();
    assert!(!svg.contains("inf") && !svg.contains("NaN"), "{svg}");
    assert!(exp.join("pred_words.png").is_file());
}

#[test]
fn damaged_cell_files_are_named_and_the_other_cells_still_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("exp");
    let cell = |s: &str, seed: u64| exp.join(s).join(format!("seed-{seed}"));
    write_curve(&cell("random", 0).join("curve.csv"), &[0.1, 0.3]);
    write_curve(&cell("random", 1).join("curve.csv"), &[0.3, 0.5]);
    write_curve(&cell("mnlp", 0).join("curve.csv"), &[0.3, 0.5]);
    write_curve(&cell("mnlp", 1).join("curve.csv"), &[0.3, 0.7]);
    // random seed 2: a curve cut inside its last row; mnlp seed 1: its state.json and
    // config.toml are damaged, its curve is fine.
    let cut = cell("random", 2).join("curve.csv");
    std::fs::create_dir_all(cut.parent().unwrap()).unwrap();
    std::fs::write(
        &cut,
        "iteration,labeled,cost,tokens,seconds,rougeL\n0,10,0,0,0,0.9\n1,20,0,0",
    )
    .unwrap();
    std::fs::write(cell("mnlp", 1).join("state.json"), "{\"version\": ").unwrap();
    std::fs::write(
        cell("mnlp", 1).join("config.toml"),
        "name = \"exp\"\nseeds = [0,\n",
    )
    .unwrap();

    let out = lab(&["report", exp.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Written, but the exit status says something was not read.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{} line 3", cut.display())),
        "the damaged file and line are named: {stderr}"
    );
    assert!(
        stderr.contains(&format!("delete {}", cut.parent().unwrap().display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("mnlp/seed-1") && stderr.contains("state.json"),
        "{stderr}"
    );
    assert!(
        stderr.contains("config.toml line 2 is not valid TOML"),
        "{stderr}"
    );
    assert!(stderr.contains("report.md lists them"), "{stderr}");

    // By hand, without random seed 2: random means 0.2, 0.4 (AUC 0.3); mnlp means 0.3, 0.6
    // (AUC 0.45), reaching random's 0.4 at 10 + 0.1/0.3·10 = 13.3 labels: saving 20/13.3.
    let md = std::fs::read_to_string(exp.join("report.md")).unwrap();
    assert!(
        md.contains("Strategies (seeds): mnlp (2), random (2)."),
        "{md}"
    );
    assert!(
        md.contains("**Warning: some files of the cells could not be read.**"),
        "{md}"
    );
    assert!(md.contains("- random/seed-2 is left out:"), "{md}");
    assert!(
        md.contains("| random (reference) | 0.3000 | 20 | 0.4000 | 20 | 1.00× |"),
        "{md}"
    );
    assert!(
        md.contains("| mnlp | 0.4500 | 20 | 0.6000 | 13.3 | 1.50× |"),
        "{md}"
    );
    let summary = std::fs::read_to_string(exp.join("summary.csv")).unwrap();
    assert!(summary.contains("random,20,rougeL,0.4,"), "{summary}");
    assert!(summary
        .lines()
        .all(|l| !l.starts_with("random") || l.ends_with(",2")));

    // Nothing readable at all: an error naming the file, no report.
    let bad = tmp.path().join("bad");
    let only = bad.join("random/seed-0/curve.csv");
    std::fs::create_dir_all(only.parent().unwrap()).unwrap();
    std::fs::write(&only, "garbage\n").unwrap();
    let out = lab(&["report", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no readable curves"), "{stderr}");
    assert!(
        stderr.contains(&format!("{} line 1", only.display())),
        "{stderr}"
    );
    assert!(!bad.join("report.md").exists());
}

/// The report `lab run` writes (and `lab report` without `--x`) draws curves a paid labeller
/// made by cost as well as by labeled count; free curves only by labeled count.
#[test]
fn paid_curves_are_also_drawn_by_cost_and_free_ones_are_not() {
    let tmp = tempfile::tempdir().unwrap();
    for (exp, price) in [("paid", 0.002), ("free", 0.0)] {
        for strategy in ["random", "idds"] {
            let p = tmp
                .path()
                .join(exp)
                .join(strategy)
                .join("seed-0")
                .join("curve.csv");
            write_rouge_l_curve(&p, &[0.1, 0.2], price);
        }
    }
    let out = lab(&["report", tmp.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["rougeL.svg", "rougeL-by-cost.svg", "rougeL-by-cost.png"] {
        assert!(tmp.path().join("paid").join(file).exists(), "paid/{file}");
    }
    let md = std::fs::read_to_string(tmp.path().join("paid/report.md")).unwrap();
    assert!(md.contains("rougeL-by-cost.svg"), "{md}");
    let svg = std::fs::read_to_string(tmp.path().join("paid/rougeL-by-cost.svg")).unwrap();
    assert!(svg.contains("labelling cost ($)"), "the x axis is dollars");
    assert!(tmp.path().join("free/rougeL.svg").exists());
    assert!(!tmp.path().join("free/rougeL-by-cost.svg").exists());
}

#[test]
fn one_strategy_metric_and_unreadable_file_are_counted_in_the_singular() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("solo");
    write_curve(&exp.join("random/seed-0/curve.csv"), &[0.1, 0.3]);
    let cut = exp.join("random/seed-1/curve.csv");
    std::fs::create_dir_all(cut.parent().unwrap()).unwrap();
    std::fs::write(&cut, "iteration,labeled,cost,tokens,seconds,rougeL\n0,10,0").unwrap();

    let out = lab(&["report", exp.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stdout.contains("report: solo (1 strategy, 1 metric) → "),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{} (1 file)", exp.display())),
        "{stderr}"
    );
}

/// `--x labeled`, the default, also draws figures by cost for paid runs; the help said only
/// "Number of labeled examples".
#[test]
fn the_help_says_the_default_axis_adds_figures_by_cost() {
    let out = lab(&["report", "--help"]);
    // Lines are wrapped to the terminal's width.
    let help = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("figures by labelling cost are added when any labelling cost money"),
        "{help}"
    );
}
