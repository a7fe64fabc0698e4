//! What the crash-consistency tests (tests/runner_crash_*.rs) share: `lab` aborted at a
//! crash point (`LAB_CRASH_AT`, src/runner/crash_point.rs) or run to its end, a results
//! folder's files, and how a rerun's results differ from an uninterrupted run's.
use super::tiny_run::{aeslc_head, lab_with, stderr, stdout, TinyExperiment};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Every file under `<dir>/results/<name>`, by path relative to it.
pub struct Snapshot {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Snapshot {
    pub fn take(dir: &Path, name: &str) -> Snapshot {
        let root = dir.join("results").join(name);
        let files = super::files_under(&root)
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
    pub fn restore(&self, dir: &Path, name: &str) {
        let root = dir.join("results").join(name);
        for (rel, bytes) in &self.files {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }

    pub fn text(&self, rel: &str) -> Option<String> {
        self.files
            .get(rel)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The cell folders (`mnlp/seed-0`), found by their state.json.
    pub fn cells(&self) -> Vec<String> {
        self.files
            .keys()
            .filter_map(|k| k.strip_suffix("/state.json").map(str::to_string))
            .collect()
    }
}

/// curve.csv without its wall-clock column.
pub fn curve_without_seconds(text: &str) -> Vec<String> {
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

pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Floats computed after a resume read the adapter back from disk, and SIMD kernels may round
/// differently in the last bits (runner_e2e says why): equal up to that.
pub fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
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
pub fn labels(state: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut labels = state["labels"].as_array().cloned().unwrap_or_default();
    for label in &mut labels {
        if let Some(l) = label.as_object_mut() {
            l.remove("seconds");
        }
    }
    labels
}

/// How `got` differs from the uninterrupted `want`, one line per difference.
pub fn differences(want: &Snapshot, got: &Snapshot) -> Vec<String> {
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
pub fn crash(args: &[&str], point: &str, env: &[(&str, &str)]) {
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
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
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

pub fn run_args(exp: &Path) -> [&str; 2] {
    ["run", exp.to_str().unwrap()]
}

/// Dates the temporaries an abort left in `folder` an hour back: in a folder without a lock
/// (an experiment's, where the report is written; the embedding cache's) a temporary may be
/// another process's write in progress, so a rerun removes only those older than any write.
pub fn age_temporaries(folder: &Path) {
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in std::fs::read_dir(folder).unwrap() {
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

/// The first 300 rows of AESLC, written once per test binary in a folder of its own: a data
/// folder's path is part of a cell's configuration, so every run a binary compares must read
/// the same one, and loading all of AESLC is most of a `lab` process's start. Each file is
/// replaced whole, as another run of the same tests may be reading them.
pub fn crash_data() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(env!("CARGO_CRATE_NAME"));
        std::fs::create_dir_all(&dir).unwrap();
        aeslc_head(&dir, 300)
    })
}

/// The experiment the crash tests start from, each stating only what it varies: `crash`, on
/// `crash_data()`, three iterations (the initial set and two queries) of two items, small
/// because each crash point is a run and a rerun and training is most of their time.
pub fn crash_experiment() -> TinyExperiment<'static> {
    TinyExperiment {
        name: "crash",
        data_path: Some(crash_data()),
        al: "iterations = 2",
        init_size: 2,
        query_size: 2,
        ..TinyExperiment::default()
    }
}

/// An environment kept as owned pairs, borrowed as `lab_with`, `crash` and `run` take it.
pub fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `exp` (in `dir`) run to its end, and how its results differ from the uninterrupted
/// `whole`; the error when the run fails.
pub fn rerun_differences(
    exp: &Path,
    dir: &Path,
    env: &[(&str, &str)],
    whole: &Snapshot,
) -> Vec<String> {
    match run(&run_args(exp), env) {
        Ok(()) => differences(whole, &Snapshot::take(dir, "crash")),
        Err(e) => vec![e],
    }
}

/// `check` at each crash point; fails naming every point whose check found problems, with them.
pub fn assert_each_point(points: &[&str], mut check: impl FnMut(&str) -> Vec<String>) {
    let mut failures = Vec::new();
    for point in points {
        let problems = check(point);
        if !problems.is_empty() {
            failures.push(format!("{point}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
