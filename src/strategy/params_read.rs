//! Which `[strategy.params]` a script reads, found in its syntax tree before anything runs, so
//! that a misspelt key (`lamda = 0.5`) or a value of the wrong type fails `lab run` at once
//! instead of being ignored (a typo) or failing after the first training round (a type).
//!
//! A read is a call `ctx.param("name", default)` (or `param(ctx, "name", default)`) anywhere
//! in the script or in a `lib/` module it imports, whichever branch it sits in. A name that is
//! not a string literal makes the set unknowable; the check is then skipped for that script.
use super::engine::{imported_modules, lib_dir_for};
use anyhow::{anyhow, Result};
use rhai::{ASTNode, Dynamic, Engine, Expr, FnCallExpr};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Params the runner itself reads from every strategy's table.
pub const RUNNER_PARAMS: &[&str] = &["initial"];

#[derive(Debug, Default)]
pub struct ParamsRead {
    /// Each name read, with the constant defaults passed for it (none when a default is an
    /// expression).
    pub names: BTreeMap<String, Vec<Dynamic>>,
    /// Some read names its param with an expression: `names` may be incomplete.
    pub dynamic: bool,
}

/// Params read by `script` and, recursively, the `lib/` modules it imports.
pub fn params_read(engine: &Engine, script: &Path) -> Result<ParamsRead> {
    let lib = lib_dir_for(script);
    let text = super::engine::read_script(script)?;
    let mut sources = vec![(script.to_path_buf(), text)];
    for name in imported_modules(&sources[0].1, &lib) {
        let file = lib.join(format!("{name}.rhai"));
        // A module that does not exist fails the run itself, with the script's line.
        if let Ok(text) = std::fs::read_to_string(&file) {
            sources.push((file, text));
        }
    }
    let mut out = ParamsRead::default();
    for (file, text) in &sources {
        let ast = engine
            .compile(text)
            .map_err(|e| anyhow!("{}: {e}", file.display()))?;
        ast.walk(&mut |path: &[ASTNode]| {
            if let Some(ASTNode::Expr(expr)) = path.last() {
                record(expr, &mut out);
            }
            true
        });
    }
    Ok(out)
}

fn record(expr: &Expr, out: &mut ParamsRead) {
    // `ctx.param(name, default)` is a method call whose arguments exclude `ctx`.
    let (call, first): (&FnCallExpr, usize) = match expr {
        Expr::MethodCall(call, _) if call.name == "param" && call.args.len() == 2 => (call, 0),
        Expr::FnCall(call, _) if call.name == "param" && call.args.len() == 3 => (call, 1),
        _ => return,
    };
    let Some(name) = string_constant(&call.args[first]) else {
        out.dynamic = true;
        return;
    };
    let defaults = out.names.entry(name).or_default();
    if let Some(default) = call.args[first + 1].get_literal_value(None) {
        defaults.push(default);
    }
}

fn string_constant(expr: &Expr) -> Option<String> {
    match expr {
        Expr::StringConstant(s, _) => Some(s.to_string()),
        Expr::DynamicConstant(d, _) if d.is_string() => d.clone().into_string().ok(),
        _ => None,
    }
}

/// Problems with a strategy's params: keys nobody reads (with the nearest read name) and
/// values whose type does not match a constant default. Each is `(key, message)`.
pub fn param_problems(read: &ParamsRead, params: &toml::Table) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (key, value) in params {
        if RUNNER_PARAMS.contains(&key.as_str()) {
            continue;
        }
        match read.names.get(key) {
            Some(defaults) => {
                if let Some(message) = defaults
                    .iter()
                    .find_map(|d| super::context::param_value(key, value, d).err())
                {
                    problems.push((key.clone(), message));
                }
            }
            None if read.dynamic => {}
            None => {
                let known: BTreeSet<&str> = read
                    .names
                    .keys()
                    .map(String::as_str)
                    .chain(RUNNER_PARAMS.iter().copied())
                    .collect();
                let known: Vec<&str> = known.into_iter().collect();
                let hint = crate::config::diagnose::did_you_mean(key, &known);
                problems.push((
                    key.clone(),
                    format!(
                        "the script never reads `{key}`, so it would be ignored; {hint}the params it \
                         reads are {} (rename or remove the key)",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::engine::build_engine;
    use crate::strategy::SandboxLimits;

    fn read_of(script: &str, lib: &[(&str, &str)]) -> ParamsRead {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        for (name, text) in lib {
            std::fs::write(dir.path().join(format!("lib/{name}.rhai")), text).unwrap();
        }
        let path = dir.path().join("s.rhai");
        std::fs::write(&path, script).unwrap();
        let engine = build_engine(&SandboxLimits::default(), &dir.path().join("lib"));
        params_read(&engine, &path).unwrap()
    }

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn reads_in_branches_functions_and_imported_modules_are_all_found() {
        let read = read_of(
            "const KIND = \"al\";\nimport \"common\" as c;\n\
             fn helper(ctx) { if ctx.k > 3 { ctx.param(\"lambda\", 0.5) } else { 0.0 } }\n\
             fn select(ctx, k) { let t = param(ctx, \"top\", 10); c::f(ctx) }",
            &[(
                "common",
                "import \"deeper\" as d;\nfn f(ctx) { ctx.param(\"embedding_model\", \"encoder\") }",
            ), ("deeper", "fn g(ctx) { ctx.param(\"levels\", 3) }")],
        );
        let names: Vec<&str> = read.names.keys().map(String::as_str).collect();
        assert_eq!(names, ["embedding_model", "lambda", "levels", "top"]);
        assert!(!read.dynamic);
        assert!(read.names["lambda"][0].is_float());
        assert!(read.names["top"][0].is_int());
    }

    #[test]
    fn a_misspelt_key_is_named_with_the_nearest_read_param() {
        let read = read_of(
            "const KIND = \"al\";\nfn select(ctx, k) { ctx.param(\"lambda\", 0.667) }",
            &[],
        );
        let problems = param_problems(&read, &table("lamda = 0.5\ninitial = \"random\""));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "lamda");
        assert!(
            problems[0].1.contains("did you mean `lambda`"),
            "{}",
            problems[0].1
        );
        assert!(
            problems[0].1.contains("are initial, lambda"),
            "{}",
            problems[0].1
        );
        assert!(
            param_problems(&read, &table("lambda = 1")).is_empty(),
            "int for float"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_before_the_run() {
        let read = read_of(
            "const KIND = \"al\";\nfn select(ctx, k) { ctx.param(\"clusters\", 8) }",
            &[],
        );
        let problems = param_problems(&read, &table("clusters = 2.5"));
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].1.contains("expected an integer"),
            "{}",
            problems[0].1
        );
        let problems = param_problems(&read, &table("clusters = \"8\""));
        assert!(
            problems[0]
                .1
                .contains("expected an integer like the default 8"),
            "{}",
            problems[0].1
        );
    }

    #[test]
    fn a_name_built_at_run_time_turns_the_unread_check_off() {
        let read = read_of(
            "const KIND = \"al\";\nfn select(ctx, k) { let n = \"w_\" + \"x\"; ctx.param(n, 1.0) }",
            &[],
        );
        assert!(read.dynamic);
        assert!(param_problems(&read, &table("anything = 1")).is_empty());
    }
}
