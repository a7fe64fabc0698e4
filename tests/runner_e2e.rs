//! End to end through the `lab` binary with the tiny in-process model: a run killed in the
//! middle of a cell resumes to the same curve and selections as an uninterrupted run, a shared
//! iteration 0 changes nothing, and what changed on disk since (the script, the data, the
//! results folder, the seeds) is noticed.
mod support;

use std::time::{Duration, Instant};
use support::runner_e2e::{
    curve_without_seconds, edit_experiment, experiment, lab_refuses, labeled_counts, read_state,
};
use support::tiny_run::{assert_ok, lab, repo, spawn_lab};

#[test]
fn killed_run_resumes_to_the_same_curve_and_selections() {
    let dir = tempfile::tempdir().unwrap();
    let whole = experiment(dir.path(), "whole", "iterations = 2", &["mnlp"]);
    let broken = experiment(dir.path(), "broken", "iterations = 2", &["mnlp"]);
    assert_ok(&lab(&["run", whole.to_str().unwrap()]));
    let cell = |name: &str| dir.path().join("results").join(name).join("mnlp/seed-0");

    // Start the same experiment, kill it once the first iteration is committed.
    let mut child = spawn_lab(&["run", broken.to_str().unwrap()]);
    let state = cell("broken").join("state.json");
    let started = Instant::now();
    loop {
        let done = std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["iterations_done"].as_u64())
            .unwrap_or(0);
        if done >= 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no iteration finished"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended before it could be killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = curve_without_seconds(&cell("broken").join("curve.csv"));
    assert!(
        partial.len() < 4,
        "the kill came after the cell finished: {partial:?}"
    );

    assert_ok(&lab(&["run", broken.to_str().unwrap()]));
    let a = curve_without_seconds(&cell("whole").join("curve.csv"));
    let b = curve_without_seconds(&cell("broken").join("curve.csv"));
    assert_eq!(
        a.len(),
        4,
        "header + 3 iterations (initial + 2 queries): {a:?}"
    );
    assert_eq!(a, b, "resumed curve differs from the uninterrupted one");
    // The same ids in the same order. Scores may differ in the last f32 bits: a resumed
    // process reads the adapter back from disk into differently aligned buffers, and SIMD
    // kernels round the unaligned edges differently (two uninterrupted runs are bit-equal).
    let selected = |name: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(cell(name).join("selected.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (sa, sb) = (selected("whole"), selected("broken"));
    assert_eq!(sa.len(), 3);
    for (a, b) in sa.iter().zip(&sb) {
        assert_eq!(a["ids"], b["ids"], "resumed selections differ");
        let scores = |v: &serde_json::Value| -> Vec<f64> {
            v["scores"]
                .as_array()
                .map_or(vec![], |s| s.iter().map(|x| x.as_f64().unwrap()).collect())
        };
        let (x, y) = (scores(a), scores(b));
        assert_eq!(x.len(), y.len());
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() <= 1e-6 * p.abs().max(1.0), "score {p} vs {q}");
        }
    }
    // labeled counts follow init + query sizes
    assert_eq!(labeled_counts(&a), ["4", "7", "10"]);
    // the report was written for the finished experiment
    let report = dir.path().join("results/whole/report.md");
    assert!(std::fs::read_to_string(report)
        .unwrap()
        .contains("## rouge2"));
    assert!(dir.path().join("results/whole/rouge2.svg").exists());
}

#[test]
fn cells_with_the_same_seed_and_initial_set_share_iteration_0_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    // random and mnlp both draw the initial set from the seed: mnlp's iteration 0 is random's.
    let shared = experiment(dir.path(), "shared", "iterations = 1", &["random", "mnlp"]);
    let alone = experiment(dir.path(), "alone", "iterations = 1", &["mnlp"]);
    // Training that moves the adapter at iteration 0 (one warm-up step of one batch would
    // not), so iteration 1 depends on what iteration 0 left.
    for file in [&shared, &alone] {
        let text = std::fs::read_to_string(file).unwrap().replace(
            "epochs = 1\nbatch_size = 4\n",
            "epochs = 2\nbatch_size = 2\nlearning_rate = 0.01\nwarmup_ratio = 0.0\n",
        );
        assert!(text.contains("warmup_ratio = 0.0"));
        std::fs::write(file, text).unwrap();
    }
    let out = lab(&["run", shared.to_str().unwrap(), "--profile"]);
    assert_ok(&out);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("shared/mnlp/seed-0 iteration 0")
            && printed.contains("(training and evaluation shared with random/seed-0)"),
        "mnlp's iteration 0 was not taken from random's:\n{printed}"
    );
    assert!(
        !printed.contains("iteration 1 (7 labeled): training 0.0s"),
        "iteration 1 must train:\n{printed}"
    );
    assert_ok(&lab(&["run", alone.to_str().unwrap()]));
    let cell = |name: &str| dir.path().join("results").join(name).join("mnlp/seed-0");
    let read = |name: &str, file: &str| std::fs::read(cell(name).join(file)).unwrap();
    assert_eq!(
        curve_without_seconds(&cell("shared").join("curve.csv")),
        curve_without_seconds(&cell("alone").join("curve.csv")),
        "a shared iteration 0 changed the curve"
    );
    for file in [
        "selected.jsonl",
        "generations/iter-0.jsonl",
        "generations/iter-1.jsonl",
        "adapters/iter-1/adapter_model.safetensors",
    ] {
        assert!(
            read("shared", file) == read("alone", file),
            "{file} differs between the shared and the lone run"
        );
    }
}

#[test]
fn an_edited_strategy_script_is_not_resumed_as_if_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = experiment(dir.path(), "edited", "iterations = 1", &["random"]);
    let original = repo().join("strategies/random.rhai");
    let copy = dir.path().join("random.rhai");
    std::fs::copy(&original, &copy).unwrap();
    edit_experiment(
        &path,
        &[(&original.display().to_string(), &copy.display().to_string())],
    );
    assert_ok(&lab(&["run", path.to_str().unwrap()]));
    // A comment changes nothing a run computes, but the tool cannot know that.
    let edited = std::fs::read_to_string(&copy).unwrap() + "\n// tried something\n";
    std::fs::write(&copy, edited).unwrap();
    let err = lab_refuses(&["run", path.to_str().unwrap()]);
    assert!(err.contains("changed since"), "{err}");
    assert!(err.contains("--fresh --strategy random"), "{err}");
    assert_ok(&lab(&["run", path.to_str().unwrap(), "--fresh"]));
    assert_ok(&lab(&["run", path.to_str().unwrap()]));
}

#[test]
fn changed_data_files_are_not_resumed_as_if_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("emails");
    std::fs::create_dir_all(&data).unwrap();
    let head = |split: &str, n: usize| -> String {
        let text = std::fs::read_to_string(repo().join("data/aeslc").join(split)).unwrap();
        text.lines().take(n).map(|l| format!("{l}\n")).collect()
    };
    std::fs::write(data.join("train.jsonl"), head("train.jsonl", 60)).unwrap();
    let test = head("test.jsonl", 20);
    std::fs::write(data.join("test.jsonl"), &test).unwrap();
    let path = experiment(dir.path(), "data", "iterations = 1", &["random"]);
    edit_experiment(
        &path,
        &[(
            &repo().join("data/aeslc").display().to_string(),
            &data.display().to_string(),
        )],
    );
    assert_ok(&lab(&["run", path.to_str().unwrap()]));
    // Same files: the finished cell is taken as it is.
    assert_ok(&lab(&["run", path.to_str().unwrap()]));
    // Every test reference edited: the cell's scores no longer describe these files.
    let edited = test.replace("\"subject\": \"", "\"subject\": \"Re: ");
    assert_ne!(edited, test);
    std::fs::write(data.join("test.jsonl"), edited).unwrap();
    let err = lab_refuses(&["run", path.to_str().unwrap()]);
    assert!(err.contains("the data of data changed"), "{err}");
    assert!(err.contains("--fresh"), "{err}");
    assert_ok(&lab(&["run", path.to_str().unwrap(), "--fresh"]));
}

/// A results folder moved elsewhere (results_dir changed to follow it) resumes from its own
/// adapter; a finished cell's stray adapters from a kill before clean-up are removed.
#[test]
fn a_moved_results_folder_resumes_from_its_own_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let path = experiment(dir.path(), "moved", "iterations = 1", &["random"]);
    assert_ok(&lab(&["run", path.to_str().unwrap()]));
    let old = dir.path().join("results");
    let new = dir.path().join("elsewhere");
    std::fs::rename(&old, &new).unwrap();
    let cell = new.join("moved/random/seed-0");
    let state = read_state(&cell);
    assert_eq!(state["adapter_path"], "adapters/iter-1", "{state}");
    // What a kill between a finished cell's commit and its clean-up would leave.
    std::fs::create_dir_all(cell.join("adapters/iter-0")).unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&old.display().to_string(), &new.display().to_string());
    std::fs::write(&path, &text).unwrap();
    assert_ok(&lab(&["run", path.to_str().unwrap()]));
    assert!(!cell.join("adapters/iter-0").exists(), "stray adapter kept");
    std::fs::write(&path, text.replace("iterations = 1", "iterations = 2")).unwrap();
    assert_ok(&lab(&["run", path.to_str().unwrap()]));
    let curve = curve_without_seconds(&cell.join("curve.csv"));
    assert_eq!(curve.len(), 4, "{curve:?}");
    assert!(!old.exists());
    let adapters: Vec<_> = std::fs::read_dir(cell.join("adapters"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(adapters, ["iter-2"]);
}

/// The report averages every cell on disk: one whose seed the file dropped is named.
#[test]
fn cells_the_file_no_longer_lists_are_named_beside_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = experiment(dir.path(), "strays", "iterations = 1", &["random"]);
    assert_ok(&lab(&["run", path.to_str().unwrap()]));
    edit_experiment(&path, &[("seeds = [0]", "seeds = [1]")]);
    let out = lab(&["run", path.to_str().unwrap()]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("also averages cells the experiment file no longer lists (random/seed-0)"),
        "{stderr}"
    );
}
