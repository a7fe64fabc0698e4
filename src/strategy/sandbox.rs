//! What a strategy script may do: no files, network or processes (the engine has none of those
//! functions), no `eval`, `import` only from `strategies/lib/`, and bounded work and data.
use crate::strategy::map_watch::watched_map_entries;
use rhai::module_resolvers::FileModuleResolver;
use rhai::{
    Array, Dynamic, Engine, EvalAltResult, Module, ModuleResolver, NativeCallContext, Position,
    Shared,
};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// Limits for one query step. The experiment file's `[sandbox]` table sets all but
/// `max_expr_depth` (keys of the same names; `crate::runner::sandbox_limits` copies them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxLimits {
    /// Script operations (each expression step counts one); native kernels count as one.
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    pub max_expr_depth: usize,
}

impl Default for SandboxLimits {
    /// The experiment file's `[sandbox]` defaults, so `lab check` on a lone script allows
    /// exactly what a run allows.
    fn default() -> Self {
        let c = crate::config::SandboxConfig::default();
        Self {
            max_operations: c.max_operations,
            max_call_levels: c.max_call_levels,
            max_string_size: c.max_string_size,
            max_array_size: c.max_array_size,
            max_map_size: c.max_map_size,
            max_expr_depth: 128,
        }
    }
}

/// Apply the limits and the restrictions to an engine. `lib_dir` is `strategies/lib`.
pub fn apply(engine: &mut Engine, limits: &SandboxLimits, lib_dir: &Path) {
    // Above the limits: the watchdog below stops the script at the limit itself.
    let backstop = if limits.max_operations == 0 {
        0
    } else {
        limits.max_operations.saturating_add(BACKSTOP_OPERATIONS)
    };
    engine
        .set_max_operations(backstop)
        .set_max_call_levels(limits.max_call_levels.saturating_add(1))
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
        .set_max_modules(32)
        .set_strict_variables(true);
    engine.disable_symbol("eval");
    watch_limits(engine, limits);
    engine.set_module_resolver(LibResolver::new(lib_dir));
    // print/debug would write to the host's stdout; strategies log through ctx.log.
    engine.on_print(|s| {
        if std::env::var_os("LAB_VERBOSE").is_some() {
            eprintln!("[strategy] {s}");
        }
    });
    engine.on_debug(|s, _, pos| {
        if std::env::var_os("LAB_VERBOSE").is_some() {
            eprintln!("[strategy {pos}] {s}");
        }
    });
}

/// Operations Rhai's own limit allows past `max_operations`. The watchdog stops a script at
/// its first variable read past the limit; reaching this many more means the script was in a
/// stretch that reads no variable (`while true {}`), and `silent_loops` can name the loop. A
/// script that catches the watchdog's error cannot go on for longer than this either.
pub const BACKSTOP_OPERATIONS: u64 = 10_000;

/// A sandbox limit a script ran into, carried in a runtime error (see `watch_limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitHit {
    Operations,
    CallLevels,
}

/// A host value past a data-size limit, in Rhai's words for it ("Length of string", "Size of
/// array/BLOB", "Size of object map"), carried in a runtime error (see `within_data_limits`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataTooLarge(pub String);

/// `value` if it is within the engine's data-size limits.
///
/// Rhai checks what a host function returns itself, but raises a "system" error, which keeps
/// only the position of the call in `select`'s body (see select_call.rs): one made in a helper
/// or a `lib/` module loses its own line and the chain of calls. The host functions that hand
/// the script texts or arrays check first and raise a runtime error instead, which Rhai gives
/// the call's position and wraps at every function it leaves.
pub fn within_data_limits(
    context: &NativeCallContext,
    value: Array,
) -> Result<Array, Box<EvalAltResult>> {
    let value = Dynamic::from_array(value);
    match context.engine().ensure_data_size_within_limits(&value) {
        Ok(()) => Ok(value.cast::<Array>()),
        Err(e) => match *e {
            EvalAltResult::ErrorDataTooLarge(what, _) => Err(EvalAltResult::ErrorRuntime(
                Dynamic::from(DataTooLarge(what)),
                Position::NONE,
            )
            .into()),
            other => Err(other.into()),
        },
    }
}

/// Stop a script at its operation and call-depth limits with an error that keeps its position.
///
/// Rhai's own limit errors are "system" errors: on their way out of every script function
/// they take the position of the call, so at best they keep the line in `select`'s body of the
/// call that led to them (see select_call.rs), not the line of the loop inside a helper.
/// A catchable runtime error raised on a variable access instead gets that variable's
/// position, and Rhai wraps it in `ErrorInFunctionCall` with the call site at every level, so
/// the message names the line and the chain of calls. Rhai's own limits stay above ours as the
/// backstop: for a loop that reads no variable (`while true {}`, see `BACKSTOP_OPERATIONS`),
/// and so that a script which catches the error cannot go on (the call limit is one above ours,
/// so its next call fails).
///
/// Maps a script fills by index are measured here too (see map_watch.rs).
fn watch_limits(engine: &mut Engine, limits: &SandboxLimits) {
    let (max_operations, max_call_levels) = (limits.max_operations, limits.max_call_levels);
    let max_map_size = limits.max_map_size;
    // Rhai flags `on_var` as volatile (its signature may change), not as going away.
    #[allow(deprecated)]
    engine.on_var(move |name, _index, context| {
        let hit = if max_operations > 0
            && context.global_runtime_state().num_operations() > max_operations
        {
            Some(LimitHit::Operations)
        } else if context.call_level() > max_call_levels {
            Some(LimitHit::CallLevels)
        } else {
            None
        };
        if let Some(hit) = hit {
            return Err(EvalAltResult::ErrorRuntime(Dynamic::from(hit), Position::NONE).into());
        }
        if max_map_size > 0 && watched_map_entries(context.scope(), name) > max_map_size {
            return Err(EvalAltResult::ErrorRuntime(
                Dynamic::from(DataTooLarge(MAP_SIZE.to_string())),
                Position::NONE,
            )
            .into());
        }
        Ok(None)
    });
}

/// Rhai's words for a map past `max_map_size`, which `script_errors` turns into advice.
pub const MAP_SIZE: &str = "Size of object map";

/// Resolves `import "name"` to `strategies/lib/name.rhai` and refuses any path that could
/// leave that folder.
pub struct LibResolver {
    dir: PathBuf,
    files: FileModuleResolver,
}

impl LibResolver {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            files: FileModuleResolver::new_with_path(dir),
        }
    }
}

impl LibResolver {
    /// Where `import "path"` looked and how to make it resolve: modules come only from `lib/`
    /// beside the script, so a script copied out of `strategies/` loses them.
    fn missing_module(&self, path: &str) -> String {
        let looked = format!(
            "import {path:?}: no module {path}.rhai in {} (modules are looked up only in lib/ \
             beside the script)",
            self.dir.display()
        );
        let fix = "copy strategies/lib next to the script, or keep the script in strategies/";
        let mut modules: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
                    .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        modules.sort();
        if !self.dir.is_dir() {
            format!("{looked}; that folder does not exist: {fix}")
        } else if modules.is_empty() {
            format!("{looked}; it holds no modules: {fix}")
        } else {
            let hint = crate::config::diagnose::did_you_mean(path, &modules);
            format!("{looked}; {hint}it holds {}; or {fix}", modules.join(", "))
        }
    }
}

impl ModuleResolver for LibResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let p = Path::new(path);
        let inside = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(EvalAltResult::ErrorRuntime(
                format!(
                    "import {path:?} refused: strategies may import only modules in {} by plain name",
                    self.dir.display()
                )
                .into(),
                pos,
            )
            .into());
        }
        let file = self.dir.join(format!("{path}.rhai"));
        if !file.is_file() {
            return Err(EvalAltResult::ErrorRuntime(self.missing_module(path).into(), pos).into());
        }
        // The source argument is ignored so relative imports always start at the lib folder.
        self.files.resolve(engine, None, path, pos)
    }
}
