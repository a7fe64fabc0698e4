//! Turning a Rhai error into one message a script author can act on: the innermost error with
//! its file:line:column, the chain of script functions it happened in, and advice for the
//! common mistakes (an unknown function, a sandbox limit).
use crate::strategy::engine::{lib_dir_for, Script};
use crate::strategy::fn_hints;
use crate::strategy::sandbox::SandboxLimits;
use rhai::{Engine, EvalAltResult, Position};
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
                frames.push(format!(
                    "in fn {f} called at {}",
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
                e = inner;
            }
            _ => break,
        }
    }
    let at = location(Path::new(&file), e.position());
    let mut msg = match e {
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "strategy {} exceeded {} operations (sandbox max_operations) in {at}; loop over \
             vectors with native methods (topk, take, ...) instead of element by element",
            script.name, limits.max_operations
        ),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "strategy {} exceeded {} nested calls (sandbox max_call_levels) at {at}",
            script.name, limits.max_call_levels
        ),
        EvalAltResult::ErrorRuntime(d, _) => {
            format!("strategy {} failed at {at}: {d}", script.name)
        }
        EvalAltResult::ErrorFunctionNotFound(signature, _) => format!(
            "strategy {} failed at {at}: Function not found: {signature}{}",
            script.name,
            fn_hints::advice(engine, &script.ast, signature)
        ),
        other => {
            let text = other.to_string();
            let suffix = format!(" ({})", other.position());
            let what = text.strip_suffix(&suffix).unwrap_or(&text);
            format!("strategy {} failed at {at}: {what}", script.name)
        }
    };
    for f in frames.iter().rev() {
        msg.push_str(&format!("\n  {f}"));
    }
    msg
}
