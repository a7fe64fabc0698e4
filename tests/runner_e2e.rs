//! End to end through the `lab` binary with the tiny in-process model: curves and report are
//! written, a run killed in the middle of a cell resumes to the same curve and selections as
//! an uninterrupted run, and stopping criteria stop where they should.
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::tiny_run::{assert_ok, lab, repo, TinyExperiment};

fn experiment(dir: &Path, name: &str, extra_al: &str, strategies: &[&str]) -> PathBuf {
    TinyExperiment {
        name,
        data: r#"reference_fields = ["subject", "annotations"]"#,
        train: "epochs = 1\nbatch_size = 4",
        al: extra_al,
        metrics: &["rouge1", "rouge2"],
        strategies,
        ..TinyExperiment::default()
    }
    .write(dir)
}

/// curve.csv without the wall-clock column, which legitimately differs between runs.
fn curve_without_seconds(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            cols.iter()
                .enumerate()
                .filter(|(i, _)| *i != 4)
                .map(|(_, c)| *c)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

#[test]
fn killed_run_resumes_to_the_same_curve_and_selections() {
    let dir = tempfile::tempdir().unwrap();
    let whole = experiment(dir.path(), "whole", "iterations = 2", &["mnlp"]);
    let broken = experiment(dir.path(), "broken", "iterations = 2", &["mnlp"]);
    assert_ok(&lab(&["run", whole.to_str().unwrap()]));
    let cell = |name: &str| dir.path().join("results").join(name).join("mnlp/seed-0");

    // Start the same experiment, kill it once the first iteration is committed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["run", broken.to_str().unwrap()])
        .env("LAB_QUIET", "1")
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
    let labeled: Vec<&str> = a[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(labeled, ["4", "7", "10"]);
    // the report was written for the finished experiment
    let report = dir.path().join("results/whole/report.md");
    assert!(std::fs::read_to_string(report)
        .unwrap()
        .contains("## rouge2"));
    assert!(dir.path().join("results/whole/rouge2.svg").exists());
}

#[test]
fn label_budget_trims_the_last_query_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "budget", "label_budget = 9", &["random"]);
    assert_ok(&lab(&["run", exp.to_str().unwrap()]));
    let cell = dir.path().join("results/budget/random/seed-0");
    let curve = curve_without_seconds(&cell.join("curve.csv"));
    let labeled: Vec<&str> = curve[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(
        labeled,
        ["4", "7", "9"],
        "4 + 3 + a trimmed 2 = the budget of 9"
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["finished"], true);
    assert_eq!(state["stop_reason"]["kind"], "label_budget");
    assert_eq!(state["last_query_cut"], true);
    // A fresh run with budget 12 labels 4, 7, 10, 12: extending this one (…, 9, 12) would not.
    let text = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("label_budget = 9", "label_budget = 12");
    std::fs::write(&exp, text).unwrap();
    let out = lab(&["run", exp.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cut short") && err.contains("--fresh --strategy random"),
        "{err}"
    );
    assert_ok(&lab(&["run", exp.to_str().unwrap(), "--fresh"]));
    let curve = curve_without_seconds(&cell.join("curve.csv"));
    let labeled: Vec<&str> = curve[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(labeled, ["4", "7", "10", "12"]);
}

#[test]
fn required_performance_stops_once_reached() {
    let dir = tempfile::tempdir().unwrap();
    // rouge1 ≥ 0 holds at once: the cell stops after its first iteration although
    // ten iterations are allowed.
    let exp = experiment(
        dir.path(),
        "perf",
        "iterations = 10\nrequired_performance = { rouge1 = 0.0 }",
        &["random"],
    );
    assert_ok(&lab(&["run", exp.to_str().unwrap()]));
    let cell = dir.path().join("results/perf/random/seed-0");
    let curve = curve_without_seconds(&cell.join("curve.csv"));
    assert_eq!(curve.len(), 2, "one iteration then stop: {curve:?}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["stop_reason"]["kind"], "performance");
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
fn huds_chooses_its_initial_set_from_the_base_model_unless_told_to_draw_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = experiment(dir.path(), "start", "iterations = 1", &["random", "huds"]);
    // A second HUDS cell that draws its initial set from the seed, as every other strategy.
    let text = std::fs::read_to_string(&path).unwrap()
        + format!(
            "\n[[strategy]]\nname = \"huds\"\nlabel = \"huds-drawn\"\nscript = \"{}\"\nparams = {{ initial = \"random\" }}\n",
            repo().join("strategies/huds.rhai").display()
        )
        .as_str();
    std::fs::write(&path, text).unwrap();
    assert_ok(&lab(&["run", path.to_str().unwrap()]));
    let first_ids = |strategy: &str| -> Vec<u64> {
        let file = dir
            .path()
            .join("results/start")
            .join(strategy)
            .join("seed-0/selected.jsonl");
        let text = std::fs::read_to_string(&file).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["iteration"], 0);
        // HUDS scores what it picks; a drawn set has no scores.
        let scored = !line["scores"].is_null();
        assert_eq!(scored, strategy == "huds", "{strategy}: {line}");
        serde_json::from_value(line["ids"].clone()).unwrap()
    };
    let (random, huds, drawn) = (
        first_ids("random"),
        first_ids("huds"),
        first_ids("huds-drawn"),
    );
    assert_eq!(random.len(), 4);
    assert_eq!(huds.len(), 4);
    assert_eq!(
        drawn, random,
        "initial = \"random\" must draw the seed's set"
    );
    assert_ne!(huds, random, "HUDS must choose its own initial set");
}

#[test]
fn an_edited_strategy_script_is_not_resumed_as_if_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = experiment(dir.path(), "edited", "iterations = 1", &["random"]);
    let original = repo().join("strategies/random.rhai");
    let copy = dir.path().join("random.rhai");
    std::fs::copy(&original, &copy).unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&original.display().to_string(), &copy.display().to_string());
    std::fs::write(&path, text).unwrap();
    assert_ok(&lab(&["run", path.to_str().unwrap()]));
    // A comment changes nothing a run computes, but the tool cannot know that.
    let edited = std::fs::read_to_string(&copy).unwrap() + "\n// tried something\n";
    std::fs::write(&copy, edited).unwrap();
    let out = lab(&["run", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
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
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &repo().join("data/aeslc").display().to_string(),
        &data.display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    assert_ok(&lab(&["run", path.to_str().unwrap()]));
    // Same files: the finished cell is taken as it is.
    assert_ok(&lab(&["run", path.to_str().unwrap()]));
    // Every test reference edited: the cell's scores no longer describe these files.
    let edited = test.replace("\"subject\": \"", "\"subject\": \"Re: ");
    assert_ne!(edited, test);
    std::fs::write(data.join("test.jsonl"), edited).unwrap();
    let out = lab(&["run", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the data of data changed"), "{err}");
    assert!(err.contains("--fresh"), "{err}");
    assert_ok(&lab(&["run", path.to_str().unwrap(), "--fresh"]));
}

#[test]
fn references_a_metric_cannot_score_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let path = experiment(dir.path(), "gsm", "iterations = 1", &["random"]);
    // Email subjects hold no GSM8K answer ("#### 18" or a number).
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "reference_fields = [\"subject\", \"annotations\"]",
            "reference_fields = [\"subject\"]",
        )
        .replace(
            "metrics = [\"rouge1\", \"rouge2\"]",
            "metrics = [\"gsm8k_accuracy\"]",
        );
    std::fs::write(&path, text).unwrap();
    let out = lab(&["run", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gsm8k_accuracy")
            && err.contains("test example id")
            && err.contains("gsm.toml"),
        "{err}"
    );
    assert!(
        !dir.path()
            .join("results/gsm/random/seed-0/curve.csv")
            .exists(),
        "nothing was trained or written"
    );
}

#[test]
fn sizes_that_cannot_work_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    // The pool holds 30 items.
    let path = experiment(dir.path(), "sizes", "iterations = 1", &["random"]);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("init_size = 4", "init_size = 40");
    std::fs::write(&path, text).unwrap();
    let out = lab(&["run", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`al.init_size` in ") && err.contains("is 40 but the pool has only 30 items"),
        "{err}"
    );
    // A prompt and its generation that cannot fit in the model's context (512 tokens for the
    // tiny model) are refused before any training.
    let fits = std::fs::read_to_string(&path).unwrap();
    let text = fits
        .replace("max_input_tokens = 96", "max_input_tokens = 510")
        .replace("init_size = 40", "init_size = 4");
    std::fs::write(&path, text).unwrap();
    let out = lab(&["run", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model.max_input_tokens = 510 plus model.max_new_tokens = 6 is 516")
            && err.contains("is 516 tokens, beyond the model's context of 512"),
        "{err}"
    );
    assert!(!dir.path().join("results/sizes").exists(), "nothing ran");
    std::fs::write(&path, fits).unwrap();
    // A label budget below the initial set is caught by the check itself.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("init_size = 40", "init_size = 4")
        .replace("iterations = 1", "label_budget = 2");
    std::fs::write(&path, text).unwrap();
    let out = lab(&["check", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("al.label_budget") && err.contains("fewer than al.init_size = 4"),
        "{err}"
    );
}

/// A strategy whose script fails at its first query ends its own cell only: the next cell
/// runs, the report is written, and the run exits non-zero naming the failed cell.
#[test]
fn a_failing_cell_does_not_stop_the_other_cells() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("broken.rhai");
    // Passes `lab check`'s synthetic pool of 60 items; fails on this 30-item pool.
    std::fs::write(
        &script,
        "// Fails on small pools, on purpose.\nconst KIND = \"al\";\n\
         fn select(ctx, k) {\n    if ctx.pool.len() < 40 { throw \"broken on purpose\"; }\n\
         \x20   ctx.pool.ids().take(range_vec(k))\n}\n",
    )
    .unwrap();
    let path = experiment(dir.path(), "failing", "iterations = 1", &[]);
    let text = std::fs::read_to_string(&path).unwrap()
        + format!(
            "\n[[strategy]]\nname = \"broken\"\nscript = \"{}\"\n\n[[strategy]]\nname = \"random\"\nscript = \"{}\"\n",
            script.display(),
            repo().join("strategies/random.rhai").display()
        )
        .as_str();
    std::fs::write(&path, text).unwrap();
    let out = lab(&["run", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("failing/broken/seed-0 failed") && stderr.contains("broken on purpose"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 2 cells of failing failed"),
        "{stderr}"
    );
    let results = dir.path().join("results/failing");
    let random = curve_without_seconds(&results.join("random/seed-0/curve.csv"));
    assert_eq!(random.len(), 3, "random ran both iterations: {random:?}");
    // The broken cell keeps its committed first iteration, and the report covers both.
    let broken = curve_without_seconds(&results.join("broken/seed-0/curve.csv"));
    assert_eq!(broken.len(), 2, "{broken:?}");
    let report = std::fs::read_to_string(results.join("report.md")).unwrap();
    assert!(
        report.contains("some cells have not finished")
            && report.contains("broken/seed-0: stopped after iteration 0"),
        "{report}"
    );
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
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell.join("state.json")).unwrap()).unwrap();
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
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("seeds = [0]", "seeds = [1]");
    std::fs::write(&path, text).unwrap();
    let out = lab(&["run", path.to_str().unwrap()]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("also averages cells the experiment file no longer lists (random/seed-0)"),
        "{stderr}"
    );
}

/// An `ed` strategy selects the whole label budget in its first query: later iterations take
/// the next slices of that order, each id with the score the query gave it. A
/// `pool_subsample` smaller than the budget would leave later iterations nothing to take, so
/// it is refused before the cell trains.
#[test]
fn an_ed_strategy_labels_its_order_in_slices_with_its_scores() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("longest_first.rhai");
    std::fs::write(
        &script,
        "// Longest inputs first, selected once.\n// Deviation: none.\nconst KIND = \"ed\";\n\
         fn select(ctx, k) {\n\
         \x20   let u = float_vec(ctx.pool.inputs().map(|text| text.len().to_float()));\n\
         \x20   let t = u.topk(k);\n\
         \x20   #{ ids: ctx.pool.ids().take(t), scores: u.take(t) }\n}\n",
    )
    .unwrap();
    let path = experiment(dir.path(), "ed", "iterations = 2", &[]);
    let with_strategy = std::fs::read_to_string(&path).unwrap()
        + format!(
            "\n[[strategy]]\nname = \"longest\"\nscript = \"{}\"\n",
            script.display()
        )
        .as_str();
    std::fs::write(&path, &with_strategy).unwrap();
    assert_ok(&lab(&["run", path.to_str().unwrap()]));

    let selected =
        std::fs::read_to_string(dir.path().join("results/ed/longest/seed-0/selected.jsonl"))
            .unwrap();
    let lines: Vec<serde_json::Value> = selected
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sizes: Vec<usize> = lines
        .iter()
        .map(|l| l["ids"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![4, 3, 3], "{selected}");
    let scores: Vec<f64> = lines
        .iter()
        .flat_map(|l| {
            l["scores"]
                .as_array()
                .unwrap_or_else(|| panic!("no scores: {selected}"))
                .iter()
                .map(|s| s.as_f64().expect("a score"))
                .collect::<Vec<_>>()
        })
        .collect();
    // One order, longest first, dealt out across the iterations.
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]) && scores[0] > scores[9],
        "{scores:?}"
    );

    let subsampled = with_strategy.replace(
        "name = \"longest\"\n",
        "name = \"longest\"\npool_subsample = 5\n",
    );
    std::fs::write(&path, subsampled).unwrap();
    let out = lab(&["run", path.to_str().unwrap(), "--fresh"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`strategy[0].pool_subsample` in ")
            && err.contains("draws 5 of the 30 pool items, but `longest` is an `ed` strategy")
            && err.contains("all 10 planned labels")
            && err.contains("at least 10"),
        "{err}"
    );
    // `lab check` (and so `lab bench`, before running anything) says so too, at its line.
    let out = lab(&["check", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`strategy[0].pool_subsample` in ")
            && err.contains("draws 5 of the 30 pool items"),
        "{err}"
    );
}
