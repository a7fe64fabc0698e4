//! `lab select` refuses sizes that select nothing, says when k is cut to the pool, and
//! suggests the nearest strategy name.
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn experiment(dir: &Path) -> PathBuf {
    let text = format!(
        r#"name = "select-cli"
seeds = [0]
results_dir = "{results}"

[data]
path = "{data}"
input_field = "email"
output_field = "subject"
reference_fields = ["subject", "annotations"]
test_size = 4
pool_size = 30
max_input_chars = 300

[model]
name = "tiny-random-llama"
max_input_tokens = 96
max_new_tokens = 6

[al]
init_size = 4
query_size = 3
iterations = 1

[eval]
metrics = ["rouge1"]

[[strategy]]
name = "random"
script = "{script}"
"#,
        results = dir.join("results").display(),
        data = repo().join("data/aeslc").display(),
        script = repo().join("strategies/random.rhai").display(),
    );
    let path = dir.join("select-cli.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn lab(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(args)
        .current_dir(repo())
        .env("LAB_QUIET", "1")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
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
