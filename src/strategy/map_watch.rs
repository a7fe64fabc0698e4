//! `max_map_size` at the line that grows a map. Rhai measures a map when it is built or
//! returned, not when `m[key] = v` adds an entry, so a loop could fill a map far past the limit
//! before its next use, and that use is all the error would name. The sandbox's variable
//! watchdog measures the maps a script fills by index each time one is read; only those
//! variables are looked up, so scripts that fill no map by index (every shipped one) pay
//! nothing on their variable reads.
use crate::strategy::engine::{imported_modules, lib_dir_for, read_script};
use rhai::{ASTNode, Engine, Expr, Scope, Stmt, AST};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many scripts that fill a map by index are running, on any thread: while none is, a
/// variable read costs one atomic load here rather than a look at the thread's targets.
static RUNNING_WITH_TARGETS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The variables the script running on this thread assigns by index (see `watching`).
    static TARGETS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` (a script's `select`) with the variables `ast` and the `lib/` modules it imports
/// assign by index watched.
pub fn watching<T>(engine: &Engine, ast: &AST, f: impl FnOnce() -> T) -> T {
    let targets: Vec<String> = script_targets(engine, ast).into_iter().collect();
    if targets.is_empty() {
        return f();
    }
    let _watch = Watch::start(targets);
    f()
}

/// The targets of one run, set on this thread until dropped (also when the run panics).
struct Watch {
    previous: Vec<String>,
}

impl Watch {
    fn start(targets: Vec<String>) -> Self {
        let previous = TARGETS.with(|t| t.replace(targets));
        RUNNING_WITH_TARGETS.fetch_add(1, Ordering::Relaxed);
        Self { previous }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        RUNNING_WITH_TARGETS.fetch_sub(1, Ordering::Relaxed);
        let previous = std::mem::take(&mut self.previous);
        TARGETS.with(|t| t.replace(previous));
    }
}

/// The entries of the variable `name` when it is watched and holds a map (its own entries, not
/// those of maps nested in it, which Rhai counts at the map's next use), else 0.
pub fn watched_map_entries(scope: &Scope, name: &str) -> usize {
    if RUNNING_WITH_TARGETS.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    let watched = TARGETS.with(|t| {
        let t = t.borrow();
        !t.is_empty() && t.iter().any(|n| n == name)
    });
    if !watched {
        return 0;
    }
    match scope.get(name) {
        Some(value) if value.is_map() => value.read_lock::<rhai::Map>().map_or(0, |m| m.len()),
        _ => 0,
    }
}

/// The watched names of the script and of the `lib/` modules it imports (a module that does
/// not compile adds none: its error comes from the run itself).
fn script_targets(engine: &Engine, ast: &AST) -> BTreeSet<String> {
    let mut names = index_assigned(ast);
    let Some(source) = ast.source() else {
        return names;
    };
    let path = Path::new(source);
    let lib = lib_dir_for(path);
    let text = read_script(path).unwrap_or_default();
    for module in imported_modules(&text, &lib) {
        if let Ok(m) = engine.compile_file(lib.join(format!("{module}.rhai"))) {
            names.extend(index_assigned(&m));
        }
    }
    names
}

/// Variables assigned by index anywhere in `ast` (`m[key] = v`, `m[a][b] += v`, `m.x[key] = v`).
pub fn index_assigned(ast: &AST) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Assignment(x))) = path.last() {
            if let Expr::Index(..) | Expr::Dot(..) = x.1.lhs {
                if let Some(name) = root_variable(&x.1.lhs) {
                    names.insert(name);
                }
            }
        }
        true
    });
    names
}

/// The variable at the start of an index or property chain.
fn root_variable(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Index(x, ..) | Expr::Dot(x, ..) => root_variable(&x.lhs),
        Expr::Variable(v, ..) => Some(v.1.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::Dynamic;

    #[test]
    fn variables_assigned_by_index_are_found_in_functions_and_closures() {
        let engine = Engine::new();
        let ast = engine
            .compile(
                "fn fill(m) { for i in 0..3 { m[`k${i}`] = i; } m }\n\
                 fn select(ctx, k) {\n  let a = #{};\n  a.x = 1;\n  let n = [1];\n  \
                 n[0] += 1;\n  let f = |q| { q[\"z\"] = 2; q };\n  let plain = 1;\n  \
                 plain = 2;\n  []\n}",
            )
            .unwrap();
        let names: Vec<String> = index_assigned(&ast).into_iter().collect();
        assert_eq!(names, ["a", "m", "n", "q"]);
    }

    #[test]
    fn only_watched_variables_are_measured() {
        let mut scope = Scope::new();
        let mut map = rhai::Map::new();
        map.insert("a".into(), Dynamic::UNIT);
        map.insert("b".into(), Dynamic::UNIT);
        scope.push("seen", map.clone());
        scope.push("other", map);
        let engine = Engine::new();
        let ast = engine.compile("let seen = #{}; seen[\"x\"] = 1;").unwrap();
        let (seen, other) = watching(&engine, &ast, || {
            (
                watched_map_entries(&scope, "seen"),
                watched_map_entries(&scope, "other"),
            )
        });
        assert_eq!((seen, other), (2, 0));
        assert_eq!(
            watched_map_entries(&scope, "seen"),
            0,
            "unwatched after the run"
        );
        let run = std::panic::AssertUnwindSafe(|| watching(&engine, &ast, || panic!("in f")));
        let panicked = std::panic::catch_unwind(run);
        assert!(panicked.is_err());
        assert_eq!(
            watched_map_entries(&scope, "seen"),
            0,
            "unwatched after a run that panicked"
        );
    }
}
