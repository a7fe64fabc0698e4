//! Tests of `persist.rs` (a child module of it, so they reach its private items).
use super::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn metrics() -> Vec<String> {
    vec!["rouge1".to_string(), "rougeL".to_string()]
}

/// The files and state of iteration `t` of a deterministic toy cell (10 labels per step).
fn iteration(t: usize) -> (CurveRow, SelectedLine, Vec<GenerationRecord>, CellState) {
    let row = CurveRow {
        iteration: t,
        labeled: 10 * (t + 1),
        cost: 0.0,
        tokens: 0,
        seconds: 1.5 * (t + 1) as f64,
        metrics: vec![0.1 * t as f64, 0.05 * t as f64],
    };
    let ids: Vec<u64> = (0..10).map(|i| (t * 10 + i) as u64 * 7 % 101).collect();
    let sel = SelectedLine::new(t, ids, Some((0..10).map(|i| i as f64 / 10.0).collect()));
    let gens = (0..3)
        .map(|i| {
            GenerationRecord::new(
                i,
                format!("pred {t} {i}"),
                vec![format!("ref {i}")],
                &[("rouge1", 0.5), ("rougeL", f64::NAN)],
            )
        })
        .collect();
    let rng = ChaCha8Rng::seed_from_u64(3);
    let mut st = CellState::new("exp", "random", 3, &rng);
    st.iterations_done = t + 1;
    st.labeled_ids = (0..=t)
        .flat_map(|s| (0..10).map(move |i| (s * 10 + i) as u64 * 7 % 101))
        .collect();
    (row, sel, gens, st)
}

fn write(paths: &CellPaths, t: usize, steps: usize) {
    let (row, sel, gens, st) = iteration(t);
    let rec = IterationRecord {
        curve_row: &row,
        selected: &sel,
        generations: &gens,
    };
    write_iteration_files(paths, &metrics(), &rec, &st, steps).unwrap();
}

fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                files.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn a_crash_between_any_two_files_resumes_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = CellPaths::new(tmp.path(), "ref", "random", 3);
    prepare_cell(&reference, "seed = 3\n", false, false).unwrap();
    for t in 0..3 {
        write(&reference, t, usize::MAX);
    }
    let want = snapshot(&reference.dir);
    assert!(want.iter().any(|(f, _)| f == "generations/iter-2.jsonl"));

    // Crash during iteration 1 after 0..=3 of its 4 files; also during iteration 0.
    for crash_iter in 0..2 {
        for steps in 0..4 {
            let paths = CellPaths::new(tmp.path(), &format!("c{crash_iter}-{steps}"), "random", 3);
            prepare_cell(&paths, "seed = 3\n", false, false).unwrap();
            for t in 0..crash_iter {
                write(&paths, t, usize::MAX);
            }
            write(&paths, crash_iter, steps);
            // A kill inside an atomic write leaves its temporary file behind.
            std::fs::write(paths.dir.join(".tmpAbC123"), "partial").unwrap();
            // Resume: the half-written iteration is gone; state says where to continue.
            let state = prepare_cell(&paths, "seed = 3\n", false, false).unwrap();
            let done = state.as_ref().map_or(0, |s| s.iterations_done);
            assert_eq!(done, crash_iter, "crash after {steps} files");
            if done > 0 {
                assert_eq!(Curve::read(&paths.curve()).unwrap().rows.len(), done);
            } else {
                assert!(!paths.curve().exists());
            }
            assert_eq!(read_selected(&paths).unwrap().len(), done);
            assert!(!paths.generations(crash_iter).exists());
            for t in done..3 {
                write(&paths, t, usize::MAX);
            }
            assert_eq!(snapshot(&paths.dir), want, "crash at {crash_iter}/{steps}");
        }
    }
}

#[test]
fn files_have_the_documented_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = CellPaths::new(tmp.path(), "exp", "random", 3);
    assert!(paths.dir.ends_with("exp/random/seed-3"));
    write(&paths, 0, usize::MAX);
    let curve = std::fs::read_to_string(paths.curve()).unwrap();
    assert_eq!(
        curve,
        "iteration,labeled,cost,tokens,seconds,rouge1,rougeL\n0,10,0,0,1.5,0,0\n"
    );
    let sel = std::fs::read_to_string(paths.selected()).unwrap();
    assert!(sel.starts_with(r#"{"iteration":0,"ids":[0,7,14,"#), "{sel}");
    assert!(sel.contains(r#""scores":[0.0,0.1,"#), "{sel}");
    let gens = std::fs::read_to_string(paths.generations(0)).unwrap();
    assert_eq!(
        gens.lines().next().unwrap(),
        r#"{"id":0,"prediction":"pred 0 0","references":["ref 0"],"metrics":{"rouge1":0.5,"rougeL":null}}"#
    );
    assert_eq!(read_generations(&paths, 0).unwrap().len(), 3);
    let st = load_state(&paths).unwrap().unwrap();
    assert_eq!(st.iterations_done, 1);
    assert_eq!(st.labeled_ids.len(), 10);
}

#[test]
fn changed_config_or_metrics_are_refused_and_fresh_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = CellPaths::new(tmp.path(), "exp", "random", 3);
    prepare_cell(&paths, "a = 1\n", false, false).unwrap();
    write(&paths, 0, usize::MAX);
    let err = prepare_cell(&paths, "a = 2\n", false, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.toml") && err.contains("--fresh"),
        "{err}"
    );
    assert!(prepare_cell(&paths, "a = 2\n", true, false)
        .unwrap()
        .is_none());
    assert!(!paths.curve().exists());

    write(&paths, 0, usize::MAX);
    let (row, sel, gens, st) = iteration(1);
    let rec = IterationRecord {
        curve_row: &row,
        selected: &sel,
        generations: &gens,
    };
    let err = append_iteration(&paths, &["bleu".to_string()], &rec, &st)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("metric columns") && err.contains("bleu"),
        "{err}"
    );
}

#[test]
fn a_state_without_its_config_is_refused_and_fresh_removes_the_state_first() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = CellPaths::new(tmp.path(), "exp", "random", 3);
    prepare_cell(&paths, "a = 1\n", false, false).unwrap();
    write(&paths, 0, usize::MAX);
    // What a --fresh killed after removing config.toml but not state.json would leave.
    std::fs::remove_file(paths.config()).unwrap();
    let err = prepare_cell(&paths, "a = 2\n", false, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no config.toml") && err.contains("--fresh"),
        "{err}"
    );
    assert!(prepare_cell(&paths, "a = 2\n", true, false)
        .unwrap()
        .is_none());
    assert!(!paths.state().exists());
}

#[test]
fn a_cell_is_run_by_one_process_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = CellPaths::new(tmp.path(), "exp", "random", 3);
    let held = lock_cell(&paths).unwrap();
    // flock belongs to the open file, so a second open in this process is refused too.
    let err = lock_cell(&paths).unwrap_err().to_string();
    assert!(
        err.contains("another lab process") && err.contains("seed-3"),
        "{err}"
    );
    // --fresh removes the cell folder, not the lock beside it.
    reset_cell(&paths).unwrap();
    assert!(lock_cell(&paths).is_err());
    drop(held);
    lock_cell(&paths).unwrap();
}

#[test]
fn state_ahead_of_curve_is_an_error_not_a_silent_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = CellPaths::new(tmp.path(), "exp", "random", 3);
    write(&paths, 0, usize::MAX);
    write(&paths, 1, usize::MAX);
    // Someone deleted a row by hand.
    let text = std::fs::read_to_string(paths.curve()).unwrap();
    let cut: Vec<&str> = text.lines().take(2).collect();
    std::fs::write(paths.curve(), cut.join("\n") + "\n").unwrap();
    let err = resume_cell(&paths).unwrap_err().to_string();
    assert!(err.contains("1 rows for the 2 iterations"), "{err}");
}
