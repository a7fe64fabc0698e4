//! The PyTorch reference of `lab bench-host --compare` (benches/reference/harness.py) as a
//! child process: it loads the models once, then answers one JSON line per `round` or `peak`.
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::bench_host::{RoundResult, Workloads};

/// The reference harness as a child process: one JSON line per `round` command.
pub struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    _workload_file: tempfile::NamedTempFile,
}

impl Reference {
    pub fn start(python: &Path, harness: &Path, work: &Workloads) -> Result<Self> {
        if !python.exists() {
            bail!(
                "the reference Python {} does not exist; run `bash benches/reference/setup.sh` \
                 (it makes target/bench-venv) or pass --python",
                python.display()
            );
        }
        if !harness.exists() {
            bail!(
                "the reference harness {} does not exist; run from the repository root or pass --harness",
                harness.display()
            );
        }
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), serde_json::to_vec(work)?)?;
        let mut child = Command::new(python)
            .arg(harness)
            .arg(file.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", python.display()))?;
        let stdin = child.stdin.take().context("no stdin pipe to the harness")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout pipe")?);
        let mut reference = Self {
            child,
            stdin,
            stdout,
            _workload_file: file,
        };
        // The harness answers `ready` once models are loaded and warmed up.
        let line = reference.read_line()?;
        if line.trim() != "ready" {
            bail!(
                "the reference harness said `{}` instead of `ready`",
                line.trim()
            );
        }
        Ok(reference)
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            let status = self.child.wait()?;
            bail!("the reference harness exited ({status}); see its messages above");
        }
        Ok(line)
    }

    pub fn round(&mut self) -> Result<RoundResult> {
        writeln!(self.stdin, "round")?;
        self.stdin.flush()?;
        let line = self.read_line()?;
        serde_json::from_str(&line).context("the reference harness printed an unreadable result")
    }

    /// The reference's own large-gemm rate (`peak` command), in GFLOP/s.
    pub fn peak(&mut self) -> Result<f64> {
        #[derive(Deserialize)]
        struct Peak {
            peak_gflops: f64,
        }
        writeln!(self.stdin, "peak")?;
        self.stdin.flush()?;
        let line = self.read_line()?;
        let peak: Peak = serde_json::from_str(&line)
            .context("the reference harness printed an unreadable peak")?;
        Ok(peak.peak_gflops)
    }

    pub fn finish(mut self) -> Result<()> {
        writeln!(self.stdin, "quit")?;
        self.stdin.flush()?;
        self.child.wait()?;
        Ok(())
    }
}
