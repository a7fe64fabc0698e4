//! `lab run` started from the launch form: in the background, its output appended to the
//! experiment's run log, at most one run per experiment name from this server; and how such a
//! run stands.
use crate::web::App;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// This program's file. When it was replaced while the server ran (an upgrade, a rebuild),
/// Linux names the old one "… (deleted)": the new file at the same path is used instead.
fn lab_executable() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the lab executable to run")?;
    if exe.exists() {
        return Ok(exe);
    }
    let text = exe.to_string_lossy();
    match text.strip_suffix(" (deleted)") {
        Some(path) if Path::new(path).exists() => Ok(PathBuf::from(path)),
        _ => anyhow::bail!(
            "the lab executable {} is gone; restart `lab serve`",
            exe.display()
        ),
    }
}

/// Start `lab run FILE` in the background, its output in `<results>/<name>/run.log`; false
/// (and nothing started) when a run of `name` started here is still running. The check and
/// the start happen under one lock: two launches at once (a double click) start one run,
/// not a second that fails on the first one's cells and hides it from the pages.
pub fn start_run(app: &App, name: &str, file: &Path) -> Result<bool> {
    let mut runs = app.runs.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(child) = runs.get_mut(name) {
        if matches!(child.try_wait(), Ok(None)) {
            return Ok(false);
        }
    }
    let dir = app.results.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log_path: PathBuf = dir.join("run.log");
    // Appended, not truncated: relaunching to resume a run that failed must not wipe the
    // error that explains the failure.
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    use std::io::Write;
    writeln!(log, "{}", log_header(file, chrono::Utc::now()))
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let log_err = log.try_clone().context("cannot share the run log")?;
    let exe = lab_executable()?;
    let child = std::process::Command::new(exe)
        .arg("run")
        .arg(file)
        .env("LAB_QUIET", "1")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .with_context(|| format!("cannot start `lab run {}`", file.display()))?;
    runs.insert(name.to_string(), child);
    Ok(true)
}

/// The line that opens each launch's part of the run log: a relaunch appends to it, so the
/// researcher reads where each run began, and when, as a date (it was seconds since 1970).
fn log_header(file: &Path, started: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "== lab run {} (started {})",
        file.display(),
        started.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// The state of a run started from this server: running, or how it ended.
pub fn run_state(app: &App, name: &str) -> Option<String> {
    let mut runs = app.runs.lock().unwrap_or_else(|p| p.into_inner());
    let child = runs.get_mut(name)?;
    Some(match child.try_wait() {
        Ok(None) => format!("running (pid {})", child.id()),
        Ok(Some(status)) if status.success() => "finished".into(),
        // A signal came from outside the run (a kill, the system out of memory): the run
        // wrote nothing about it, so its log has no reason to show.
        Ok(Some(status)) => match std::os::unix::process::ExitStatusExt::signal(&status) {
            Some(_) => format!(
                "stopped from outside ({status}): the run log ends where it stopped and does \
                 not say why (a kill, or the system, e.g. out of memory)"
            ),
            None => format!("failed ({status}); see the log"),
        },
        Err(e) => format!("unknown ({e})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run killed from outside showed "failed (signal: 15 (SIGTERM)); see the log", a log
    /// that says nothing of it.
    #[test]
    fn each_launch_in_the_log_starts_with_a_readable_date() {
        let started = chrono::DateTime::from_timestamp(1_795_993_339, 0).unwrap();
        assert_eq!(
            log_header(Path::new("experiments/web-x.toml"), started),
            "== lab run experiments/web-x.toml (started 2026-11-29 23:02:19 UTC)"
        );
    }

    #[test]
    fn a_run_killed_from_outside_is_not_sent_to_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::new(dir.path(), dir.path(), None).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        app.runs.lock().unwrap().insert("exp".into(), child);
        let state = run_state(&app, "exp").unwrap();
        assert!(
            state.starts_with("stopped from outside (signal: 9") && !state.contains("see the log"),
            "{state}"
        );
        let mut failed = std::process::Command::new("false").spawn().unwrap();
        failed.wait().unwrap();
        app.runs.lock().unwrap().insert("bad".into(), failed);
        assert_eq!(
            run_state(&app, "bad").unwrap(),
            "failed (exit status: 1); see the log"
        );
    }
}
