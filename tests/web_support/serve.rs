//! Start `lab serve` (the built binary) on a free port with temporary folders; stopped on drop.
#![allow(dead_code)]
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `start` again while it fails with "text file busy" (ETXTBSY). Tests run in threads:
/// while one copies its binary, another's fork can briefly inherit the open copy (until its
/// exec closes it), and executing a file open for writing fails. It clears within
/// milliseconds.
fn retry_busy<T>(start: impl Fn() -> std::io::Result<T>) -> std::io::Result<T> {
    const ETXTBSY: i32 = 26;
    let mut tries = 0;
    loop {
        match start() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

pub struct Serve {
    child: Child,
    pub url: String,
    /// The token printed at start, when bound beyond loopback.
    pub token: Option<String>,
    /// The temporary folder holding `results/`, `experiments/` and anything a test adds.
    pub root: PathBuf,
    pub results: PathBuf,
    pub experiments: PathBuf,
    printed: Arc<Mutex<Vec<String>>>,
    /// Removed after the server stops (fields drop after `drop` runs).
    _temp: Option<tempfile::TempDir>,
}

impl Serve {
    /// A server on loopback in a fresh temporary folder, removed when it is dropped.
    pub fn loopback() -> Self {
        Self::in_temp_dir("127.0.0.1")
    }

    /// A server on every interface (so it needs its token) in a fresh temporary folder.
    pub fn every_interface() -> Self {
        Self::in_temp_dir("0.0.0.0")
    }

    fn in_temp_dir(host: &str) -> Self {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let mut serve = Self::start(temp.path(), host).unwrap_or_else(|e| panic!("{e:#}"));
        serve._temp = Some(temp);
        serve
    }

    /// The page of cell `exp/strategy/seed-n`.
    pub fn cell_url(&self, cell: &str) -> String {
        format!("{}/exp/{cell}", self.url)
    }

    /// The annotation page of cell `exp/strategy/seed-n`, where its labels are posted.
    pub fn annotate_url(&self, cell: &str) -> String {
        format!("{}/annotate", self.cell_url(cell))
    }

    /// Serve `root/results`, writing experiments to `root/experiments`, from the repository
    /// root (so `data/` and `strategies/` resolve as for a user).
    pub fn start(root: &Path, host: &str) -> Result<Self> {
        let port = super::webdriver::free_port();
        let results = root.join("results");
        let experiments = root.join("experiments");
        // A private copy: runs launched from the form execute this same file, even if the
        // target directory's binary is rebuilt meanwhile.
        let exe = root.join("lab");
        std::fs::copy(env!("CARGO_BIN_EXE_lab"), &exe).context("cannot copy the lab binary")?;
        // A shared target directory may hold another checkout's `lab`: say so plainly.
        let version = retry_busy(|| Command::new(&exe).arg("--version").output())?;
        let version = String::from_utf8_lossy(&version.stdout);
        if version.trim() != format!("lab {}", env!("CARGO_PKG_VERSION")) {
            bail!(
                "{} is {:?}, not this checkout's lab {}: rebuild and rerun",
                env!("CARGO_BIN_EXE_lab"),
                version.trim(),
                env!("CARGO_PKG_VERSION")
            );
        }
        let mut child = retry_busy(|| {
            Command::new(&exe)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .args(["serve", "--results"])
                .arg(&results)
                .arg("--experiments")
                .arg(&experiments)
                .args(["--bind", &format!("{host}:{port}")])
                .env("LAB_QUIET", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
        })
        .context("cannot start lab serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().context("lab serve printed nothing")??;
        // Keep reading what the server prints, so it never writes into a closed pipe.
        let printed = Arc::new(Mutex::new(vec![first.clone()]));
        let sink = Arc::clone(&printed);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let token = first
            .split_once("?token=")
            .map(|(_, t)| t.trim().to_string());
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let probe = match &token {
            Some(t) => format!("{url}/?token={t}"),
            None => format!("{url}/"),
        };
        while ureq::get(&probe).call().is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("lab serve did not answer on {url} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Serve {
            child,
            url,
            token,
            root: root.to_path_buf(),
            results,
            experiments,
            printed,
            _temp: None,
        })
    }

    /// What the server printed on its standard output so far, line by line.
    pub fn printed(&self) -> Vec<String> {
        self.printed.lock().unwrap().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
