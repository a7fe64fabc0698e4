//! Advice for `x.prop` and `x[i]` on a host value that has no such property or index: the
//! method of that name when there is one (`v.len` for `v.len()`), the properties the type has,
//! or how to reach an item without an index (a Matrix's `row(i)`, a View's `ids()[i]`).
use crate::strategy::fn_hints::{known_functions, type_name, HOST_API_DOC, RHAI_CONVERSIONS};
use crate::strategy::spelling;
use rhai::{Engine, AST};
use std::collections::BTreeSet;

/// The properties (getters) the host registers for the type Rhai names `type_name`.
fn properties_of(engine: &Engine, of: &str) -> BTreeSet<String> {
    engine
        .collect_fn_metadata(
            None,
            |f| {
                let prop = f.metadata.name.strip_prefix("get$")?;
                let receiver = f.metadata.param_types.first().map(|t| type_name(*t))?;
                (receiver == of).then(|| prop.to_string())
            },
            false,
        )
        .into_iter()
        .collect()
}

/// The advice to append to Rhai's "Unknown property 'P' - a getter is not registered for type
/// 'T'" or "No writable property 'P' - a setter ...", empty for any other message.
pub fn property_advice(engine: &Engine, ast: &AST, message: &str) -> String {
    if message.starts_with("No writable property") {
        return "; host values are read-only: compute a new value instead of setting a part \
                of one"
            .to_string();
    }
    let Some((prop, of)) = unknown_property(message) else {
        return String::new();
    };
    let known = known_functions(engine, ast);
    let is_method = known
        .get(prop)
        .is_some_and(|overloads| overloads.iter().any(|o| o.first() == Some(&of)));
    if is_method {
        return format!("; `{prop}` is a method of {of}: call it, `.{prop}()`");
    }
    let props: Vec<String> = properties_of(engine, of).into_iter().collect();
    let methods: Vec<String> = known
        .iter()
        .filter(|(name, overloads)| {
            !RHAI_CONVERSIONS.contains(&name.as_str())
                && overloads.iter().any(|o| o.first() == Some(&of))
        })
        .map(|(name, _)| name.clone())
        .collect();
    if let Some(near) = spelling::nearest(prop, &props) {
        return format!("; did you mean `{near}`? {}", members(of, &props, &methods));
    }
    if let Some(near) =
        spelling::nearest(prop, &methods).or_else(|| spelling::stem_of(prop, &methods))
    {
        // `()` when the method can be called on the value alone, `(..)` when it needs more.
        let bare = known
            .get(near)
            .is_some_and(|overloads| overloads.iter().any(|o| o.len() == 1));
        let args = if bare { "()" } else { "(..)" };
        return format!(
            "; did you mean the method `.{near}{args}`? {}",
            members(of, &props, &methods)
        );
    }
    format!("; {}", members(of, &props, &methods))
}

/// Types with more methods than this are pointed at the README rather than listed.
const METHODS_LISTED: usize = 20;

/// What a value of type `of` offers: its properties, and its methods when they are few.
fn members(of: &str, props: &[String], methods: &[String]) -> String {
    let listed = if methods.is_empty() {
        "no methods".to_string()
    } else if methods.len() <= METHODS_LISTED {
        format!("the methods {} (in {HOST_API_DOC})", methods.join(", "))
    } else {
        format!("the methods listed in {HOST_API_DOC}")
    };
    if props.is_empty() {
        format!("a {of} has no properties, only {listed}")
    } else {
        format!(
            "a {of} has the properties {} and {listed}",
            props.join(", ")
        )
    }
}

/// `(P, T)` from "Unknown property 'P' - a getter is not registered for type 'T'".
fn unknown_property(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix("Unknown property '")?;
    let (prop, rest) = rest.split_once('\'')?;
    let of = rest.split_once("type '")?.1.strip_suffix('\'')?;
    Some((prop, of))
}

/// The advice to append to Rhai's "Indexer unavailable: T [I]" (reading) or "T [I] = V"
/// (writing).
pub fn index_advice(indexed: &str) -> String {
    let of = indexed.split_once(" [").map_or(indexed, |(t, _)| t);
    if indexed.contains("] =") {
        return match of {
            "FloatVec" | "IntVec" => format!(
                "; a {of} is read-only: build a new one (`v.scatter(positions, values)` for a \
                 FloatVec, `float_vec([..])`, `int_vec([..])`), or index an array and convert \
                 it"
            ),
            _ => format!("; a {of} cannot be written by index"),
        };
    }
    let how = match of {
        "Matrix" => {
            "a Matrix has no `[i]`: `m.row(i)` is row i (a FloatVec), `m.take(positions)` \
                     a Matrix of those rows"
        }
        "View" => {
            "a View has no `[i]`: `v.ids()[i]` is the id at position i, \
                   `v.take(int_vec([i]))` a View of that item"
        }
        "Generations" => {
            "Generations have no `[i]`: index what they give, `g.texts()[i]`, \
                          `g.mean_logprob()[i]`, `g.samples()[i]`"
        }
        "Docs" => "Docs have no `[i]`: index what they give, `docs.lengths()[i]`",
        _ => "`[i]` works on arrays, strings, maps, FloatVec and IntVec",
    };
    format!("; {how} (the host API is listed in {HOST_API_DOC})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::engine::build_engine;
    use crate::strategy::SandboxLimits;

    fn advice(message: &str) -> String {
        let engine = build_engine(&SandboxLimits::default(), std::path::Path::new("lib"));
        let ast = engine.compile("fn select(ctx, k) { [] }").unwrap();
        property_advice(&engine, &ast, message)
    }

    #[test]
    fn a_method_used_as_a_property_is_told_to_be_called() {
        let a = advice("Unknown property 'len' - a getter is not registered for type 'View'");
        assert!(
            a.contains("`len` is a method of View: call it, `.len()`"),
            "{a}"
        );
    }

    fn unknown(prop: &str, of: &str) -> String {
        advice(&format!(
            "Unknown property '{prop}' - a getter is not registered for type '{of}'"
        ))
    }

    #[test]
    fn an_unknown_property_lists_the_type_s_properties_and_the_nearest() {
        let a = unknown("pol", "Context");
        assert!(a.contains("did you mean `pool`?"), "{a}");
        assert!(a.contains("labeled") && a.contains("max_new_tokens"), "{a}");
        let a = unknown("x", "FloatVec");
        assert!(
            a.contains("a FloatVec has no properties, only the methods listed in"),
            "{a}"
        );
    }

    #[test]
    fn a_misspelt_ctx_member_is_offered_only_a_near_ctx_member() {
        let a = unknown("generat", "Context");
        assert!(
            a.contains("did you mean the method `.generate(..)`?"),
            "{a}"
        );
        let a = unknown("embeddings", "Context");
        assert!(a.contains("did you mean the method `.embed(..)`?"), "{a}");
        let a = unknown("lenn", "View");
        assert!(a.contains("did you mean the method `.len()`?"), "{a}");
        assert!(a.contains("take") && !a.contains("to_debug"), "{a}");
        // `pool` is two edits from `foo`: too far for a three-letter name to be a typo of it.
        let a = unknown("foo", "Context");
        assert!(!a.contains("did you mean"), "{a}");
        assert!(
            a.contains("a Context has the properties iteration, k, labeled"),
            "{a}"
        );
        assert!(a.contains("the methods ") && a.contains("generate"), "{a}");
    }

    #[test]
    fn indexing_a_type_without_an_indexer_says_how_to_reach_an_item() {
        assert!(index_advice("Matrix [i64]").contains("`m.row(i)`"));
        assert!(index_advice("View [i64]").contains("`v.ids()[i]`"));
        assert!(index_advice("FloatVec [i64] = f64").contains("read-only"));
        assert!(index_advice("Rng [i64]").contains("`[i]` works on arrays"));
    }
}
