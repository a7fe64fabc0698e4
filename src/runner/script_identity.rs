//! What a cell's results depend on in its strategy script: the script's text and the `lib/`
//! modules it imports (a fingerprint kept in state.json, so an edited script is not resumed
//! as if nothing changed), and whether it plans from the stopping criteria (an `ed` script
//! chooses the whole budget at once; `ctx.planned_iterations` is read from them), which
//! makes extending a finished cell differ from running it fresh.
use anyhow::Result;
use sha2::{Digest, Sha256};
use std::path::Path;

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
