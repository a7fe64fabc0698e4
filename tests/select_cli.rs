//! `lab select` refuses sizes that select nothing, says when k is cut to the pool, and
//! suggests the nearest strategy name.
mod support;

use std::path::{Path, PathBuf};
use support::tiny_run::{self, TinyExperiment};

fn experiment(dir: &Path) -> PathBuf {
    TinyExperiment {
        name: "select-cli",
        data: r#"reference_fields = ["subject", "annotations"]"#,
        train: "",
        ..TinyExperiment::default()
    }
    .write(dir)
}

fn lab(args: &[&str]) -> (Option<i32>, String, String) {
    let out = tiny_run::lab(args);
    (
        out.status.code(),
        tiny_run::stdout(&out),
        tiny_run::stderr(&out),
    )
}

#[test]
fn zero_sizes_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let exp = exp.to_str().unwrap();
    let (code, _, stderr) = lab(&["select", exp, "--strategy", "random", "--k", "0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--k 0"), "{stderr}");
    let (code, _, stderr) = lab(&["select", exp, "--strategy", "random", "--pool", "0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--pool 0"), "{stderr}");
}

#[test]
fn a_mistyped_strategy_gets_the_nearest_name() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let (code, _, stderr) = lab(&["select", exp.to_str().unwrap(), "--strategy", "mnlpp"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--strategy mnlpp"), "{stderr}");
    assert!(stderr.contains("did you mean `mnlp`?"), "{stderr}");
}

#[test]
fn k_larger_than_the_pool_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let (code, stdout, stderr) = lab(&[
        "select",
        exp.to_str().unwrap(),
        "--strategy",
        "random",
        "--k",
        "50",
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("30 ids from a pool of 30"), "{stdout}");
    assert!(
        stderr.contains("note: --k 50 is more than the 30 examples in the pool"),
        "{stderr}"
    );
}
