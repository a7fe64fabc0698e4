//! `lab bench --shard I/N` refuses a shard it cannot take with what to write instead, even
//! when the value starts with `-` (clap's own tip, "use '-- -1'", would pass it as a file).
use std::process::{Command, Output};

fn lab_bench_shard(value: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["bench", "--shard", value, "no-such-experiment.toml"])
        .env("LAB_QUIET", "1")
        .output()
        .expect("the lab binary runs")
}

#[test]
fn a_negative_or_missing_shard_is_refused_with_the_form_to_write() {
    for (value, says) in [
        ("-1/2", "the shard number `-1` is negative"),
        ("1/-2", "the number of shards `-2` is negative"),
        ("--fresh", "--shard needs its value right after it"),
        ("3/2", "shard 3 of 2 does not exist"),
        ("2", "has no `/`"),
    ] {
        let out = lab_bench_shard(value);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--shard {value}: {err}");
        assert!(err.contains(says), "--shard {value}: {err}");
        assert!(err.contains("--shard I/N"), "--shard {value}: {err}");
        assert!(!err.contains("use '--"), "--shard {value}: {err}");
    }
}

#[test]
fn a_good_shard_is_taken_and_the_command_goes_on_to_the_files() {
    let out = lab_bench_shard("2/4");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("--shard"), "{err}");
    assert!(err.contains("no-such-experiment.toml"), "{err}");
}
