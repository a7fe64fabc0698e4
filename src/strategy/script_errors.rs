//! Turning a Rhai error into one message a script author can act on: the innermost error with
//! its file:line:column, the chain of script functions it happened in, and advice for the
//! common mistakes (an unknown function, a sandbox limit).
use crate::strategy::engine::{imported_modules, lib_dir_for, read_script, Script};
use crate::strategy::sandbox::{
    DataTooLarge, LimitHit, SandboxLimits, BACKSTOP_OPERATIONS, MAP_SIZE,
};
use crate::strategy::silent_loops::loops_reading_no_variable;
use crate::strategy::{access_hints, fn_hints};
use rhai::{ASTNode, Engine, EvalAltResult, Expr, Position, Stmt, AST};
use std::path::Path;

/// `FILE:LINE:COLUMN`, or as much of it as is known.
pub fn location(path: &Path, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", path.display()),
        (Some(l), None) => format!("{}:{l}", path.display()),
        _ => path.display().to_string(),
    }
}

/// Imported modules are named by their import path (`"common"`); show the file.
fn module_file(script: &Path, src: &str) -> String {
    if Path::new(src).is_file() {
        return src.to_string();
    }
    lib_dir_for(script)
        .join(format!("{src}.rhai"))
        .display()
        .to_string()
}

/// Turn a Rhai error into one message: the innermost error with its file:line:column, then
/// the chain of script functions it happened in. `engine` is the one that ran the script (its
/// registered functions are the "did you mean" candidates).
pub fn describe_error(
    engine: &Engine,
    script: &Script,
    err: &EvalAltResult,
    limits: &SandboxLimits,
) -> String {
    let mut frames = Vec::new();
    let mut e = err;
    let mut file = script.path.display().to_string();
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(f, src, inner, pos) => {
                // A closure's name is Rhai's hash of it (`anon$5bc7...`), which says nothing.
                let what = if f.starts_with("anon$") {
                    "a closure".to_string()
                } else {
                    format!("fn {f}")
                };
                frames.push(format!(
                    "in {what} called at {}",
                    location(Path::new(&file), *pos)
                ));
                if !src.is_empty() {
                    file = module_file(&script.path, src);
                }
                e = inner;
            }
            EvalAltResult::ErrorInModule(m, inner, pos) => {
                frames.push(format!(
                    "in module {m:?} imported at {}",
                    location(Path::new(&file), *pos)
                ));
                // What went wrong loading it (a syntax error, a throw at its top level) stands
                // at a line of the module's file.
                file = module_file(&script.path, m);
                e = inner;
            }
            _ => break,
        }
    }
    let at = location(Path::new(&file), e.position());
    let mut msg = match e {
        EvalAltResult::ErrorRuntime(d, _) if d.is::<LimitHit>() => {
            limit_message(script, d.clone_cast::<LimitHit>(), &at, limits)
        }
        // Rhai's own limit errors (the backstop of `sandbox::watch_limits`) carry no position.
        EvalAltResult::ErrorTooManyOperations(pos) => limit_message(
            script,
            LimitHit::Operations,
            &silent_loop_location(engine, script, &at, !pos.is_none()),
            limits,
        ),
        EvalAltResult::ErrorStackOverflow(_) => {
            limit_message(script, LimitHit::CallLevels, &at, limits)
        }
        EvalAltResult::ErrorDataTooLarge(what, pos) => {
            let at = match script_function_called_at(&script.ast, *pos) {
                Some(helper) => format!(
                    "{at}, inside fn {helper} called there (Rhai keeps no line within a \
                     function for this limit: the value grew in {helper} or a function it calls)"
                ),
                None => at,
            };
            data_limit_message(script, what, &at, limits)
        }
        EvalAltResult::ErrorRuntime(d, _) if d.is::<DataTooLarge>() => {
            data_limit_message(script, &d.clone_cast::<DataTooLarge>().0, &at, limits)
        }
        EvalAltResult::ErrorRuntime(d, _) => {
            format!("strategy {} failed at {at}: {d}", script.name)
        }
        EvalAltResult::ErrorFunctionNotFound(signature, _) => format!(
            "strategy {} failed at {at}: Function not found: {}{}",
            script.name,
            signature.replace("&str | ImmutableString | String", "string"),
            fn_hints::advice(engine, &script.ast, signature)
        ),
        EvalAltResult::ErrorDotExpr(message, _) => format!(
            "strategy {} failed at {at}: {message}{}",
            script.name,
            access_hints::property_advice(engine, &script.ast, message)
        ),
        EvalAltResult::ErrorDataRace(..) => format!(
            "strategy {} failed at {at}: a closure used a variable it captured while that \
             variable was in use, as a closure calling itself through the variable holding it \
             does: write a named `fn` for recursion, or pass the value as an argument",
            script.name
        ),
        EvalAltResult::ErrorFor(_) => format!(
            "strategy {} failed at {at}: `for x in ...` takes an array, a range (`0..n`) or a \
             string; for a FloatVec or IntVec `v`, loop over `v.to_array()` or over its \
             positions `0..v.len()` (or better, use its vector methods)",
            script.name
        ),
        EvalAltResult::ErrorIndexingType(indexed, _) => format!(
            "strategy {} failed at {at}: Indexer unavailable: {indexed}{}",
            script.name,
            access_hints::index_advice(indexed)
        ),
        other => {
            let text = other.to_string();
            let suffix = format!(" ({})", other.position());
            let what = text.strip_suffix(&suffix).unwrap_or(&text);
            format!("strategy {} failed at {at}: {what}", script.name)
        }
    };
    for (frame, times) in collapse_repeats(frames.iter().rev()) {
        msg.push_str(&format!("\n  {frame}"));
        if times > 1 {
            msg.push_str(&format!(" ({times} times)"));
        }
    }
    msg
}

/// Where the script ran out of operations without reading a variable: the loops of the script
/// and of the `lib/` modules it imports that read none. `fallback` is kept when there is no such
/// loop (a loop whose reads sit in a branch it never takes, say): Rhai's position, `positioned`
/// when it has a line (a statement of select's body, or its call of the function that spun).
fn silent_loop_location(
    engine: &Engine,
    script: &Script,
    fallback: &str,
    positioned: bool,
) -> String {
    let mut sites: Vec<String> = loops_reading_no_variable(&script.ast)
        .into_iter()
        .map(|pos| location(&script.path, pos))
        .collect();
    let lib = lib_dir_for(&script.path);
    let text = read_script(&script.path).unwrap_or_default();
    for name in imported_modules(&text, &lib) {
        let file = lib.join(format!("{name}.rhai"));
        let Ok(ast) = engine.compile_file(file.clone()) else {
            continue;
        };
        sites.extend(
            loops_reading_no_variable(&ast)
                .into_iter()
                .map(|pos| location(&file, pos)),
        );
    }
    match sites.as_slice() {
        [] if positioned => format!(
            "{fallback} (there or in a function called there: its last \
             {BACKSTOP_OPERATIONS} operations read no variable)"
        ),
        [] => format!(
            "{fallback} (its last {BACKSTOP_OPERATIONS} operations read no variable, so the line \
             is unknown)"
        ),
        [one] => format!("{one} (a loop that reads no variable)"),
        many => format!(
            "one of the loops that read no variable ({})",
            many.join(", ")
        ),
    }
}

/// The script or `lib/` function whose call stands at `pos` (`grow`, `t::fill`), if any.
///
/// Rhai's own data-size errors leave every script function with the position of its call (see
/// select_call.rs), so one raised in a helper stands at the helper's call in `select`'s body:
/// the message can at least say the limit was hit inside it.
fn script_function_called_at(ast: &AST, pos: Position) -> Option<String> {
    if pos.is_none() {
        return None;
    }
    let own: Vec<String> = ast.iter_functions().map(|f| f.name.to_string()).collect();
    let mut found = None;
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, at) | Expr::MethodCall(call, at)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, at)))
                if *at == pos =>
            {
                call
            }
            _ => return true,
        };
        if !call.namespace.is_empty() {
            found = Some(format!("{}::{}", call.namespace, call.name));
        } else if own.iter().any(|f| *f == call.name.as_str()) {
            found = Some(call.name.to_string());
        }
        found.is_none()
    });
    found
}

/// Runaway recursion gives one identical frame per level: show each run of them once.
fn collapse_repeats<'a>(frames: impl Iterator<Item = &'a String>) -> Vec<(&'a String, usize)> {
    let mut out: Vec<(&String, usize)> = Vec::new();
    for f in frames {
        match out.last_mut() {
            Some((last, n)) if *last == f => *n += 1,
            _ => out.push((f, 1)),
        }
    }
    out
}

/// How to raise a sandbox limit: its key in the experiment file.
fn raise_advice(key: &str) -> String {
    format!(
        "set `{key}` under `[sandbox]` in the experiment file to raise the limit (`lab check` \
         of a lone script uses the defaults)"
    )
}

/// A string, array or map past its sandbox limit (`what` in Rhai's words, "Length of string"
/// and so on): the limit, its value, how to keep the data small, and the key to raise.
fn data_limit_message(script: &Script, what: &str, at: &str, limits: &SandboxLimits) -> String {
    let keep_texts = "keep texts with the host: give the view (ctx.pool, v.take(..)) or the \
                      generations to the ctx.* functions that take one (ctx.embed, ctx.stemmed, \
                      ctx.score, ctx.bertscore_precision, ctx.novel_content_fraction, \
                      ctx.novel_bigram_fraction) instead of their texts as arrays";
    let (key, value, unit, advice) = match what {
        "Length of string" => (
            "max_string_size",
            limits.max_string_size,
            "bytes",
            format!(
                "an array's strings count together, so the texts of a large pool from \
                 inputs(), outputs(), texts() or samples() can pass it: {keep_texts}"
            ),
        ),
        MAP_SIZE => (
            "max_map_size",
            limits.max_map_size,
            "entries",
            "a map is measured when it is read, not as entries are added, so it passed the \
             limit at an insertion before this read (in a loop, on the previous pass); keep \
             per-item values in a FloatVec or IntVec rather than a map keyed by item"
                .to_string(),
        ),
        _ => (
            "max_array_size",
            limits.max_array_size,
            "elements",
            format!(
                "keep numbers in FloatVec and IntVec (to_array() copies them into an array) \
                 and {keep_texts}"
            ),
        ),
    };
    format!(
        "strategy {} failed at {at}: {what} too large (over the sandbox limit {key} = {value} \
         {unit}); {advice}; or {}",
        script.name,
        raise_advice(key)
    )
}

fn limit_message(script: &Script, hit: LimitHit, at: &str, limits: &SandboxLimits) -> String {
    match hit {
        LimitHit::Operations => format!(
            "strategy {} exceeded {} operations (sandbox max_operations) at {at}: loop over \
             vectors with native methods (topk, take, ...) instead of element by element, or {}",
            script.name,
            limits.max_operations,
            raise_advice("max_operations")
        ),
        LimitHit::CallLevels => format!(
            "strategy {} exceeded {} nested calls (sandbox max_call_levels) at {at}: does a \
             recursion lack its base case? If the depth is needed, {}",
            script.name,
            limits.max_call_levels,
            raise_advice("max_call_levels")
        ),
    }
}
