//! Crash consistency of `lab run`: a run aborted at any of the runner's crash points (before
//! or after each durable write, `src/runner/crash_point.rs`) and run again must end with what
//! an uninterrupted run writes — the same curve rows (but the wall-clock column), the same
//! selections in the same order, the same labels, generations and state, no file left over
//! or missing, and the report made. The abort is `LAB_CRASH_AT`, which kills the process
//! like a SIGKILL (no destructors, nothing flushed) at the named point.
mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use support::crash_runs::{
    age_temporaries, assert_each_point, crash, crash_data, crash_experiment, differences,
    rerun_differences, run, run_args, Snapshot,
};
use support::mock_openai::{MockServer, Options};
use support::tiny_run::{llm_labeller_table, TinyExperiment};

/// A strategy that keeps memory between iterations (how often each pool item was passed
/// over), so a resume must restore it; ties broken by the seeded rng.
const MEMO_SCRIPT: &str = r#"// Memo: the pool items passed over most often; a test fixture keeping strategy memory.
// Deviation: none (not a published strategy).
const KIND = "al";

fn select(ctx, k) {
    let ids = ctx.pool.ids();
    let before = ctx.recall("passed_over", ids);
    let count = if type_of(before) == "()" { zeros(ids.len()) } else { before.fill_nan(0.0) };
    let rng = ctx.rng();
    let noise = [];
    for i in 0..ids.len() { noise.push(rng.uniform()); }
    let score = count + float_vec(noise);
    let picks = score.topk(k);
    ctx.remember("passed_over", ids, count + 1.0);
    #{ ids: ids.take(picks), scores: score.take(picks) }
}
"#;

/// Memo's script, beside `crash_data()` and for the same reason: its path is part of a cell's
/// configuration (results copied from another run must resume, not be refused). Written once
/// per process, replaced whole: another run of these tests may be reading it.
fn memo_script() -> &'static Path {
    static MEMO: OnceLock<PathBuf> = OnceLock::new();
    MEMO.get_or_init(|| {
        let dir = crash_data().parent().unwrap();
        let mut tmp = tempfile::NamedTempFile::new_in(dir).unwrap();
        std::io::Write::write_all(&mut tmp, MEMO_SCRIPT.as_bytes()).unwrap();
        let memo = dir.join("memo.rhai");
        tmp.persist(&memo).unwrap();
        memo
    })
}

/// The experiment every scenario runs: two cells, mnlp (selections from the trained model)
/// and memo (strategy memory), that draw the same initial set from seed 0, so memo takes
/// iteration 0 from mnlp. (The tiny model's rouge1 is 0; its generations follow the adapter.)
fn experiment(dir: &Path, iterations: usize) -> PathBuf {
    let path = TinyExperiment {
        al: &format!("iterations = {iterations}"),
        strategies: &["mnlp"],
        ..crash_experiment()
    }
    .write(dir);
    let script = memo_script();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[[strategy]]\nname = \"memo\"\nscript = \"{}\"\n",
        script.display()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// The uninterrupted run of `experiment(_, 2)`, computed once for every test.
fn uninterrupted() -> &'static Snapshot {
    static WHOLE: OnceLock<Snapshot> = OnceLock::new();
    WHOLE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let exp = experiment(dir.path(), 2);
        run(&run_args(&exp), &[]).unwrap();
        Snapshot::take(dir.path(), "crash")
    })
}

/// Aborts at each point, reruns, and compares with the uninterrupted run; every point's
/// differences in one message. Points are `name:nth`: with cells mnlp then memo of three
/// iterations each, the nth passing of an iteration's point is mnlp's iteration n-1 for n ≤ 3
/// and memo's iteration n-4 after (memo's iteration 0 is mnlp's, shared).
fn crash_and_resume_at(points: &[&str]) {
    let whole = uninterrupted();
    assert_each_point(points, |point| {
        let dir = tempfile::tempdir().unwrap();
        let exp = experiment(dir.path(), 2);
        crash(&run_args(&exp), point, &[]);
        age_temporaries(&dir.path().join("results/crash"));
        rerun_differences(&exp, dir.path(), &[], whole)
    });
}

#[test]
fn a_run_aborted_around_the_files_of_an_iteration_resumes_to_the_uninterrupted_results() {
    crash_and_resume_at(&[
        "selection-made:5",
        "labels-bought:2",
        "adapter-staged:1",
        "adapter-saved:2",
        "adapter-saved:4",
        "generations-written:1",
        "curve-written:4",
        "selected-written:2",
        "selected-written:6",
    ]);
}

#[test]
fn a_run_aborted_around_a_commit_resumes_to_the_uninterrupted_results() {
    crash_and_resume_at(&[
        "config-written:1",
        "config-written:2",
        "state-written:1",
        "state-written:3",
        "state-written:5",
        "adapters-pruned:2",
        "report-started:1",
        "report-written:1",
    ]);
}

/// Inside atomic writes: the temporary is written, the file not yet replaced.
#[test]
fn a_run_aborted_inside_an_atomic_write_resumes_to_the_uninterrupted_results() {
    crash_and_resume_at(&[
        "staged:config.toml:2",
        "staged:iter-1.jsonl:1",
        "staged:curve.csv:4",
        "staged:state.json:2",
        "staged:adapter_model.safetensors:3",
        "staged:rouge1.svg:1",
        "staged:report.md:1",
    ]);
}

#[test]
fn a_run_aborted_while_resuming_resumes_again() {
    let whole = uninterrupted();
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), 2);
    // Rows, selections and generations of memo's iteration 1 written past the commit, and
    // its adapter beside the committed one…
    crash(&run_args(&exp), "selected-written:5", &[]);
    // …then a second abort right after the resume dropped them (mnlp's resume is the first).
    crash(&run_args(&exp), "resume-trimmed:2", &[]);
    let problems = rerun_differences(&exp, dir.path(), &[], whole);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_fresh_run_aborted_after_moving_the_cell_aside_starts_over_when_rerun() {
    let whole = uninterrupted();
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), 2);
    whole.restore(dir.path(), "crash");
    let fresh = ["run", exp.to_str().unwrap(), "--fresh"];
    crash(&fresh, "fresh-cell-moved:1", &[]);
    // A plain rerun: the cell folder is gone, so nothing of the old results may survive.
    let problems = rerun_differences(&exp, dir.path(), &[], whole);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_run_aborted_after_reopening_finished_cells_resumes_them() {
    let whole = uninterrupted();
    let dir = tempfile::tempdir().unwrap();
    // Finished after 2 iterations, then extended to 3: the rerun re-opens each cell in its
    // state.json before writing the new config.toml (the abort is at memo's, after mnlp ran
    // its third iteration).
    let exp = experiment(dir.path(), 1);
    run(&run_args(&exp), &[]).unwrap();
    let exp = experiment(dir.path(), 2);
    crash(&run_args(&exp), "restop-written:2", &[]);
    let problems = rerun_differences(&exp, dir.path(), &[], whole);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// An experiment whose labels are bought from `server` (one cell, three iterations).
fn llm_experiment(dir: &Path, server: &MockServer) -> PathBuf {
    TinyExperiment {
        init_size: 4,
        query_size: 3,
        tables: &llm_labeller_table(&server.base_url(), KEY_ENV, (0.15, 0.6), ""),
        ..crash_experiment()
    }
    .write(dir)
}

const KEY_ENV: &str = "LAB_TEST_CRASH_KEY";

/// Runs `llm_experiment` in `dir` against a server of its own, aborted at each of `points`
/// in turn (none: uninterrupted); what it wrote, and how many labels the server sold.
fn llm_run(dir: &Path, points: &[&str]) -> Result<(Snapshot, usize), String> {
    let server = MockServer::start(Options::default());
    let exp = llm_experiment(dir, &server);
    let key = Options::default().api_key;
    let cache = dir.join("label-cache");
    let env = [
        (KEY_ENV, key.as_str()),
        ("LAB_LABEL_CACHE", cache.to_str().unwrap()),
    ];
    for point in points {
        crash(&run_args(&exp), point, &env);
    }
    run(&run_args(&exp), &env)?;
    Ok((Snapshot::take(dir, "crash"), server.served().len()))
}

#[test]
fn a_run_aborted_after_buying_labels_neither_buys_them_again_nor_loses_them() {
    let whole_dir = tempfile::tempdir().unwrap();
    let (whole, sold) = llm_run(whole_dir.path(), &[]).unwrap();
    let points = ["labels-bought:1", "labels-bought:2", "curve-written:3"];
    assert_each_point(&points, |point| {
        let dir = tempfile::tempdir().unwrap();
        match llm_run(dir.path(), &[point]) {
            Ok((got, resold)) => {
                let mut p = differences(&whole, &got);
                if resold != sold {
                    p.push(format!("the server sold {resold} labels instead of {sold}"));
                }
                p
            }
            Err(e) => vec![e],
        }
    });
}
