//! `max_map_size` at the line that grows a map. Rhai measures a map when it is built or
//! returned, not when `m[key] = v` adds an entry, so a loop could fill a map far past the limit
//! before its next use, and that use is all the error would name. The sandbox's variable
//! watchdog measures the maps a script fills by index each time one is read; only those
//! variables are looked up, so scripts that fill no map by index (every shipped one) pay
//! nothing on their variable reads.
//!
//! A map filled inside another (`m.inner[k] = v`, `m[a][b] = v`) is found by the path the
//! assignment names: its keys are read from the script (`.inner`, `["a"]`, `[0]`) or, for a
//! plain variable (`[a]`), from its value at the time of the read, so a read costs one lookup
//! per step of the path, not a walk over the whole map. A step computed otherwise (`[ids[i]]`,
//! `[f(x)]`) cannot be followed without walking every entry at every read: the map below it is
//! measured, as Rhai does, at its next use.
use crate::strategy::engine::{imported_modules, lib_dir_for, read_script};
use rhai::{ASTNode, Dynamic, Engine, Expr, Scope, Stmt, AST, INT};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many scripts that fill a map by index are running, on any thread: while none is, a
/// variable read costs one atomic load here rather than a look at the thread's targets.
static RUNNING_WITH_TARGETS: AtomicUsize = AtomicUsize::new(0);

/// One step from a map or array to a value inside it, as an assignment's left side names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// `.name` or `["name"]`.
    Key(String),
    /// `[3]`.
    Position(INT),
    /// `[a]`: the key or position is the variable's value when the map is read.
    Variable(String),
    /// Any other index expression: the path is not followed past it.
    Computed,
}

/// The maps one variable's index assignments fill: per assignment, the steps from the
/// variable to the map or array that gains the entry (none for `m[k] = v`).
pub type Paths = BTreeSet<Vec<Step>>;

thread_local! {
    /// The variables the script running on this thread assigns by index (see `watching`).
    static TARGETS: RefCell<BTreeMap<String, Paths>> = const { RefCell::new(BTreeMap::new()) };
}

/// Run `f` (a script's `select`) with the variables `ast` and the `lib/` modules it imports
/// assign by index watched.
pub fn watching<T>(engine: &Engine, ast: &AST, f: impl FnOnce() -> T) -> T {
    let targets = script_targets(engine, ast);
    if targets.is_empty() {
        return f();
    }
    let _watch = Watch::start(targets);
    f()
}

/// The targets of one run, set on this thread until dropped (also when the run panics).
struct Watch {
    previous: BTreeMap<String, Paths>,
}

impl Watch {
    fn start(targets: BTreeMap<String, Paths>) -> Self {
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

/// The map entries of the variable `name` when it is watched: its own, plus those of the maps
/// its assignments fill on the way down each path (the largest such sum), which is at most
/// what Rhai counts, so it never stops a script Rhai would not; 0 when unwatched.
pub fn watched_map_entries(scope: &Scope, name: &str) -> usize {
    if RUNNING_WITH_TARGETS.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    TARGETS.with(|t| {
        let t = t.borrow();
        let Some(paths) = t.get(name) else {
            return 0;
        };
        let Some(value) = scope.get(name) else {
            return 0;
        };
        paths
            .iter()
            .map(|path| entries_along(value, path, scope))
            .max()
            .unwrap_or(0)
    })
}

/// The entries of `value` if it is a map, plus those of the maps `path` leads to from it.
fn entries_along(value: &Dynamic, path: &[Step], scope: &Scope) -> usize {
    if value.is_map() {
        let Some(map) = value.read_lock::<rhai::Map>() else {
            return 0;
        };
        let below = path.split_first().map_or(0, |(step, rest)| {
            let child = match step {
                Step::Key(k) => map.get(k.as_str()),
                Step::Variable(v) => scope
                    .get(v)
                    .and_then(|d| d.clone().into_immutable_string().ok())
                    .and_then(|k| map.get(k.as_str())),
                _ => None,
            };
            child.map_or(0, |child| entries_along(child, rest, scope))
        });
        map.len() + below
    } else if value.is_array() {
        let Some(array) = value.read_lock::<rhai::Array>() else {
            return 0;
        };
        path.split_first().map_or(0, |(step, rest)| {
            let at = match step {
                Step::Position(i) => Some(*i),
                Step::Variable(v) => scope.get(v).and_then(|d| d.as_int().ok()),
                _ => None,
            };
            at.and_then(|i| {
                let i = if i < 0 { i + array.len() as INT } else { i };
                usize::try_from(i).ok().and_then(|i| array.get(i))
            })
            .map_or(0, |child| entries_along(child, rest, scope))
        })
    } else {
        0
    }
}

/// The watched names of the script and of the `lib/` modules it imports (a module that does
/// not compile adds none: its error comes from the run itself).
fn script_targets(engine: &Engine, ast: &AST) -> BTreeMap<String, Paths> {
    let mut names = index_assigned(ast);
    let Some(source) = ast.source() else {
        return names;
    };
    let path = Path::new(source);
    let lib = lib_dir_for(path);
    let text = read_script(path).unwrap_or_default();
    for module in imported_modules(&text, &lib) {
        if let Ok(m) = engine.compile_file(lib.join(format!("{module}.rhai"))) {
            for (name, paths) in index_assigned(&m) {
                names.entry(name).or_default().extend(paths);
            }
        }
    }
    names
}

/// Variables assigned by index anywhere in `ast` (`m[key] = v`, `m[a][b] += v`, `m.x[key] = v`),
/// each with the paths to the maps those assignments fill.
pub fn index_assigned(ast: &AST) -> BTreeMap<String, Paths> {
    let mut names: BTreeMap<String, Paths> = BTreeMap::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Assignment(x))) = path.last() {
            if let Expr::Index(..) | Expr::Dot(..) = x.1.lhs {
                if let Some((name, mut steps)) = chain(&x.1.lhs) {
                    // The last step names the entry set; the map that gains it is above.
                    steps.pop();
                    names.entry(name).or_default().insert(steps);
                }
            }
        }
        true
    });
    names
}

/// The variable at the start of an index or property chain, and the steps after it. Rhai
/// nests a chain to the right: `m.a[k]` is `Dot(m, Index(a, k))`.
fn chain(expr: &Expr) -> Option<(String, Vec<Step>)> {
    let (Expr::Index(x, ..) | Expr::Dot(x, ..)) = expr else {
        return None;
    };
    let Expr::Variable(v, ..) = &x.lhs else {
        return None;
    };
    let mut steps = Vec::new();
    let mut rest = &x.rhs;
    loop {
        match rest {
            Expr::Index(x, ..) | Expr::Dot(x, ..) => {
                steps.push(step(&x.lhs));
                rest = &x.rhs;
            }
            last => {
                steps.push(step(last));
                break;
            }
        }
    }
    Some((v.1.to_string(), steps))
}

fn step(expr: &Expr) -> Step {
    match expr {
        Expr::Property(p, ..) => Step::Key(p.2.to_string()),
        Expr::StringConstant(s, ..) => Step::Key(s.to_string()),
        Expr::IntegerConstant(i, ..) => Step::Position(*i),
        Expr::Variable(v, ..) => Step::Variable(v.1.to_string()),
        _ => Step::Computed,
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
        let names: Vec<String> = index_assigned(&ast).into_keys().collect();
        assert_eq!(names, ["a", "m", "n", "q"]);
    }

    #[test]
    fn a_nested_assignment_records_the_path_to_the_map_it_fills() {
        let engine = Engine::new();
        let ast = engine
            .compile(
                "let m = #{}; let g = \"a\";\n\
                 m[g] = 0;\n\
                 m.inner[g] = 1;\n\
                 m[\"a\"][\"b\"][g] += 2;\n\
                 m.rows[0][g] = 3;\n\
                 m[g.len()][g] = 4;",
            )
            .unwrap();
        let key = |k: &str| Step::Key(k.to_string());
        let paths: Vec<Vec<Step>> = index_assigned(&ast)["m"].iter().cloned().collect();
        assert_eq!(
            paths,
            [
                vec![],
                vec![key("a"), key("b")],
                vec![key("inner")],
                vec![key("rows"), Step::Position(0)],
                vec![Step::Computed],
            ]
        );
    }

    #[test]
    fn a_nested_map_counts_along_the_assigned_path_only() {
        let engine = Engine::new();
        let ast = engine
            .compile("let m = #{}; let g = \"x\"; m.inner[g] = 1; m[g][\"y\"] = 2;")
            .unwrap();
        let map_of = |n: usize| {
            let keys = (0..n).map(|i| (format!("k{i}").into(), Dynamic::UNIT));
            Dynamic::from_map(keys.collect())
        };
        let mut m = rhai::Map::new();
        m.insert("inner".into(), map_of(2));
        m.insert("x".into(), map_of(4));
        m.insert("elsewhere".into(), map_of(10));
        let mut scope = Scope::new();
        scope.push("m", m);
        scope.push("g", "x");
        let seen = watching(&engine, &ast, || watched_map_entries(&scope, "m"));
        assert_eq!(
            seen,
            3 + 4,
            "m's own entries and those of m[g], the larger filled map"
        );
        scope.set_value("g", "missing");
        let seen = watching(&engine, &ast, || watched_map_entries(&scope, "m"));
        assert_eq!(seen, 3 + 2, "m[g] is no map now: m.inner counts");
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
