//! What `lab <command> --help` teaches and how the command line refuses a number it cannot
//! take: the flag named, with what to write instead.
mod support;

use std::process::Output;
use support::tiny_run::{lab_with, stderr, stdout};

fn lab(args: &[&str]) -> Output {
    // clap wraps help at the terminal's width, else $COLUMNS, else 100.
    lab_with(args, &[("COLUMNS", "100")])
}

/// The commands `lab <parent> --help` lists (clap's own `help` left out).
fn commands(parent: &[&str]) -> Vec<String> {
    let mut args = parent.to_vec();
    args.push("--help");
    let help = stdout(&lab(&args));
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // A wrapped description is indented further than a command's name.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|name| name != "help")
        .collect()
}

/// Every command and subcommand at any depth (`labels stats`, `model generate`), as the
/// words that name it.
fn every_command() -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut parents: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(parent) = parents.pop() {
        let words: Vec<&str> = parent.iter().map(String::as_str).collect();
        for name in commands(&words) {
            let mut child = parent.clone();
            child.push(name);
            found.push(child.clone());
            parents.push(child);
        }
    }
    found.sort();
    found
}

/// Every command shows at least one example command line after its options (paths, report,
/// setup, labels, labels stats, strategies, select, bench-kernels, model and its four, serve
/// showed none), each on one line (check's first example wrapped).
#[test]
fn every_command_help_shows_an_example() {
    let top = commands(&[]);
    assert!(top.len() >= 15, "commands read from lab --help: {top:?}");
    let model = commands(&["model"]);
    assert_eq!(model.len(), 4, "lab model's commands: {model:?}");
    let helps = every_command();
    assert!(
        helps.contains(&vec!["labels".to_string(), "stats".to_string()]),
        "commands walked: {helps:?}"
    );
    let mut missing = Vec::new();
    for words in helps {
        let mut args: Vec<&str> = words.iter().map(String::as_str).collect();
        args.push("--help");
        let help = stdout(&lab(&args));
        let examples: Vec<&str> = help
            .split("\nExample")
            .nth(1)
            .map(|rest| {
                rest.lines()
                    .skip(1)
                    .take_while(|l| l.starts_with("  "))
                    .collect()
            })
            .unwrap_or_default();
        if examples.is_empty() {
            missing.push(words.join(" "));
        }
        // A line longer than clap's width is wrapped, leaving a fragment of its comment
        // where the next command line should be (a shell continuation after `\` is fine).
        let continued = |i: usize| i > 0 && examples[i - 1].ends_with('\\');
        for (i, line) in examples.iter().enumerate() {
            assert!(
                line.contains("lab ") || continued(i),
                "`lab {} --help` wraps an example: {line:?}",
                words.join(" ")
            );
        }
    }
    assert!(missing.is_empty(), "--help without an example: {missing:?}");
}

/// A negative count was taken for an unknown flag, with clap's advice to write `-- -3`,
/// which then reads `-3` as a file name.
#[test]
fn a_negative_count_names_the_flag_and_what_to_write() {
    for (args, flag) in [
        (
            &["select", "x.toml", "--strategy", "random", "--k", "-3"][..],
            "--k",
        ),
        (&["data", "x.toml", "--examples", "-1"], "--examples"),
        (&["bench-kernels", "--n", "-100"], "--n"),
    ] {
        let out = lab(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
        assert!(
            err.contains("is negative: pass a whole number, 0 or more"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("-- -"), "{args:?}: {err}");
    }
    let out = lab(&["data", "x.toml", "--examples", "2.5"]);
    assert!(
        stderr(&out).contains("2.5 is not a whole number"),
        "{}",
        stderr(&out)
    );
}

/// A negative number for a flag that checks its own range reaches that check, which says
/// what the flag takes (it was refused as an unknown flag `-1`).
#[test]
fn a_negative_temperature_gets_the_flag_s_own_advice() {
    let out = lab(&["model", "generate", "--prompt", "x", "--temperature", "-1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--temperature -1: pass 0 for greedy decoding"),
        "{}",
        stderr(&out)
    );
}
