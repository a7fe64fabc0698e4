//! What a cell's results depend on in its strategy script: the script's text and the `lib/`
//! modules it imports (a fingerprint kept in state.json, so an edited script is not resumed
//! as if nothing changed), and whether it plans from the stopping criteria (an `ed` script
//! chooses the whole budget at once; `ctx.planned_iterations` is read from them), which
//! makes extending a finished cell differ from running it fresh.
use crate::config::{Experiment, StrategyConfig};
use anyhow::Result;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The strategy's script, refused with `lab check`'s advice when it is gone. Every script was
/// checked before the first cell, but a run of many cells lasts hours, and a script can be
/// moved or deleted before its cells are reached.
pub fn script_still_there(exp: &Experiment, strategy: &StrategyConfig) -> Result<PathBuf> {
    let script = strategy.script_path();
    if script.is_file() {
        return Ok(script);
    }
    let problem = match exp
        .strategies
        .iter()
        .position(|s| s.key() == strategy.key())
    {
        Some(i) => crate::strategy::experiment_scripts::missing_script_problem(
            exp,
            i,
            &script,
            Path::new("."),
        ),
        None => format!(
            "strategy `{}`: script {} does not exist",
            strategy.key(),
            script.display()
        ),
    };
    anyhow::bail!(
        "{problem}; it was there when this run started, so it was moved or deleted since: \
         restore it and run the same command again (the cells already run are kept)"
    )
}

/// sha256 over the script and, recursively, the `lib/` modules it imports (in name order).
pub fn script_fingerprint(script: &Path) -> Result<String> {
    let text = crate::strategy::engine::read_script(script)?;
    let lib = crate::strategy::engine::lib_dir_for(script);
    let modules = crate::strategy::engine::imported_modules(&text, &lib);
    let mut hash = Sha256::new();
    hash.update(text.as_bytes());
    for name in &modules {
        // A module that does not exist fails the run itself, with the script's line.
        if let Ok(module) = std::fs::read(lib.join(format!("{name}.rhai"))) {
            hash.update(name.as_bytes());
            hash.update(&module);
        }
    }
    Ok(hex::encode(hash.finalize()))
}

/// Whether the script's selections depend on the stopping criteria: an `ed` script, or one
/// that (itself or through a `lib/` module it imports) reads `planned_iterations`.
pub fn plans_from_stopping(script: &Path, kind: &str) -> bool {
    if kind == "ed" {
        return true;
    }
    let Ok(text) = std::fs::read_to_string(script) else {
        return false;
    };
    let reads = |t: &str| t.contains("planned_iterations");
    let lib = crate::strategy::engine::lib_dir_for(script);
    reads(&text)
        || crate::strategy::engine::imported_modules(&text, &lib)
            .iter()
            .any(|name| {
                std::fs::read_to_string(lib.join(format!("{name}.rhai"))).is_ok_and(|m| reads(&m))
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `lab run` meets when a script is deleted after the run's checks: the key and line
    /// that name it, and what to do.
    #[test]
    fn a_script_gone_since_the_run_started_is_named_with_its_line_and_advice() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("mine.rhai");
        let file = dir.path().join("exp.toml");
        let text = format!(
            "[data]\npath = \"data\"\n\n[[strategy]]\nname = \"random\"\n\n[[strategy]]\n\
             script = \"{}\"\n",
            script.display()
        );
        let exp = crate::config::parse_experiment(&text, &file).unwrap();
        std::fs::write(&script, "fn select(ctx, k) { [] }").unwrap();
        assert_eq!(
            script_still_there(&exp, &exp.strategies[1]).unwrap(),
            script
        );
        std::fs::remove_file(&script).unwrap();
        let err = script_still_there(&exp, &exp.strategies[1])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "`strategy[1].script` in {} line 8",
                file.display()
            )) && err.contains(&format!("script {} does not exist", script.display()))
                && err.contains("restore it and run the same command again"),
            "{err}"
        );
    }

    #[test]
    fn the_fingerprint_follows_the_script_and_the_modules_it_imports_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        let script = dir.path().join("s.rhai");
        let write = |path: &str, text: &str| std::fs::write(dir.path().join(path), text).unwrap();
        write(
            "s.rhai",
            "const KIND = \"al\";\nimport \"common\" as c;\nfn select(ctx, k) { 1 }",
        );
        write("lib/common.rhai", "import \"deeper\" as d;\nfn f() { 1 }");
        write("lib/deeper.rhai", "fn g() { 2 }");
        write("lib/unrelated.rhai", "fn h() { 3 }");
        let first = script_fingerprint(&script).unwrap();
        assert_eq!(first, script_fingerprint(&script).unwrap());
        write("lib/unrelated.rhai", "fn h() { 4 }");
        assert_eq!(first, script_fingerprint(&script).unwrap(), "not imported");
        write("lib/deeper.rhai", "fn g() { 5 }");
        let deeper = script_fingerprint(&script).unwrap();
        assert_ne!(first, deeper, "imported by an imported module");
        write(
            "s.rhai",
            "const KIND = \"al\";\nimport \"common\" as c;\nfn select(ctx, k) { 2 }",
        );
        assert_ne!(
            deeper,
            script_fingerprint(&script).unwrap(),
            "the script itself"
        );
    }

    #[test]
    fn ed_scripts_and_readers_of_planned_iterations_plan_from_the_stopping_criteria() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s.rhai");
        std::fs::write(&script, "fn select(ctx, k) { ctx.iteration }").unwrap();
        assert!(!plans_from_stopping(&script, "al"));
        assert!(plans_from_stopping(&script, "ed"));
        std::fs::write(&script, "fn select(ctx, k) { ctx.planned_iterations }").unwrap();
        assert!(plans_from_stopping(&script, "al"));
        // Read in a module the script imports counts too.
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(
            dir.path().join("lib/schedule.rhai"),
            "fn rounds(ctx) { ctx.planned_iterations }",
        )
        .unwrap();
        std::fs::write(
            &script,
            "import \"schedule\" as s;\nfn select(ctx, k) { s::rounds(ctx) }",
        )
        .unwrap();
        assert!(plans_from_stopping(&script, "al"));
    }
}
