//! The strategies in a folder, read from their scripts: name, kind, the header's description
//! and deviation line, and which host primitives they call (their own and their imports').
use crate::strategy::engine::{build_engine, compile, lib_dir_for, script_name};
use crate::strategy::sandbox::SandboxLimits;
use anyhow::{Context, Result};
use once_cell::sync::Lazy;
use regex::Regex;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq)]
pub struct StrategyInfo {
    pub name: String,
    pub path: PathBuf,
    /// "al" or "ed"; empty when the script does not compile.
    pub kind: String,
    /// The first comment line.
    pub description: String,
    /// The header line starting `// Deviation:`, if any.
    pub deviation: Option<String>,
    /// Host primitives the script (or a module it imports) calls, sorted.
    pub primitives: Vec<String>,
    /// Why the script cannot be used, when it cannot.
    pub problem: Option<String>,
}

/// Host calls worth knowing before running a strategy (they need a model, an encoder, …).
const PRIMITIVES: &[&str] = &[
    "generate",
    "base_generate",
    "score",
    "embed",
    "bleu_variance",
    "sentence_bleu",
    "bertscore_precision",
    "stemmed",
    "kmeans",
    "k_center_greedy",
    "idds_greedy",
    "facility_location_greedy",
    "graph_cut_greedy",
    "ngf_smp_greedy",
    "delfy_scores",
    "rng",
    "remember",
    "recall",
];

static CALL: Lazy<Regex> = Lazy::new(|| Regex::new(r"\b([a-z_]+)\s*\(").expect("static regex"));
static QUALIFIED_CALL: Lazy<Regex> =
    Lazy::new(|| Regex::new(r"\b([A-Za-z_]\w*)::([A-Za-z_]\w*)\s*\(").expect("static regex"));
static IMPORT: Lazy<Regex> = Lazy::new(|| {
    Regex::new(r#"import\s+"([A-Za-z0-9_]+)"\s+as\s+([A-Za-z_]\w*)"#).expect("static regex")
});
static FN_DEF: Lazy<Regex> =
    Lazy::new(|| Regex::new(r"\bfn\s+([A-Za-z_]\w*)\s*\(").expect("static regex"));

fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn direct_primitives(code: &str) -> BTreeSet<String> {
    CALL.captures_iter(code)
        .filter(|c| PRIMITIVES.contains(&&c[1]))
        .map(|c| c[1].to_string())
        .collect()
}

/// Per function of a lib module, the primitives it calls, itself or through its siblings.
fn module_functions(code: &str) -> HashMap<String, BTreeSet<String>> {
    let defs: Vec<(String, usize)> = FN_DEF
        .captures_iter(code)
        .map(|c| (c[1].to_string(), c.get(0).map_or(0, |m| m.start())))
        .collect();
    let mut bodies = HashMap::new();
    for (n, (name, start)) in defs.iter().enumerate() {
        let end = defs.get(n + 1).map_or(code.len(), |d| d.1);
        bodies.insert(name.clone(), &code[*start..end]);
    }
    let mut prims: HashMap<String, BTreeSet<String>> = bodies
        .iter()
        .map(|(n, b)| (n.clone(), direct_primitives(b)))
        .collect();
    // Sibling calls: propagate until nothing changes (modules are small).
    loop {
        let mut changed = false;
        for (name, body) in &bodies {
            for c in CALL.captures_iter(body) {
                let callee = &c[1];
                if callee == name.as_str() || !prims.contains_key(callee) {
                    continue;
                }
                let add: Vec<String> = prims[callee].iter().cloned().collect();
                let mine = prims.get_mut(name).expect("every body has an entry");
                for a in add {
                    changed |= mine.insert(a);
                }
            }
        }
        if !changed {
            return prims;
        }
    }
}

/// Primitives `text` calls directly or through functions of modules it imports from `lib_dir`.
fn primitives_of(text: &str, lib_dir: &Path) -> BTreeSet<String> {
    let code = strip_comments(text);
    let mut out = direct_primitives(&code);
    let mut modules = HashMap::new();
    for c in IMPORT.captures_iter(&code) {
        if let Ok(t) = std::fs::read_to_string(lib_dir.join(format!("{}.rhai", &c[1]))) {
            modules.insert(c[2].to_string(), module_functions(&strip_comments(&t)));
        }
    }
    for c in QUALIFIED_CALL.captures_iter(&code) {
        if let Some(p) = modules.get(&c[1]).and_then(|m| m.get(&c[2])) {
            out.extend(p.iter().cloned());
        }
    }
    out
}

/// Read one script's header and compile it.
pub fn describe(path: &Path) -> Result<StrategyInfo> {
    let text = match crate::strategy::engine::read_script(path) {
        Ok(text) => text,
        // Listed with its problem, so one bad file does not hide the others.
        Err(e) => {
            return Ok(StrategyInfo {
                name: script_name(path),
                path: path.to_path_buf(),
                kind: String::new(),
                description: String::new(),
                deviation: None,
                primitives: Vec::new(),
                problem: Some(format!("{e:#}")),
            })
        }
    };
    let comments: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| l.starts_with("//") || l.is_empty())
        .filter_map(|l| l.strip_prefix("//").map(str::trim))
        .collect();
    let description = comments.first().map(|s| s.to_string()).unwrap_or_default();
    let deviation = comments
        .iter()
        .find_map(|l| l.strip_prefix("Deviation:").map(|d| d.trim().to_string()));
    let lib = lib_dir_for(path);
    let prims = primitives_of(&text, &lib);
    let engine = build_engine(&SandboxLimits::default(), &lib);
    let (kind, problem) = match compile(&engine, path) {
        Ok(s) => (s.kind, None),
        Err(e) => (String::new(), Some(format!("{e:#}"))),
    };
    Ok(StrategyInfo {
        name: script_name(path),
        path: path.to_path_buf(),
        kind,
        description,
        deviation,
        primitives: prims.into_iter().collect(),
        problem,
    })
}

/// Every `*.rhai` directly in `dir` (not `lib/`), sorted by name.
pub fn list(dir: &Path) -> Result<Vec<StrategyInfo>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "cannot list strategies in {}: run from the project folder or pass --dir",
            dir.display()
        )
    })?;
    let mut paths = Vec::new();
    for e in entries {
        let p = e
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if p.is_file() && p.extension().is_some_and(|x| x == "rhai") {
            paths.push(p);
        }
    }
    paths.sort();
    paths.iter().map(|p| describe(p)).collect()
}

/// The script for a strategy name: `dir/NAME.rhai`.
pub fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(format!("{name}.rhai"));
    if p.is_file() {
        return Ok(p);
    }
    let known: Vec<String> = list(dir)
        .map(|v| v.into_iter().map(|i| i.name).collect())
        .unwrap_or_default();
    anyhow::bail!(
        "no strategy {name:?} in {} (known: {})",
        dir.display(),
        known.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A script saved in another encoding is listed with where its first bad byte is, beside
    /// the scripts that are fine.
    #[test]
    fn a_script_that_is_not_utf8_is_listed_with_its_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("good.rhai"),
            "// Fine.\nconst KIND = \"al\";\nfn select(ctx, k) { ctx.pool.ids().take(range_vec(k)) }\n",
        )
        .unwrap();
        // "é" in Latin-1 on line 2, after "// ca" and "f".
        let mut latin1 = b"// Not UTF-8.\n// caf".to_vec();
        latin1.extend([0xe9, b'\n']);
        std::fs::write(dir.path().join("latin1.rhai"), latin1).unwrap();
        let infos = list(dir.path()).unwrap();
        assert_eq!(infos.len(), 2);
        assert!(infos[0].problem.is_none(), "{:?}", infos[0].problem);
        let problem = infos[1].problem.as_deref().unwrap_or_default();
        assert!(
            problem.contains("latin1.rhai is not UTF-8 text: byte 0xe9 at line 2, column 7")
                && problem.contains("save the file as UTF-8"),
            "{problem}"
        );
    }

    #[test]
    fn primitives_follow_imported_functions_actually_called() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(
            lib.join("m.rhai"),
            "fn enc(ctx, v) { ctx.embed(v) }\nfn gen(ctx, v) { ctx.generate(v) }\nfn both(ctx, v) { enc(ctx, v); kmeans(x, 1, 2, 3) }\n",
        )
        .unwrap();
        let script = "// ctx.score(x) in a comment does not count\nimport \"m\" as m;\nfn select(ctx, k) { m::both(ctx, ctx.pool); ctx.rng() }";
        let p: Vec<String> = primitives_of(script, &lib).into_iter().collect();
        assert_eq!(p, ["embed", "kmeans", "rng"]);
    }
}
