//! Semantic checks serde cannot express: ranges, combinations, a stopping criterion, metric
//! names. All problems are reported at once, each naming its key, file and line.
use std::collections::BTreeSet;

mod data;
mod labeller;
mod learning;

use super::diagnose::location;
use super::{Experiment, Size};
use data::{check_data, check_model};
use labeller::check_labeller;
use learning::{check_al, check_eval, check_strategies, check_training};

/// Check everything except whether metric names exist (the metrics registry is not known here).
pub fn validate(exp: &Experiment) -> anyhow::Result<()> {
    report(exp, problems(exp, None))
}

/// Check everything, including that every metric in `eval.metrics` and
/// `al.required_performance` is one of `known_metrics`.
pub fn validate_with(exp: &Experiment, known_metrics: &[&str]) -> anyhow::Result<()> {
    report(exp, problems(exp, Some(known_metrics)))
}

struct Problem {
    key: String,
    message: String,
    /// About the key's own value alone (a range), not about how it combines with others.
    own_value: bool,
}

/// One problem as reported: the key it is about and the line shown to the user.
pub struct ProblemLine {
    pub key: String,
    pub line: String,
    /// The check looked at this key's own value only (`must be greater than 0`), so the
    /// problem stands whatever other keys hold.
    pub own_value: bool,
}

fn report(exp: &Experiment, problems: Vec<Problem>) -> anyhow::Result<()> {
    let lines = messages(exp, problems);
    if lines.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = lines.into_iter().map(|p| p.line).collect();
    anyhow::bail!("{}", lines.join("\n"))
}

fn messages(exp: &Experiment, problems: Vec<Problem>) -> Vec<ProblemLine> {
    problems
        .into_iter()
        .map(|p| {
            let line = format!(
                "`{}` in {}: {}",
                p.key,
                location(exp.source.as_ref(), &p.key),
                p.message
            );
            ProblemLine {
                key: p.key,
                line,
                own_value: p.own_value,
            }
        })
        .collect()
}

/// Every problem [`validate_with`] (or, without `known_metrics`, [`validate`]) reports, each
/// with the key it is about, for callers that leave some out or add their own.
pub fn problem_list(exp: &Experiment, known_metrics: Option<&[&str]>) -> Vec<ProblemLine> {
    messages(exp, problems(exp, known_metrics))
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
            own_value: false,
        });
    }
    /// A problem with the key's own value, whatever the other keys hold.
    fn own(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
            own_value: true,
        });
    }
    fn positive<T: PartialOrd + Default + std::fmt::Display>(&mut self, key: &str, v: T) {
        // Written as "not greater" so that NaN (which TOML allows as `nan`) is rejected too.
        if v.partial_cmp(&T::default()) != Some(std::cmp::Ordering::Greater) {
            self.own(key, format!("must be greater than 0 (got {v})"));
        }
    }
    fn positive_finite(&mut self, key: &str, v: f64) {
        if !(v > 0.0 && v.is_finite()) {
            self.own(
                key,
                format!("must be a finite number greater than 0 (got {v})"),
            );
        }
    }
    fn non_negative(&mut self, key: &str, v: f64) {
        if !(v >= 0.0 && v.is_finite()) {
            self.own(key, format!("must be a finite number ≥ 0 (got {v})"));
        }
    }
    fn fraction(&mut self, key: &str, v: f64, allow_zero: bool, allow_one: bool) {
        let low_ok = if allow_zero { v >= 0.0 } else { v > 0.0 };
        let high_ok = if allow_one { v <= 1.0 } else { v < 1.0 };
        if !(low_ok && high_ok) {
            let (l, h) = (
                if allow_zero { "[0" } else { "(0" },
                if allow_one { "1]" } else { "1)" },
            );
            self.own(key, format!("must be in {l}, {h} (got {v})"));
        }
    }
    fn size(&mut self, key: &str, size: &Size) {
        match *size {
            Size::Count(0) => self.own(key, "must be at least 1"),
            Size::Fraction(f) if !(f > 0.0 && f <= 1.0) => self.own(
                key,
                format!("a fraction of the pool must be in (0, 1] (got {f}); write an integer like 10 for a count"),
            ),
            _ => {}
        }
    }
    fn name(&mut self, key: &str, v: &str, what: &str) {
        let ok = !v.is_empty()
            && v != "."
            && v != ".."
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            self.own(
                key,
                format!("{what} `{v}` must be non-empty and use only ASCII letters and digits (a-z, A-Z, 0-9), `-`, `_`, `.` (it names a results folder, and other machines and tools must read that name alike)"),
            );
        }
    }
}

fn problems(exp: &Experiment, known_metrics: Option<&[&str]>) -> Vec<Problem> {
    let mut p = Problems::default();
    p.name("name", &exp.name, "the experiment name");
    // `lab serve` keeps uploaded datasets in <results>/uploads (crate::web::upload::UPLOAD_DIR).
    if exp.name == "uploads" {
        p.add(
            "name",
            "`uploads` is reserved: the results folder keeps uploaded datasets there; choose another name",
        );
    }
    if exp.seeds.is_empty() {
        p.add("seeds", "needs at least one seed, e.g. seeds = [0]");
    }
    if exp.seeds.iter().collect::<BTreeSet<_>>().len() != exp.seeds.len() {
        p.add("seeds", "lists a seed twice");
    }
    check_data(exp, &mut p);
    check_model(exp, &mut p);
    check_training(exp, &mut p);
    check_al(exp, &mut p);
    check_labeller(exp, &mut p);
    check_eval(exp, known_metrics, &mut p);
    check_strategies(exp, &mut p);
    p.0
}
