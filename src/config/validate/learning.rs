//! `[lora]`, `[train]`, `[al]`, `[eval]`, `[sandbox]` and `[[strategy]]`: how the model
//! learns, when the loop stops, what is measured and what is compared.
use std::collections::BTreeSet;

use super::labeller::check_judge;
use super::Problems;
use crate::config::diagnose::did_you_mean;
use crate::config::labeller::LabellerKind;
use crate::config::Experiment;

pub(super) fn check_training(exp: &Experiment, p: &mut Problems) {
    let l = &exp.lora;
    p.positive("lora.r", l.r);
    p.positive_finite("lora.alpha", l.alpha);
    p.fraction("lora.dropout", l.dropout, true, false);
    if l.target_modules.is_empty() {
        p.add(
            "lora.target_modules",
            "needs at least one module name, e.g. [\"q_proj\", \"v_proj\"]",
        );
    }
    let known = &crate::models::decoder::LINEAR_NAMES;
    for m in &l.target_modules {
        if !known.contains(&m.as_str()) {
            let hint = did_you_mean(m, known);
            p.add(
                "lora.target_modules",
                format!(
                    "unknown module `{m}`; {hint}LoRA can target {}",
                    known.join(", ")
                ),
            );
        }
    }
    let t = &exp.train;
    p.positive_finite("train.learning_rate", t.learning_rate);
    p.positive("train.epochs", t.epochs);
    p.positive("train.batch_size", t.batch_size);
    p.positive("train.grad_accum", t.grad_accum);
    p.fraction("train.warmup_ratio", t.warmup_ratio, true, true);
    p.non_negative("train.weight_decay", t.weight_decay);
    p.non_negative("train.max_grad_norm", t.max_grad_norm);
    if t.max_seq_len < 2 {
        p.add(
            "train.max_seq_len",
            format!(
                "must be at least 2 (a prompt token and a target token; got {})",
                t.max_seq_len
            ),
        );
    }
    if let Some(f) = t.dev_fraction {
        p.fraction("train.dev_fraction", f, false, false);
    }
    if let Some(n) = t.patience {
        p.positive("train.patience", n);
        if t.dev_fraction.is_none() {
            p.add(
                "train.patience",
                "early stopping needs held-out data: also set train.dev_fraction",
            );
        }
    }
}

pub(super) fn check_al(exp: &Experiment, p: &mut Problems) {
    let a = &exp.al;
    p.size("al.init_size", &a.init_size);
    p.size("al.query_size", &a.query_size);
    if let Some(n) = a.iterations {
        p.positive("al.iterations", n);
    }
    if let Some(n) = a.label_budget {
        p.positive("al.label_budget", n);
        if let crate::config::Size::Count(init) = a.init_size {
            if n > 0 && n < init {
                p.add(
                    "al.label_budget",
                    format!(
                        "is {n}, fewer than al.init_size = {init}: the run would stop after a \
                         cut-down initial set, with no query at all; raise label_budget or \
                         lower init_size"
                    ),
                );
            }
        }
    }
    if let Some(m) = a.money_budget {
        p.positive_finite("al.money_budget", m);
        // Only the LLM labeller charges: gold, local and human labels cost nothing.
        let priced = exp.labeller.kind == LabellerKind::Llm
            && (exp.labeller.price_input_per_mtok > 0.0
                || exp.labeller.price_output_per_mtok > 0.0);
        if !priced
            && a.iterations.is_none()
            && a.label_budget.is_none()
            && a.required_performance.is_empty()
        {
            p.add("al.money_budget", "is the only stopping criterion but labels cost nothing (only labeller.kind = \"llm\" with labeller prices > 0 charges): set the prices or another criterion");
        }
    }
    if a.iterations.is_none()
        && a.label_budget.is_none()
        && a.money_budget.is_none()
        && a.required_performance.is_empty()
    {
        p.add("al", "needs a stopping criterion: set al.iterations, al.label_budget, al.money_budget or al.required_performance");
    }
    for (metric, v) in &a.required_performance {
        if !exp.eval.metrics.contains(metric) {
            p.add(
                format!("al.required_performance.{metric}"),
                format!(
                    "`{metric}` is not computed: add it to eval.metrics ({})",
                    exp.eval.metrics.join(", ")
                ),
            );
        }
        if !v.is_finite() {
            p.add(
                format!("al.required_performance.{metric}"),
                "must be a finite number",
            );
        }
    }
}

pub(super) fn check_eval(exp: &Experiment, known: Option<&[&str]>, p: &mut Problems) {
    let e = &exp.eval;
    if e.metrics.is_empty() {
        p.add(
            "eval.metrics",
            "needs at least one metric, e.g. [\"rouge2\"]",
        );
    }
    let mut seen = BTreeSet::new();
    for m in &e.metrics {
        if !seen.insert(m) {
            p.add("eval.metrics", format!("lists `{m}` twice"));
        }
        if let Some(known) = known {
            if !known.contains(&m.as_str()) {
                let hint = did_you_mean(m, known);
                p.add(
                    "eval.metrics",
                    format!(
                        "unknown metric `{m}`; {hint}known metrics: {}",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    p.positive("eval.batch_size", e.batch_size);
    check_judge(exp, p);
    let s = &exp.sandbox;
    p.positive("sandbox.max_operations", s.max_operations);
    p.positive("sandbox.max_call_levels", s.max_call_levels);
    p.positive("sandbox.max_string_size", s.max_string_size);
    p.positive("sandbox.max_array_size", s.max_array_size);
    p.positive("sandbox.max_map_size", s.max_map_size);
}

pub(super) fn check_strategies(exp: &Experiment, p: &mut Problems) {
    if exp.strategies.is_empty() {
        p.add("strategy", "no strategies: add at least one [[strategy]] table with a name, e.g. name = \"random\"");
    }
    let mut keys = BTreeSet::new();
    for (i, s) in exp.strategies.iter().enumerate() {
        let at = format!("strategy[{i}]");
        if s.name.is_empty() && s.script.is_none() {
            p.add(
                format!("{at}.name"),
                "is required: `name = \"idds\"` runs strategies/idds.rhai; `script = \"path/to/x.rhai\"` runs that file (named `x` unless `name` is given)",
            );
            continue;
        }
        p.name(&format!("{at}.name"), &s.name, "the strategy name");
        if let Some(label) = &s.label {
            p.name(&format!("{at}.label"), label, "the strategy label");
        }
        if !keys.insert(s.key()) {
            p.add(
                format!("{at}.name"),
                format!(
                    "strategy `{}` appears twice: give one a different `label`",
                    s.key()
                ),
            );
        }
        if let Some(size) = &s.pool_subsample {
            p.size(&format!("{at}.pool_subsample"), size);
        }
        if let Some(v) = s.params.get("initial") {
            if !matches!(v.as_str(), Some("strategy" | "random")) {
                p.add(
                    format!("{at}.params.initial"),
                    format!("is {v}: write \"strategy\" (the strategy picks the initial set from the base model) or \"random\" (drawn from the seed)"),
                );
            }
        }
    }
}
