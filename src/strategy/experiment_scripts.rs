//! The checks an experiment's strategy scripts get before anything is loaded (`lab run`,
//! `lab bench`, `lab check`): each script exists and compiles, and its `[strategy.params]`
//! are all read by it, with values of the types its defaults have.
use crate::config::Experiment;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// Scripts resolve against `base_dir` (the directory `lab` runs in; `.` leaves paths as
/// written). Every problem of every strategy (a missing script, one that does not compile, a
/// params mismatch) is reported together.
pub fn check_experiment_scripts(exp: &Experiment, file: &Path, base_dir: &Path) -> Result<()> {
    let limits = super::SandboxLimits::default();
    let mut problems = Vec::new();
    for (i, s) in exp.strategies.iter().enumerate() {
        let script = resolve(base_dir, &s.script_path());
        if !script.is_file() {
            problems.push(missing_script_problem(exp, i, &script, base_dir));
            continue;
        }
        let engine = super::engine::build_engine(&limits, &super::engine::lib_dir_for(&script));
        if let Err(e) = super::engine::compile(&engine, &script) {
            problems.push(format!(
                "`strategy[{i}]` `{}` in {}: {e:#}",
                s.name,
                file.display()
            ));
            continue;
        }
        let read = match super::params_read::params_read(&engine, &script) {
            Ok(read) => read,
            Err(e) => {
                problems.push(format!("{e:#}"));
                continue;
            }
        };
        for (key, message) in super::params_read::param_problems(&read, &s.params) {
            let at = format!("strategy[{i}].params.{key}");
            let place = crate::config::diagnose::location(exp.source.as_ref(), &at);
            problems.push(format!(
                "`{at}` in {place} (script {}): {message}",
                script.display()
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// A script that is not there: the line of its name, the nearest script in strategies/ when
/// the name was mistyped, and where lab looked.
pub(crate) fn missing_script_problem(
    exp: &Experiment,
    i: usize,
    script: &Path,
    base_dir: &Path,
) -> String {
    let s = &exp.strategies[i];
    let source = exp.source.as_ref();
    if s.script.is_some() {
        let at = format!("strategy[{i}].script");
        let place = crate::config::diagnose::location(source, &at);
        return format!(
            "`{at}` in {place}: script {} does not exist; set `script` to the path of a .rhai \
             file",
            script.display()
        );
    }
    let at = format!("strategy[{i}].name");
    let place = crate::config::diagnose::location(source, &at);
    let folder = resolve(base_dir, Path::new("strategies"));
    if !folder.is_dir() {
        return format!(
            "`{at}` `{}` in {place}: script {} does not exist and there is no strategies/ \
             folder here; run lab from the folder that holds strategies/, or set `script` in \
             its [[strategy]] table",
            s.name,
            script.display()
        );
    }
    let names = crate::runner::select::script_names(&folder);
    let hint = crate::config::diagnose::did_you_mean(&s.name, &names);
    format!(
        "`{at}` `{}` in {place}: script {} does not exist; {hint}name one of {} (see `lab \
         strategies`), or set `script` in its [[strategy]] table",
        s.name,
        script.display(),
        names.join(", ")
    )
}

fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if base_dir == Path::new(".") {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}
