//! Calls a script's `select(ctx, k)` so that an error raised in it keeps its line.
//!
//! Rhai passes its "system" errors (a data-size limit: a string, array or map grown past
//! `max_string_size`, `max_array_size` or `max_map_size`; its own operation and call-depth
//! limits) out of a script function unwrapped, and each function they leave gives them the
//! position of its call. `select`, called from Rust, has none, so under `Engine::call_fn` such an
//! error lost its line altogether. Run as top-level statements after the script's own, select's
//! body keeps the position of an error raised in it, or of its call that led to one raised
//! deeper (in a helper or a `lib/` module).
use crate::strategy::map_watch;
use rhai::{ASTNode, Dynamic, Engine, EvalAltResult, Position, Scope, ScriptFuncDef, Stmt, AST};

/// The scope names the arguments arrive under; the body sees them under its parameters' names,
/// bound after the script's top-level statements, so a top-level `let` of the same name cannot
/// shadow them.
const ARG_NAMES: [&str; 2] = ["__select_ctx_argument", "__select_k_argument"];

/// `select(ctx, k)`'s value. A script whose body cannot be told apart from its closures' (no
/// shipped script: see the tests) is called as a function, as before, and its system errors
/// keep no line.
pub fn call_select(
    engine: &Engine,
    ast: &AST,
    ctx: Dynamic,
    k: Dynamic,
) -> Result<Dynamic, Box<EvalAltResult>> {
    map_watch::watching(engine, ast, || match select_as_statements(engine, ast) {
        Some(program) => {
            let mut scope = Scope::new();
            scope.push_dynamic(ARG_NAMES[0], ctx);
            scope.push_dynamic(ARG_NAMES[1], k);
            engine.eval_ast_with_scope::<Dynamic>(&mut scope, &program)
        }
        None => engine.call_fn::<Dynamic>(&mut Scope::new(), ast, "select", (ctx, k)),
    })
}

/// The script's top-level statements, then its parameters bound to the arguments, then
/// select's body, with the script's functions and source.
pub fn select_as_statements(engine: &Engine, ast: &AST) -> Option<AST> {
    let select = ast
        .iter_fn_def()
        .find(|f| f.name == "select" && f.params.len() == 2)?;
    let body = body_statements(ast, select)?;
    let mut arg_scope = Scope::new();
    for name in ARG_NAMES {
        arg_scope.push(name, ());
    }
    let binding: String = select
        .params
        .iter()
        .zip(ARG_NAMES)
        .map(|(param, arg)| format!("let {param} = {arg};\n"))
        .collect();
    let binding = engine.compile_with_scope(&arg_scope, binding).ok()?;
    let statements = ast
        .statements()
        .iter()
        .chain(binding.statements())
        .cloned()
        .chain(body);
    let mut program = AST::new(statements, ast.shared_lib().clone());
    if let Some(source) = ast.source() {
        program.set_source(source);
    }
    Some(program)
}

/// `(line, column)`, for comparing positions; `None` for `Position::NONE`.
fn at(p: Position) -> Option<(usize, usize)> {
    Some((p.line()?, p.position().unwrap_or(0)))
}

/// Does a top-level statement of some function's body, at `p`, belong to the function whose
/// body is `f`? A block body spans its braces; a closure's expression body has no end, and its
/// one statement stands at its start.
fn holds(f: &ScriptFuncDef, p: (usize, usize)) -> bool {
    match (at(f.body.start_position()), at(f.body.end_position())) {
        (Some(start), Some(end)) => start <= p && p <= end,
        (Some(start), None) => start == p,
        _ => false,
    }
}

/// The top-level statements of `select`'s body, in order. `AST::walk` visits every function
/// body's statements at depth one, without saying whose: a statement is select's when it
/// stands within select's braces and in no other function (the closures written inside
/// select). `None` when any statement cannot be placed.
fn body_statements(ast: &AST, select: &ScriptFuncDef) -> Option<Vec<Stmt>> {
    let top: Vec<*const Stmt> = ast.statements().iter().map(|s| s as *const Stmt).collect();
    let others: Vec<&ScriptFuncDef> = ast
        .iter_fn_def()
        .map(|f| f.as_ref())
        .filter(|f| !std::ptr::eq(*f, select))
        .collect();
    let mut body = Vec::new();
    let mut placed = true;
    ast.walk(&mut |path: &[ASTNode]| {
        let [ASTNode::Stmt(s)] = path else {
            return true;
        };
        if top.contains(&(*s as *const Stmt)) {
            return true;
        }
        let Some(p) = at(s.position()) else {
            placed = false;
            return false;
        };
        let in_other = others.iter().any(|f| holds(f, p));
        if holds(select, p) && !in_other {
            body.push((*s).clone());
        } else if !in_other {
            placed = false;
            return false;
        }
        true
    });
    placed.then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut e = Engine::new();
        e.set_strict_variables(true);
        e
    }

    fn both_ways(script: &str, k: i64) -> (Dynamic, Dynamic) {
        let e = engine();
        let ast = e.compile(script).unwrap();
        assert!(select_as_statements(&e, &ast).is_some(), "{script}");
        let as_statements = call_select(&e, &ast, Dynamic::from(10_i64), Dynamic::from(k));
        let as_function = e
            .call_fn::<Dynamic>(&mut Scope::new(), &ast, "select", (10_i64, k))
            .unwrap();
        (as_statements.unwrap(), as_function)
    }

    #[test]
    fn the_body_run_as_statements_answers_as_the_function_does() {
        let scripts = [
            // Closures of both kinds inside select, a helper outside it, a top-level `let k`
            // that must not shadow the parameter.
            "const K = 1;\nlet k = 99;\nfn helper(x) { x + 1 }\nfn select(ctx, k) {\n  \
             let a = [1, 2, k].map(|x| x + 1);\n  let b = a.filter(|y| {\n    y > 2\n  });\n  \
             helper(b.len()) + ctx\n}\n",
            // An early return and a trailing semicolon.
            "fn select(c, n) {\n  if n > 2 { return [n]; }\n  let x = [c];\n  x.len();\n}\n",
            "fn select(c, n) {\n  if n > 2 { return [n]; }\n  [c, n]\n}\n",
            // Nested closures, a closure capturing a local, an empty function elsewhere.
            "fn nothing() {}\nfn select(ctx, k) {\n  let m = 3;\n  let f = |x| [x].map(|y| y * m);\n  \
             f.call(k)\n}\n",
        ];
        for script in scripts {
            for k in [1, 5] {
                let (a, b) = both_ways(script, k);
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{script} k={k}");
            }
        }
    }

    #[test]
    fn every_shipped_script_runs_its_body_as_statements() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies");
        let limits = crate::strategy::SandboxLimits::default();
        let e = crate::strategy::engine::build_engine(&limits, &dir.join("lib"));
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "rhai") {
                let script = crate::strategy::engine::compile(&e, &path).unwrap();
                let program = select_as_statements(&e, &script.ast);
                assert!(program.is_some(), "{}", path.display());
            }
        }
    }
}
