//! Advice for "Function not found": the host functions of that name with the argument types
//! they take, or the nearest host names (by spelling, and for names other array libraries use,
//! by meaning), so a script author need not search the README for the right call.
use crate::strategy::context::{Ctx, GenerationsRef, Rng, View};
use crate::strategy::kernel_api::KMeansRef;
use crate::strategy::text::Docs;
use crate::strategy::types::{FloatVec, IntVec, MatrixRef};
use rhai::{Array, Dynamic, Engine, ImmutableString, Map, AST, FLOAT, INT};
use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};

/// Where the host API is listed, for every hint.
pub const HOST_API_DOC: &str = "strategies/README.md, section \"Host API\"";

/// Names other array libraries (numpy, pandas) use for what the host offers under another name.
const SYNONYMS: &[(&str, &[&str])] = &[
    ("argmax", &["argsort_desc", "topk"]),
    ("argmin", &["argsort", "topk"]),
    ("sort", &["argsort", "sorted"]),
    ("size", &["len"]),
    ("length", &["len"]),
    ("count", &["len"]),
    ("shape", &["rows", "cols", "len"]),
    ("append", &["+"]),
    ("push", &["+"]),
    ("extend", &["+"]),
    ("concat", &["+"]),
    ("maximum", &["max_with"]),
    ("minimum", &["min_with"]),
    ("clip", &["max_with", "min_with"]),
    ("normalise", &["normalize", "minmax", "zscore"]),
    ("standardize", &["zscore"]),
    ("nan_to_num", &["fill_nan"]),
    ("index", &["positions_of", "take"]),
    ("select", &["take"]),
    ("pow", &["**"]),
    ("power", &["**"]),
];

/// Rhai's own conversions, which every type has: no host API, so never offered as a near name
/// (`v.to_int()` is not offered `to_debug`) nor listed among a type's methods.
pub(crate) const RHAI_CONVERSIONS: [&str; 2] = ["to_debug", "to_string"];

/// The name Rhai prints for a parameter type in a "Function not found" signature.
pub(crate) fn type_name(t: TypeId) -> &'static str {
    let known: [(TypeId, &'static str); 18] = [
        (TypeId::of::<FloatVec>(), "FloatVec"),
        (TypeId::of::<IntVec>(), "IntVec"),
        (TypeId::of::<MatrixRef>(), "Matrix"),
        (TypeId::of::<Ctx>(), "Context"),
        (TypeId::of::<View>(), "View"),
        (TypeId::of::<GenerationsRef>(), "Generations"),
        (TypeId::of::<Rng>(), "Rng"),
        (TypeId::of::<KMeansRef>(), "KMeans"),
        (TypeId::of::<Docs>(), "Docs"),
        (TypeId::of::<INT>(), "i64"),
        (TypeId::of::<FLOAT>(), "f64"),
        (TypeId::of::<bool>(), "bool"),
        (TypeId::of::<ImmutableString>(), "string"),
        (TypeId::of::<Array>(), "array"),
        (TypeId::of::<Map>(), "map"),
        (TypeId::of::<char>(), "char"),
        (TypeId::of::<()>(), "()"),
        (TypeId::of::<Dynamic>(), "any"),
    ];
    known
        .iter()
        .find(|(id, _)| *id == t)
        .map_or("?", |(_, n)| n)
}

/// Every host function (registered by the lab, not Rhai's standard library) and every function
/// the script defines: name → the parameter-type lists it is defined for.
pub(crate) fn known_functions(
    engine: &Engine,
    ast: &AST,
) -> BTreeMap<String, BTreeSet<Vec<&'static str>>> {
    let mut out: BTreeMap<String, BTreeSet<Vec<&'static str>>> = BTreeMap::new();
    let host = engine.collect_fn_metadata(
        None,
        |f| {
            let types: Vec<&'static str> = f
                .metadata
                .param_types
                .iter()
                .map(|t| type_name(*t))
                .collect();
            Some((f.metadata.name.to_string(), types))
        },
        false,
    );
    for (name, types) in host {
        // Getters and indexers are reached as `x.prop` / `x[i]`, never called by these names.
        if name.starts_with("get$") || name.starts_with("set$") || name.starts_with("index$") {
            continue;
        }
        out.entry(name).or_default().insert(types);
    }
    for f in ast.iter_functions() {
        out.entry(f.name.to_string())
            .or_default()
            .insert(vec!["any"; f.params.len()]);
    }
    out
}

/// Rhai names a string argument by every Rust type a string can be; the host calls it `string`.
fn plain_type_name(t: &str) -> &str {
    if t == "&str | ImmutableString | String" {
        "string"
    } else {
        t
    }
}

/// Split Rhai's "name (T1, T2)" into the name and the argument type names.
fn parse_signature(signature: &str) -> (&str, Vec<&str>) {
    match signature.split_once(" (") {
        Some((name, rest)) => {
            let inner = rest.strip_suffix(')').unwrap_or(rest).trim();
            let args = if inner.is_empty() {
                Vec::new()
            } else {
                inner.split(", ").map(plain_type_name).collect()
            };
            (name, args)
        }
        None => (signature, Vec::new()),
    }
}

/// The advice to append to "Function not found: SIGNATURE".
pub fn advice(engine: &Engine, ast: &AST, signature: &str) -> String {
    let (name, args) = parse_signature(signature);
    let known = known_functions(engine, ast);
    let receiver = args.first().copied();
    if let Some(overloads) = known.get(name) {
        // The name exists: the argument types are what is wrong. Show the overloads for the same
        // first argument type when there are some (`+` has many), else all of them.
        let same_receiver: Vec<&Vec<&str>> = overloads
            .iter()
            .filter(|o| o.first().copied() == receiver)
            .collect();
        let shown: Vec<&Vec<&str>> = if same_receiver.is_empty() {
            overloads.iter().collect()
        } else {
            same_receiver
        };
        let list: Vec<String> = shown
            .iter()
            .map(|o| format!("({})", o.join(", ")))
            .collect();
        let unit = if args.contains(&"()") {
            "; `()` is the value of a map property that is not set, of `ctx.recall(key)` for a \
             key never remembered, and of a block or function whose last statement ends with \
             `;`"
        } else {
            ""
        };
        return format!(
            "; `{name}` takes {} but was given ({}): convert the arguments (e.g. `to_float()`, \
             `int_vec([..])`, `float_vec([..])`){unit}; the host API is listed in {HOST_API_DOC}",
            list.join(" or "),
            args.join(", ")
        );
    }
    let names = nearest_names(name, receiver, &known);
    let hint = if names.is_empty() {
        String::new()
    } else {
        let mut quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        let last = quoted.pop().unwrap_or_default();
        if quoted.is_empty() {
            format!("; did you mean {last}?")
        } else {
            format!("; did you mean {} or {last}?", quoted.join(", "))
        }
    };
    format!("{hint} (the host API is listed in {HOST_API_DOC})")
}

/// Up to three host names near `name`: known synonyms first, then names spelled alike or
/// sharing a prefix. With a receiver type (a method call), only its methods are offered.
fn nearest_names(
    name: &str,
    receiver: Option<&str>,
    known: &BTreeMap<String, BTreeSet<Vec<&'static str>>>,
) -> Vec<String> {
    let applies = |candidate: &str| {
        known.get(candidate).is_some_and(|overloads| {
            receiver.is_none()
                || overloads
                    .iter()
                    .any(|o| o.first().copied() == receiver || o.first() == Some(&"any"))
        })
    };
    // A name is offered an operator (`*` for `g`) only when it is one itself.
    let word = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
    };
    let candidates: Vec<&str> = known
        .keys()
        .map(String::as_str)
        .filter(|c| applies(c) && word(c) == word(name) && !RHAI_CONVERSIONS.contains(c))
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut push = |c: &str| {
        if out.len() < 3 && !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    };
    let lower = name.to_lowercase();
    if let Some((_, targets)) = SYNONYMS.iter().find(|(s, _)| *s == lower) {
        targets.iter().filter(|t| applies(t)).for_each(|t| push(t));
    }
    if let Some(c) = crate::strategy::spelling::nearest(name, &candidates) {
        push(c);
    }
    candidates
        .iter()
        .filter(|c| crate::strategy::spelling::same_start(name, c))
        .for_each(|c| push(c));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::engine::build_engine;
    use crate::strategy::SandboxLimits;

    fn hint(signature: &str) -> String {
        let engine = build_engine(&SandboxLimits::default(), std::path::Path::new("lib"));
        let ast = engine.compile("fn select(ctx, k) { [] }").unwrap();
        advice(&engine, &ast, signature)
    }

    #[test]
    fn numpy_names_point_at_the_host_methods_of_the_receiver() {
        let h = hint("argmax (FloatVec)");
        assert!(h.contains("did you mean `argsort_desc`, `topk`"), "{h}");
        assert!(h.contains("strategies/README.md"), "{h}");
    }

    #[test]
    fn misspelled_methods_get_the_nearest_name() {
        let h = hint("argsrot (FloatVec)");
        assert!(h.contains("`argsort`"), "{h}");
        let h = hint("mean_logprobs (Generations)");
        assert!(h.contains("`mean_logprob`"), "{h}");
    }

    #[test]
    fn a_known_name_with_wrong_argument_types_lists_what_it_takes() {
        let h = hint("+ (IntVec, i64)");
        assert!(
            h.contains("`+` takes (IntVec, IntVec) but was given (IntVec, i64)"),
            "{h}"
        );
        assert!(!h.contains("FloatVec"), "only the IntVec overloads: {h}");
    }

    #[test]
    fn a_name_gets_no_operator_and_a_unit_argument_is_explained() {
        let h = hint("g (i64)");
        assert!(!h.contains('`'), "no host name is near `g`: {h}");
        let h = hint("to_int (IntVec)");
        assert!(!h.contains("to_debug"), "{h}");
        let h = hint("foo (Context)");
        assert!(
            !h.contains("did you mean"),
            "`log` is two edits from `foo`: {h}"
        );
        let h = hint("+ ((), f64)");
        assert!(
            h.contains("`ctx.recall(key)` for a key never remembered"),
            "{h}"
        );
    }

    #[test]
    fn a_power_function_is_pointed_at_the_power_operator() {
        let h = hint("pow (FloatVec, f64)");
        assert!(h.contains("did you mean `**`?"), "{h}");
    }

    #[test]
    fn a_conversion_is_offered_only_a_conversion_spelled_like_it() {
        let h = hint("to_flot (IntVec)");
        assert!(h.contains("did you mean `to_float`?"), "{h}");
        for wrong in ["to_vec (FloatVec)", "to_vec (IntVec)", "to_int (IntVec)"] {
            let h = hint(wrong);
            assert!(
                !h.contains("did you mean"),
                "`to_` alone is no likeness: {h}"
            );
        }
    }

    #[test]
    fn signatures_split_into_name_and_argument_types() {
        assert_eq!(
            parse_signature("topk (FloatVec, f64)"),
            ("topk", vec!["FloatVec", "f64"])
        );
        assert_eq!(parse_signature("nothing ()"), ("nothing", vec![]));
        assert_eq!(
            parse_signature("kmeans (&str | ImmutableString | String, i64)"),
            ("kmeans", vec!["string", "i64"])
        );
    }
}
