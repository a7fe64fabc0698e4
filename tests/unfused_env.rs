//! `LAB_UNFUSED` names that no fused path checks are refused instead of silently doing
//! nothing (a typo would make an A/B comparison look like "no difference").
use std::process::Command;

fn lab(args: &[&str], unfused: &str) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(args)
        .env("LAB_QUIET", "1")
        .env("LAB_UNFUSED", unfused)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_mistyped_name_is_refused_and_valid_ones_run() {
    let (code, _, stderr) = lab(&["paths"], "softmax,sofmax");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("LAB_UNFUSED"), "{stderr}");
    assert!(stderr.contains("`sofmax`"), "{stderr}");
    assert!(stderr.contains("did you mean `softmax`?"), "{stderr}");
    assert!(stderr.contains("first_iteration"), "{stderr}");

    let (code, stdout, stderr) = lab(&["paths"], "softmax, worker,adamw");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("models:"), "{stdout}");
    let (code, _, stderr) = lab(&["paths"], "all");
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn bench_host_help_lists_every_name() {
    let (code, stdout, stderr) = lab(&["bench-host", "--help"], "");
    assert_eq!(code, Some(0), "{stderr}");
    for name in [
        "softmax",
        "grad_transpose",
        "worker",
        "first_iteration",
        "adamw",
    ] {
        assert!(stdout.contains(name), "{name} missing:\n{stdout}");
    }
}
