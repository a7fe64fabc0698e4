//! `lab report` alone removes what a report write killed between temporary and rename left in
//! an experiment folder (`.tmp*` files older than any report write), as `lab run` does; a
//! younger one may be another process's report in progress and stays.
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use support::report_curves::write_curve;
use support::tiny_run::{assert_ok, lab};

/// A `.tmp*` file in `dir` last modified `age` ago.
fn temporary(dir: &Path, name: &str, age: Duration) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, "half a report.md").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
    path
}

#[test]
fn lab_report_removes_the_temporaries_a_killed_report_write_left() {
    let results = tempfile::tempdir().unwrap();
    let mut left = Vec::new();
    let mut in_use = Vec::new();
    for exp in ["alpha", "beta"] {
        let dir = results.path().join(exp);
        write_curve(&dir, "random", 0, &[(10, 0.0, 0.1), (20, 0.0, 0.2)]);
        left.push(temporary(&dir, ".tmpKilled1", Duration::from_secs(3600)));
        in_use.push(temporary(&dir, ".tmpWriting", Duration::from_secs(5)));
    }
    // One experiment's folder, then the folder of every experiment.
    assert_ok(&lab(&[
        "report",
        results.path().join("alpha").to_str().unwrap(),
    ]));
    assert!(!left[0].exists(), "{} is still there", left[0].display());
    assert!(left[1].exists(), "only the experiment reported is cleaned");
    assert_ok(&lab(&["report", results.path().to_str().unwrap()]));
    assert!(!left[1].exists(), "{} is still there", left[1].display());
    for path in &in_use {
        assert!(path.exists(), "{} was in use", path.display());
    }
    // A cell's curve.csv is not a temporary, whatever its age.
    assert!(results
        .path()
        .join("alpha/random/seed-0/curve.csv")
        .exists());
}
