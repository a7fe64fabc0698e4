//! One tiny-model experiment file and one way to run `lab`, for the integration tests that
//! drive the binary end to end. Each test states only what it varies; the experiment is the
//! shipped AESLC data with the in-process `tiny-random-llama`, so a cell takes seconds.
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The parts of the experiment file that tests vary. Lines given as text are written as they
/// are under their table, so tests can later `replace` them in the written file.
pub struct TinyExperiment<'a> {
    pub name: &'a str,
    /// The data folder; the shipped `data/aeslc` when `None`.
    pub data_path: Option<&'a Path>,
    pub test_size: usize,
    pub pool_size: usize,
    pub max_input_chars: usize,
    /// Extra lines under `[data]` (`reference_fields = …`).
    pub data: &'a str,
    pub max_input_tokens: usize,
    pub max_new_tokens: usize,
    /// Lines under `[train]`; no table when empty.
    pub train: &'a str,
    /// Lines under `[al]` after `init_size` and `query_size`.
    pub al: &'a str,
    pub init_size: usize,
    pub query_size: usize,
    pub metrics: &'a [&'a str],
    /// Whole tables written after `[eval]` (`[labeller]`, `[eval.judge]`).
    pub tables: &'a str,
    /// Shipped strategy scripts, by name.
    pub strategies: &'a [&'a str],
}

impl Default for TinyExperiment<'_> {
    fn default() -> Self {
        TinyExperiment {
            name: "tiny",
            data_path: None,
            test_size: 4,
            pool_size: 30,
            max_input_chars: 300,
            data: "",
            max_input_tokens: 96,
            max_new_tokens: 6,
            train: "epochs = 1",
            al: "iterations = 1",
            init_size: 4,
            query_size: 3,
            metrics: &["rouge1"],
            tables: "",
            strategies: &["random"],
        }
    }
}

impl TinyExperiment<'_> {
    /// Writes `<dir>/<name>.toml` with results under `<dir>/results`, and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let mut text = format!(
            "name = \"{name}\"\nseeds = [0]\nresults_dir = \"{results}\"\n\n\
             [data]\npath = \"{data}\"\ninput_field = \"email\"\noutput_field = \"subject\"\n",
            name = self.name,
            results = dir.join("results").display(),
            data = self
                .data_path
                .map_or_else(|| repo().join("data/aeslc"), Path::to_path_buf)
                .display(),
        );
        push_lines(&mut text, self.data);
        text.push_str(&format!(
            "test_size = {}\npool_size = {}\nmax_input_chars = {}\n\n\
             [model]\nname = \"tiny-random-llama\"\nmax_input_tokens = {}\nmax_new_tokens = {}\n",
            self.test_size,
            self.pool_size,
            self.max_input_chars,
            self.max_input_tokens,
            self.max_new_tokens
        ));
        if !self.train.is_empty() {
            text.push_str("\n[train]\n");
            push_lines(&mut text, self.train);
        }
        text.push_str(&format!(
            "\n[al]\ninit_size = {}\nquery_size = {}\n",
            self.init_size, self.query_size
        ));
        push_lines(&mut text, self.al);
        let metrics: Vec<String> = self.metrics.iter().map(|m| format!("\"{m}\"")).collect();
        text.push_str(&format!("\n[eval]\nmetrics = [{}]\n", metrics.join(", ")));
        if !self.tables.is_empty() {
            text.push('\n');
            push_lines(&mut text, self.tables);
        }
        for s in self.strategies {
            text.push_str(&format!(
                "\n[[strategy]]\nname = \"{s}\"\nscript = \"{}\"\n",
                repo()
                    .join("strategies")
                    .join(format!("{s}.rhai"))
                    .display()
            ));
        }
        let path = dir.join(format!("{}.toml", self.name));
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// The first `rows` lines of each split of the shipped AESLC data, in `<dir>/aeslc`: the same
/// fields and folder name for a fraction of the loading, for tests that start `lab` many
/// times. Each file is replaced whole, so a `lab` reading them meanwhile sees old or new.
pub fn aeslc_head(dir: &Path, rows: usize) -> PathBuf {
    let out = dir.join("aeslc");
    std::fs::create_dir_all(&out).unwrap();
    for split in ["train", "dev", "test"] {
        let file = format!("{split}.jsonl");
        let text = std::fs::read_to_string(repo().join("data/aeslc").join(&file)).unwrap();
        let head: Vec<&str> = text.lines().take(rows).collect();
        let mut tmp = tempfile::NamedTempFile::new_in(&out).unwrap();
        std::io::Write::write_all(&mut tmp, (head.join("\n") + "\n").as_bytes()).unwrap();
        tmp.persist(out.join(&file)).unwrap();
    }
    out
}

/// A `[labeller]` table buying labels from the OpenAI-compatible server at `base_url`, the
/// key read from `key_env`, with `extra` lines (`concurrency = 2`) appended.
pub fn llm_labeller_table(
    base_url: &str,
    key_env: &str,
    (price_in, price_out): (f64, f64),
    extra: &str,
) -> String {
    format!(
        "[labeller]\nkind = \"llm\"\nprovider = \"custom\"\nbase_url = \"{base_url}\"\n\
         model = \"mock-model\"\napi_key_env = \"{key_env}\"\nmax_tokens = 32\n\
         price_input_per_mtok = {price_in}\nprice_output_per_mtok = {price_out}\n{extra}\n"
    )
}

/// A one-cell experiment `llm` (the tiny model, 20 pool items, queries of 4, up to 5 of
/// them) labelled by the OpenAI-compatible server at `base_url` under `budget` dollars, with
/// `labeller_extra` lines in its `[labeller]` table.
pub fn llm_budget_experiment(
    dir: &Path,
    base_url: &str,
    key_env: &str,
    prices: (f64, f64),
    budget: f64,
    labeller_extra: &str,
) -> PathBuf {
    TinyExperiment {
        name: "llm",
        test_size: 3,
        pool_size: 20,
        max_input_chars: 200,
        max_input_tokens: 64,
        max_new_tokens: 4,
        query_size: 4,
        al: &format!("iterations = 5\nmoney_budget = {budget}"),
        tables: &llm_labeller_table(base_url, key_env, prices, labeller_extra),
        ..TinyExperiment::default()
    }
    .write(dir)
}

/// `lab run <experiment>` with `key` in `key_env` and the label cache under `dir`.
pub fn lab_run_with_key(experiment: &Path, dir: &Path, key_env: &str, key: &str) -> Output {
    lab_with(
        &["run", experiment.to_str().unwrap()],
        &key_and_cache(dir, key_env, key),
    )
}

/// [`lab_run_with_key`] started, not waited for: for tests that kill it part way.
pub fn spawn_lab_run_with_key(experiment: &Path, dir: &Path, key_env: &str, key: &str) -> Child {
    spawn_lab_with(
        &["run", experiment.to_str().unwrap()],
        &key_and_cache(dir, key_env, key),
    )
}

/// The environment of `lab run` with an LLM labeller: `key` in `key_env`, the label cache
/// under `dir`.
fn key_and_cache(dir: &Path, key_env: &str, key: &str) -> [(String, std::ffi::OsString); 2] {
    [
        (key_env.to_string(), key.into()),
        (
            "LAB_LABEL_CACHE".to_string(),
            dir.join("label-cache").into_os_string(),
        ),
    ]
}

fn push_lines(text: &mut String, lines: &str) {
    if !lines.is_empty() {
        text.push_str(lines.trim_end_matches('\n'));
        text.push('\n');
    }
}

/// `lab <args>` from the repository root, quiet, with `env` added; waits for it.
pub fn lab_with<K: AsRef<OsStr>, V: AsRef<OsStr>>(args: &[&str], env: &[(K, V)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lab"));
    command.args(args).env("LAB_QUIET", "1").current_dir(repo());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the lab binary runs")
}

pub fn lab(args: &[&str]) -> Output {
    lab_with::<&str, &str>(args, &[])
}

/// `lab <args>` started from the repository root, quiet, its output dropped: for tests that
/// kill it part way.
pub fn spawn_lab(args: &[&str]) -> Child {
    spawn_lab_with::<&str, &str>(args, &[])
}

/// [`spawn_lab`] with `env` added.
pub fn spawn_lab_with<K: AsRef<OsStr>, V: AsRef<OsStr>>(args: &[&str], env: &[(K, V)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lab"));
    command
        .args(args)
        .env("LAB_QUIET", "1")
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().expect("the lab binary starts")
}

/// `lab <args>` from `dir`, quiet; waits for it. For tests of what `lab` reads relative to
/// where it runs (`strategies/`, experiment paths).
pub fn lab_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(args)
        .current_dir(dir)
        .env("LAB_QUIET", "1")
        .output()
        .expect("the lab binary runs")
}

/// `lab <args>` from `dir`, which must fail; panics with what it printed when it succeeds.
pub fn lab_in_fails(dir: &Path, args: &[&str]) -> Output {
    let out = lab_in(dir, args);
    assert!(
        !out.status.success(),
        "lab {} succeeded; it should have refused:\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "lab failed:\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}
