//! The strategies in a folder, read from their scripts: name, kind, the header's description
//! and deviation line, and which host primitives they call (their own and their imports').
use crate::strategy::engine::{build_engine, compile, lib_dir_for, script_name};
use crate::strategy::sandbox::SandboxLimits;
use anyhow::{Context, Result};
use once_cell::sync::Lazy;
use regex::Regex;
use std::collections::BTreeSet;
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
static IMPORT: Lazy<Regex> =
    Lazy::new(|| Regex::new(r#"import\s+"([A-Za-z0-9_]+)""#).expect("static regex"));

fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn primitives_of(
    text: &str,
    lib_dir: &Path,
    seen: &mut BTreeSet<String>,
    out: &mut BTreeSet<String>,
) {
    let code = strip_comments(text);
    for c in CALL.captures_iter(&code) {
        if PRIMITIVES.contains(&&c[1]) {
            out.insert(c[1].to_string());
        }
    }
    for c in IMPORT.captures_iter(&code) {
        let m = c[1].to_string();
        if seen.insert(m.clone()) {
            if let Ok(t) = std::fs::read_to_string(lib_dir.join(format!("{m}.rhai"))) {
                primitives_of(&t, lib_dir, seen, out);
            }
        }
    }
}

/// Read one script's header and compile it.
pub fn describe(path: &Path) -> Result<StrategyInfo> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read strategy script {}", path.display()))?;
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
    let mut prims = BTreeSet::new();
    primitives_of(&text, &lib, &mut BTreeSet::new(), &mut prims);
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
