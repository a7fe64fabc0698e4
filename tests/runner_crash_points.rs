//! Crash consistency of `lab run`: a run aborted at any of the runner's crash points (before
//! or after each durable write, `src/runner/crash_point.rs`) and run again must end with what
//! an uninterrupted run writes — the same curve rows (but the wall-clock column), the same
//! selections in the same order, the same labels, generations and state, no file left over
//! or missing, and the report made. The abort is `LAB_CRASH_AT`, which kills the process
//! like a SIGKILL (no destructors, nothing flushed) at the named point.
mod support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use support::mock_openai::{MockServer, Options};
use support::tiny_run::{aeslc_head, lab_with, llm_labeller_table, stderr, stdout, TinyExperiment};

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

/// What every scenario shares: memo's script and a small copy of the data, in one place since
/// their paths are part of a cell's configuration (results copied from another run must
/// resume, not be refused). Written once per process, each file replaced whole: another run
/// of these tests may be reading them.
struct Fixtures {
    memo: PathBuf,
    data: PathBuf,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("crash_points");
        std::fs::create_dir_all(&dir).unwrap();
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).unwrap();
        std::io::Write::write_all(&mut tmp, MEMO_SCRIPT.as_bytes()).unwrap();
        let memo = dir.join("memo.rhai");
        tmp.persist(&memo).unwrap();
        // Loading all of AESLC is most of a lab process's start, and each point starts two.
        let data = aeslc_head(&dir, 300);
        Fixtures { memo, data }
    })
}

/// The experiment every scenario runs: two cells, mnlp (selections from the trained model)
/// and memo (strategy memory), that draw the same initial set from seed 0, so memo takes
/// iteration 0 from mnlp. (The tiny model's rouge1 is 0; its generations follow the adapter.)
fn experiment(dir: &Path, iterations: usize) -> PathBuf {
    let path = TinyExperiment {
        name: "crash",
        data_path: Some(&fixtures().data),
        al: &format!("iterations = {iterations}"),
        // Small steps: each point is a run and a rerun, and training is most of their time.
        init_size: 2,
        query_size: 2,
        strategies: &["mnlp"],
        ..TinyExperiment::default()
    }
    .write(dir);
    let script = &fixtures().memo;
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[[strategy]]\nname = \"memo\"\nscript = \"{}\"\n",
        script.display()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// Every file under `<dir>/results/<name>`, by path relative to it.
struct Snapshot {
    files: BTreeMap<String, Vec<u8>>,
}

impl Snapshot {
    fn take(dir: &Path, name: &str) -> Snapshot {
        let root = dir.join("results").join(name);
        let files = support::files_under(&root)
            .into_iter()
            .map(|p| {
                let rel = p
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let bytes = std::fs::read(&p).unwrap();
                (rel, bytes)
            })
            .collect();
        Snapshot { files }
    }

    /// Writes the files back under `<dir>/results/<name>`.
    fn restore(&self, dir: &Path, name: &str) {
        let root = dir.join("results").join(name);
        for (rel, bytes) in &self.files {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }

    fn text(&self, rel: &str) -> Option<String> {
        self.files
            .get(rel)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The cell folders (`mnlp/seed-0`), found by their state.json.
    fn cells(&self) -> Vec<String> {
        self.files
            .keys()
            .filter_map(|k| k.strip_suffix("/state.json").map(str::to_string))
            .collect()
    }
}

/// curve.csv without its wall-clock column.
fn curve_without_seconds(text: &str) -> Vec<String> {
    let header: Vec<&str> = text.lines().next().unwrap_or_default().split(',').collect();
    let seconds = header.iter().position(|c| *c == "seconds");
    text.lines()
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| Some(*i) != seconds)
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Floats computed after a resume read the adapter back from disk, and SIMD kernels may round
/// differently in the last bits (runner_e2e says why): equal up to that.
fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= 1e-5 * x.abs().max(1.0)
        }
        (serde_json::Value::Array(x), serde_json::Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q))
        }
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

/// A state's labels without the seconds each request took (a label taken from the label
/// cache took none).
fn labels(state: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut labels = state["labels"].as_array().cloned().unwrap_or_default();
    for label in &mut labels {
        if let Some(l) = label.as_object_mut() {
            l.remove("seconds");
        }
    }
    labels
}

/// How `got` differs from the uninterrupted `want`, one line per difference.
fn differences(want: &Snapshot, got: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    let names = |s: &Snapshot| s.files.keys().cloned().collect::<Vec<_>>();
    if names(want) != names(got) {
        let missing: Vec<_> = want
            .files
            .keys()
            .filter(|k| !got.files.contains_key(*k))
            .collect();
        let extra: Vec<_> = got
            .files
            .keys()
            .filter(|k| !want.files.contains_key(*k))
            .collect();
        out.push(format!("files missing {missing:?}, left over {extra:?}"));
    }
    for cell in want.cells() {
        let file = |s: &Snapshot, name: &str| s.text(&format!("{cell}/{name}"));
        let curve = |s: &Snapshot| file(s, "curve.csv").map(|t| curve_without_seconds(&t));
        if curve(want) != curve(got) {
            out.push(format!(
                "{cell}/curve.csv: {:?} instead of {:?}",
                curve(got),
                curve(want)
            ));
        }
        let selected = |s: &Snapshot| json_lines(&file(s, "selected.jsonl").unwrap_or_default());
        let (a, b) = (selected(want), selected(got));
        let ids = |v: &[serde_json::Value]| -> Vec<(serde_json::Value, serde_json::Value)> {
            v.iter()
                .map(|l| (l["iteration"].clone(), l["ids"].clone()))
                .collect()
        };
        if ids(&a) != ids(&b) {
            out.push(format!(
                "{cell}/selected.jsonl: (iteration, ids) {:?} instead of {:?}",
                ids(&b),
                ids(&a)
            ));
        } else if !a
            .iter()
            .zip(&b)
            .all(|(x, y)| close(&x["scores"], &y["scores"]))
        {
            out.push(format!("{cell}/selected.jsonl: other scores"));
        }
        let state = |s: &Snapshot| -> serde_json::Value {
            let mut v: serde_json::Value =
                serde_json::from_str(&file(s, "state.json").unwrap_or_else(|| "null".into()))
                    .unwrap();
            if let Some(m) = v.as_object_mut() {
                m.remove("seconds");
            }
            v
        };
        let (sa, sb) = (state(want), state(got));
        if sa["labeled_ids"] != sb["labeled_ids"] || labels(&sa) != labels(&sb) {
            out.push(format!(
                "{cell}/state.json: labeled {} with labels {} instead of {} with {}",
                sb["labeled_ids"], sb["labels"], sa["labeled_ids"], sa["labels"]
            ));
        } else {
            let without_labels = |v: &serde_json::Value| {
                let mut v = v.clone();
                v.as_object_mut().map(|m| m.remove("labels"));
                v
            };
            if !close(&without_labels(&sa), &without_labels(&sb)) {
                out.push(format!("{cell}/state.json: {sb} instead of {sa}"));
            }
        }
        for (name, bytes) in &want.files {
            let generations = name.starts_with(&format!("{cell}/generations/"));
            if generations && got.files.get(name) != Some(bytes) {
                out.push(format!("{name} differs"));
            }
        }
    }
    for report in ["report.md", "summary.csv", "rouge1.svg"] {
        if !got.files.contains_key(report) {
            out.push(format!("no {report}"));
        }
    }
    out
}

/// `lab <args>` aborted at `point` (`name` or `name:nth`); panics unless it died there.
fn crash(args: &[&str], point: &str, env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.push(("LAB_CRASH_AT", point));
    let out = lab_with(args, &env);
    let name = point.split(':').next().unwrap();
    assert!(
        out.status.signal() == Some(6) && stderr(&out).contains(&format!("aborting at {name}")),
        "LAB_CRASH_AT={point} did not abort there ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
}

/// `lab <args>` to the end; the error text when it fails.
fn run(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let out = lab_with(args, env);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "the rerun failed ({}): {}",
            out.status,
            stderr(&out).trim()
        ))
    }
}

fn run_args(exp: &Path) -> [&str; 2] {
    ["run", exp.to_str().unwrap()]
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

/// Dates the temporaries an abort left in the experiment folder an hour back: a report write
/// there may be another process's, so the rerun removes only those older than any write.
fn age_report_temporaries(dir: &Path) {
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in std::fs::read_dir(dir.join("results/crash")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file()
            && path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp")
        {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(an_hour_ago).unwrap();
        }
    }
}

/// Aborts at each point, reruns, and compares with the uninterrupted run; every point's
/// differences in one message. Points are `name:nth`: with cells mnlp then memo of three
/// iterations each, the nth passing of an iteration's point is mnlp's iteration n-1 for n ≤ 3
/// and memo's iteration n-4 after (memo's iteration 0 is mnlp's, shared).
fn crash_and_resume_at(points: &[&str]) {
    let whole = uninterrupted();
    let mut failures = Vec::new();
    for point in points {
        let dir = tempfile::tempdir().unwrap();
        let exp = experiment(dir.path(), 2);
        crash(&run_args(&exp), point, &[]);
        age_report_temporaries(dir.path());
        let problems = match run(&run_args(&exp), &[]) {
            Ok(()) => differences(whole, &Snapshot::take(dir.path(), "crash")),
            Err(e) => vec![e],
        };
        if !problems.is_empty() {
            failures.push(format!("{point}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
    run(&run_args(&exp), &[]).unwrap();
    let problems = differences(whole, &Snapshot::take(dir.path(), "crash"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_fresh_run_aborted_after_removing_the_state_starts_over_when_rerun() {
    let whole = uninterrupted();
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), 2);
    whole.restore(dir.path(), "crash");
    let fresh = ["run", exp.to_str().unwrap(), "--fresh"];
    crash(&fresh, "fresh-state-removed:1", &[]);
    // A plain rerun: the cell has no state.json, so nothing of the old results may survive.
    run(&run_args(&exp), &[]).unwrap();
    let problems = differences(whole, &Snapshot::take(dir.path(), "crash"));
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
    run(&run_args(&exp), &[]).unwrap();
    let problems = differences(whole, &Snapshot::take(dir.path(), "crash"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// An experiment whose labels are bought from `server` (one cell, three iterations).
fn llm_experiment(dir: &Path, server: &MockServer) -> PathBuf {
    TinyExperiment {
        name: "crash",
        data_path: Some(&fixtures().data),
        al: "iterations = 2",
        tables: &llm_labeller_table(&server.base_url(), KEY_ENV, (0.15, 0.6), ""),
        ..TinyExperiment::default()
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
    let mut failures = Vec::new();
    for point in ["labels-bought:1", "labels-bought:2", "curve-written:3"] {
        let dir = tempfile::tempdir().unwrap();
        let mut problems = match llm_run(dir.path(), &[point]) {
            Ok((got, resold)) => {
                let mut p = differences(&whole, &got);
                if resold != sold {
                    p.push(format!("the server sold {resold} labels instead of {sold}"));
                }
                p
            }
            Err(e) => vec![e],
        };
        if !problems.is_empty() {
            problems.insert(0, String::new());
            failures.push(format!("{point}:{}", problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
