//! `[al]` (sizes and stopping criteria) and `[[strategy]]` (what to compare).
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A number of examples: a count (`10`) or a fraction of the pool (`0.01`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Size {
    Count(usize),
    Fraction(f64),
}

impl Size {
    /// The number of examples for a pool of `pool` items, never more than the pool. A fraction
    /// rounds down (as `int(0.01 * n)` does in ATGen) but gives at least one item.
    pub fn resolve(&self, pool: usize) -> usize {
        match *self {
            Size::Count(n) => n.min(pool),
            Size::Fraction(f) => ((f * pool as f64).floor() as usize).clamp(pool.min(1), pool),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Count(n) => write!(f, "{n}"),
            Size::Fraction(x) => write!(f, "{x} of the pool"),
        }
    }
}

// Hand-written rather than derived: serde's untagged error ("did not match any variant") would
// not tell the user what to write.
impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl serde::de::Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count like 10 or a fraction of the pool like 0.01")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                usize::try_from(v).map(Size::Count).map_err(|_| {
                    E::custom(format!(
                        "{v} is negative: expected a count like 10 or a fraction like 0.01"
                    ))
                })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                usize::try_from(v)
                    .map(Size::Count)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Size, E> {
                Ok(Size::Fraction(v))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlConfig {
    pub init_size: Size,
    pub query_size: Size,
    /// Stopping criteria: the loop stops at the first one reached; at least one must be set.
    pub iterations: Option<usize>,
    pub label_budget: Option<usize>,
    pub money_budget: Option<f64>,
    /// Metric name → score at which the run stops.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub required_performance: BTreeMap<String, f64>,
}

impl Default for AlConfig {
    fn default() -> Self {
        Self {
            init_size: Size::Count(10),
            query_size: Size::Count(10),
            iterations: None,
            label_budget: None,
            money_budget: None,
            required_performance: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// Runs `strategies/<name>.rhai` unless `script` says otherwise; left out, the stem of
    /// `script` (filled in when the file is read).
    #[serde(default)]
    pub name: String,
    /// Defaults to `strategies/<name>.rhai`.
    #[serde(default)]
    pub script: Option<PathBuf>,
    /// Display name and results folder; defaults to `name`. Lets one script run twice with
    /// different params.
    #[serde(default)]
    pub label: Option<String>,
    /// Free-form parameters the script reads with `ctx.param(name, default)`.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub params: toml::Table,
    #[serde(default)]
    pub pool_subsample: Option<Size>,
}

impl StrategyConfig {
    pub fn script_path(&self) -> PathBuf {
        self.script
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("strategies/{}.rhai", self.name)))
    }

    /// The name results are filed under: the label, or the strategy name.
    pub fn key(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_resolves_counts_and_fractions() {
        assert_eq!(Size::Count(10).resolve(1000), 10);
        assert_eq!(Size::Count(10).resolve(4), 4);
        // 1% of GSM8K's train split, rounded down as ATGen does.
        assert_eq!(Size::Fraction(0.01).resolve(7473), 74);
        assert_eq!(Size::Fraction(0.001).resolve(50), 1);
        assert_eq!(Size::Fraction(1.0).resolve(50), 50);
        assert_eq!(Size::Fraction(0.5).resolve(0), 0);
    }

    #[test]
    fn size_reads_integer_as_count_and_float_as_fraction() {
        #[derive(Debug, Deserialize)]
        struct T {
            a: Size,
            b: Size,
        }
        let t: T = toml::from_str("a = 10\nb = 0.25").unwrap();
        assert_eq!(t.a, Size::Count(10));
        assert_eq!(t.b, Size::Fraction(0.25));
        let err = toml::from_str::<T>("a = -3\nb = 1").unwrap_err();
        assert!(err.message().contains("negative"), "{err}");
        let err = toml::from_str::<T>("a = \"ten\"\nb = 1").unwrap_err();
        assert!(err.message().contains("a count like 10"), "{err}");
    }
}
