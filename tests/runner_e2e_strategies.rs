//! End to end through the `lab` binary: strategies' initial sets, an `ed` strategy's one order
//! dealt out across iterations, and a failing strategy ending only its own cell.
mod support;

use support::runner_e2e::{append_to_experiment, curve_without_seconds, experiment, lab_refuses};
use support::tiny_run::{assert_ok, lab, repo};

#[test]
fn huds_chooses_its_initial_set_from_the_base_model_unless_told_to_draw_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = experiment(dir.path(), "start", "iterations = 1", &["random", "huds"]);
    // A second HUDS cell that draws its initial set from the seed, as every other strategy.
    append_to_experiment(
        &path,
        &format!(
            "\n[[strategy]]\nname = \"huds\"\nlabel = \"huds-drawn\"\nscript = \"{}\"\nparams = {{ initial = \"random\" }}\n",
            repo().join("strategies/huds.rhai").display()
        ),
    );
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
    let err = lab_refuses(&["run", path.to_str().unwrap(), "--fresh"]);
    assert!(
        err.contains("`strategy[0].pool_subsample` in ")
            && err.contains("draws 5 of the 30 pool items, but `longest` is an `ed` strategy")
            && err.contains("all 10 planned labels")
            && err.contains("at least 10"),
        "{err}"
    );
    // `lab check` (and so `lab bench`, before running anything) says so too, at its line.
    let err = lab_refuses(&["check", path.to_str().unwrap()]);
    assert!(
        err.contains("`strategy[0].pool_subsample` in ")
            && err.contains("draws 5 of the 30 pool items"),
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
    append_to_experiment(
        &path,
        &format!(
            "\n[[strategy]]\nname = \"broken\"\nscript = \"{}\"\n\n[[strategy]]\nname = \"random\"\nscript = \"{}\"\n",
            script.display(),
            repo().join("strategies/random.rhai").display()
        ),
    );
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
