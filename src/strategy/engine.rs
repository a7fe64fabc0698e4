//! Runs one strategy script for one query step: builds the sandboxed engine with the host API,
//! calls `select(ctx, k)`, and checks the answer.
use crate::strategy::context::{self, Ctx, HostRef, Memory, SelectionContext};
use crate::strategy::host::{CachingHost, EmbeddingDiskCache, StrategyHost};
use crate::strategy::sandbox::{self, SandboxLimits};
use crate::strategy::script_errors::{describe_error, location};
use crate::strategy::types::{self, FloatVec, IntVec};
use crate::strategy::{kernel_api, select_call, text, validate};
use anyhow::{anyhow, bail, Context, Result};
use rhai::{Dynamic, Engine, AST};
use std::collections::{BTreeSet, HashSet};
use std::path::Path;

/// The answer of one query step.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// Pool ids, in the order the strategy ranked them.
    pub ids: Vec<u64>,
    /// One score per id when the script returned `#{ids, scores}`.
    pub scores: Option<Vec<f64>>,
    /// What the script remembered for the next iteration (save it in state.json).
    pub memory: Memory,
    /// Lines written with `ctx.log`.
    pub logs: Vec<String>,
    pub timing: SelectTiming,
}

/// Where a query step's time went: the model host, the native kernels, and the rest (the
/// script itself plus vector methods), which should stay a small share.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SelectTiming {
    pub total_s: f64,
    /// Model host primitives, all of them (the sum of the three below).
    pub host_s: f64,
    /// Of the host time: pool generation (greedy and sampled decoding).
    pub generation_s: f64,
    /// Of the host time: teacher-forced scoring.
    pub scoring_s: f64,
    /// Of the host time: embeddings (encoder or acquisition model) and BERTScore.
    pub embedding_s: f64,
    pub kernel_s: f64,
}

impl SelectTiming {
    /// Time outside the host and the kernels: interpreting the script and vector glue.
    pub fn script_s(&self) -> f64 {
        (self.total_s - self.host_s - self.kernel_s).max(0.0)
    }
}

/// A compiled strategy script.
pub struct Script {
    pub name: String,
    pub path: std::path::PathBuf,
    /// `"al"` or `"ed"`.
    pub kind: String,
    pub ast: AST,
}

/// An engine with the whole host API registered and the sandbox applied. `lib_dir` is where
/// `import` looks (`strategies/lib`).
pub fn build_engine(limits: &SandboxLimits, lib_dir: &Path) -> Engine {
    let mut engine = Engine::new();
    types::register(&mut engine);
    context::register(&mut engine);
    text::register(&mut engine);
    kernel_api::register(&mut engine);
    sandbox::apply(&mut engine, limits, lib_dir);
    engine
}

pub fn script_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// The folder `import` resolves in: `lib/` beside the script.
pub fn lib_dir_for(script: &Path) -> std::path::PathBuf {
    script.parent().unwrap_or(Path::new(".")).join("lib")
}

/// Names of the `lib/` modules a script's text imports, followed into the modules themselves
/// (a line `import "name" as alias;`).
pub fn imported_modules(text: &str, lib: &Path) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    collect_imports(text, lib, &mut seen);
    seen
}

fn collect_imports(text: &str, lib: &Path, seen: &mut BTreeSet<String>) {
    for name in imported_names(text) {
        if seen.insert(name.clone()) {
            if let Ok(module) = std::fs::read_to_string(lib.join(format!("{name}.rhai"))) {
                collect_imports(&module, lib, seen);
            }
        }
    }
}

fn imported_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("import")?;
            let rest = rest.trim_start().strip_prefix('"')?;
            let end = rest.find('"')?;
            Some(rest[..end].to_string())
        })
        .collect()
}

/// A script's text; one that is not UTF-8 is named with the line and column of its first
/// bad byte (Rhai reads UTF-8 only).
pub fn read_script(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read strategy script {}", path.display()))?;
    crate::util::text::utf8_text(bytes).map_err(|at| {
        anyhow!(
            "strategy script {} is not UTF-8 text: byte 0x{:02x} at line {}, column {}; save \
             the file as UTF-8",
            path.display(),
            at.byte,
            at.line,
            at.column
        )
    })
}

/// Compile a script, check it defines `select(ctx, k)` and `const KIND = "al" | "ed"`.
pub fn compile(engine: &Engine, path: &Path) -> Result<Script> {
    let name = script_name(path);
    let text = read_script(path)?;
    let mut ast = engine.compile(&text).map_err(|e| {
        anyhow!(
            "strategy {name}: syntax error at {}: {}",
            location(path, e.position()),
            e.err_type()
        )
    })?;
    ast.set_source(path.display().to_string());
    if !ast
        .iter_functions()
        .any(|f| f.name == "select" && f.params.len() == 2)
    {
        bail!(
            "strategy {name} ({}) does not define `fn select(ctx, k)`",
            path.display()
        );
    }
    let kind = ast
        .iter_literal_variables(true, false)
        .find(|(n, ..)| *n == "KIND")
        .map(|(_, _, v)| v.to_string());
    let kind = match kind.as_deref() {
        Some("al") | Some("ed") => kind.unwrap_or_default(),
        Some(other) => bail!(
            "strategy {name} ({}): const KIND is {other:?}, expected \"al\" or \"ed\"",
            path.display()
        ),
        None => bail!(
            "strategy {name} ({}) lacks `const KIND = \"al\";` (or \"ed\") at top level",
            path.display()
        ),
    };
    Ok(Script {
        name,
        path: path.to_path_buf(),
        kind,
        ast,
    })
}

/// Run `script`'s `select(ctx, k)` against `host` and validate the answer.
pub fn select(
    script: &Path,
    ctx: SelectionContext,
    host: &dyn StrategyHost,
    limits: &SandboxLimits,
) -> Result<Selection> {
    let engine = build_engine(limits, &lib_dir_for(script));
    let compiled = compile(&engine, script)?;
    run_compiled(&engine, &compiled, ctx, host, limits)
}

/// Like `select` with an engine and script compiled once (e.g. for many seeds).
pub fn run_compiled(
    engine: &Engine,
    script: &Script,
    mut ctx: SelectionContext,
    host: &dyn StrategyHost,
    limits: &SandboxLimits,
) -> Result<Selection> {
    // Positions follow ids, so "ties go to the lower position" means "to the lower id".
    ctx.pool.sort_by_key(|e| e.id);
    if ctx.k == 0 || ctx.pool.is_empty() {
        // Nothing to choose: the only valid answer is empty, so the script is not run.
        return Ok(Selection {
            ids: Vec::new(),
            scores: None,
            memory: ctx.memory,
            logs: Vec::new(),
            timing: SelectTiming::default(),
        });
    }
    let disk = match (&ctx.embedding_cache_dir, &ctx.dataset_key) {
        (Some(dir), Some(key)) => Some(EmbeddingDiskCache::new(dir, key)),
        _ => None,
    };
    let caching = CachingHost::new(host, disk);
    let started = std::time::Instant::now();
    kernel_api::take_kernel_seconds();
    let pool_ids: Vec<u64> = ctx.pool.iter().map(|e| e.id).collect();
    let labeled_ids: HashSet<u64> = ctx.labeled.iter().map(|e| e.id).collect();
    // Answer errors name the file too: under `lab select` or a run, the name alone may not say
    // which script (a strategy's `script` can point anywhere).
    let who = format!("{}: strategy {}", script.path.display(), script.name);
    let k = ctx.k;
    let (result, memory, logs) = {
        // SAFETY: `rhai_ctx`, the scope and every value the script creates are dropped at the
        // end of this block, before `caching` (and the borrowed `host`) go out of scope.
        let rhai_ctx = Ctx::new(ctx, unsafe { HostRef::erase(&caching) });
        let r = select_call::call_select(
            engine,
            &script.ast,
            Dynamic::from(rhai_ctx.clone()),
            Dynamic::from(k as i64),
        );
        let r = r.map_err(|e| anyhow!(describe_error(engine, script, &e, limits)));
        let memory = rhai_ctx.0.memory.lock().expect("memory lock").clone();
        let logs = rhai_ctx.0.logs.lock().expect("log lock").clone();
        (r.and_then(|d| parse_answer(&who, d)), memory, logs)
    };
    let (ids, scores) = result?;
    let host = caching.host_seconds();
    let timing = SelectTiming {
        total_s: started.elapsed().as_secs_f64(),
        host_s: host.generation + host.scoring + host.embedding,
        generation_s: host.generation,
        scoring_s: host.scoring,
        embedding_s: host.embedding,
        kernel_s: kernel_api::take_kernel_seconds(),
    };
    caching
        .flush()
        .context("cannot update the embedding cache")?;
    let expected = validate::Expected {
        pool_ids: &pool_ids,
        labeled_ids: &labeled_ids,
        k,
    };
    validate::check_selection(&who, &ids, &expected)?;
    Ok(Selection {
        ids,
        scores,
        memory,
        logs,
        timing,
    })
}

type Answer = (Vec<u64>, Option<Vec<f64>>);

/// What a script returned, in the words of the error that refuses it.
fn returned(d: &Dynamic) -> String {
    if d.is_unit() {
        return "it returned `()`, nothing: a function's value is its last expression, so end \
                `select` with the answer and no `;` after it"
            .to_string();
    }
    match crate::strategy::fn_hints::type_name(d.type_id()) {
        "FloatVec" => "it returned a FloatVec: those are scores, not ids \
                       (`ctx.pool.ids().take(scores.topk(k))` picks the ids)"
            .to_string(),
        "?" => format!("it returned a {}", d.type_name()),
        t => format!("it returned a {t}"),
    }
}

fn parse_answer(who: &str, d: Dynamic) -> Result<Answer> {
    let got = returned(&d);
    let shape = || {
        anyhow!(
            "{who}: select must return pool ids (an array or IntVec) or \
             #{{ids: [...], scores: [...]}}, but {got}"
        )
    };
    if d.is_map() {
        let mut m = d.cast::<rhai::Map>();
        let ids = m.remove("ids").ok_or_else(|| {
            anyhow!("{who}: select returned a map without `ids`: return #{{ids, scores}}")
        })?;
        let got = match crate::strategy::fn_hints::type_name(ids.type_id()) {
            "?" => ids.type_name().to_string(),
            t => t.to_string(),
        };
        let ids = parse_ids(who, ids)?.ok_or_else(|| {
            anyhow!("{who}: `ids` in the answer must be an array or IntVec of pool ids, not {got}")
        })?;
        let scores = match m.remove("scores") {
            None => None,
            Some(s) => {
                let s = if let Some(f) = s.clone().try_cast::<FloatVec>() {
                    f.0.as_ref().clone()
                } else if s.is_array() {
                    types::array_to_floats(&s.cast::<rhai::Array>(), "scores")
                        .map_err(|e| anyhow!("{who}: {e}"))?
                } else {
                    bail!("{who}: `scores` must be an array or FloatVec");
                };
                if s.len() != ids.len() {
                    bail!(
                        "{who} returned {} scores for {} ids: give one score per id, in the \
                         same order (`scores.take(positions)` with the positions the ids were \
                         taken at)",
                        s.len(),
                        ids.len()
                    );
                }
                Some(s)
            }
        };
        if let Some(extra) = m.keys().next() {
            bail!("{who}: unexpected key `{extra}` in the answer (use ids, scores)");
        }
        return Ok((ids, scores));
    }
    Ok((parse_ids(who, d)?.ok_or_else(shape)?, None))
}

fn parse_ids(who: &str, d: Dynamic) -> Result<Option<Vec<u64>>> {
    let raw: Vec<i64> = if let Some(v) = d.clone().try_cast::<IntVec>() {
        v.0.as_ref().clone()
    } else if d.is_array() {
        let mut out = Vec::new();
        for (i, x) in d.cast::<rhai::Array>().into_iter().enumerate() {
            out.push(x.as_int().map_err(|t| {
                anyhow!("{who}: answer element {i} is a {t}, expected an integer id")
            })?);
        }
        out
    } else {
        return Ok(None);
    };
    raw.into_iter()
        .map(|i| u64::try_from(i).map_err(|_| anyhow!("{who} returned negative id {i}")))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}
