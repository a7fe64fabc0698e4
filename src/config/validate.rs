//! Semantic checks serde cannot express: ranges, combinations, a stopping criterion, metric
//! names. All problems are reported at once, each naming its key, file and line.
use std::collections::BTreeSet;

use super::diagnose::{did_you_mean, location};
use super::labeller::{LabellerKind, Provider};
use super::{Experiment, Size};

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
}

fn report(exp: &Experiment, problems: Vec<Problem>) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            format!(
                "`{}` in {}: {}",
                p.key,
                location(exp.source.as_ref(), &p.key),
                p.message
            )
        })
        .collect();
    anyhow::bail!("{}", lines.join("\n"))
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
    fn positive<T: PartialOrd + Default + std::fmt::Display>(&mut self, key: &str, v: T) {
        // Written as "not greater" so that NaN (which TOML allows as `nan`) is rejected too.
        if v.partial_cmp(&T::default()) != Some(std::cmp::Ordering::Greater) {
            self.add(key, format!("must be greater than 0 (got {v})"));
        }
    }
    fn positive_finite(&mut self, key: &str, v: f64) {
        if !(v > 0.0 && v.is_finite()) {
            self.add(
                key,
                format!("must be a finite number greater than 0 (got {v})"),
            );
        }
    }
    fn non_negative(&mut self, key: &str, v: f64) {
        if !(v >= 0.0 && v.is_finite()) {
            self.add(key, format!("must be a finite number ≥ 0 (got {v})"));
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
            self.add(key, format!("must be in {l}, {h} (got {v})"));
        }
    }
    fn size(&mut self, key: &str, size: &Size) {
        match *size {
            Size::Count(0) => self.add(key, "must be at least 1"),
            Size::Fraction(f) if !(f > 0.0 && f <= 1.0) => self.add(
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
            self.add(
                key,
                format!("{what} `{v}` must be non-empty and use only letters, digits, `-`, `_`, `.` (it names a results folder)"),
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

fn check_data(exp: &Experiment, p: &mut Problems) {
    let d = &exp.data;
    if d.path.as_os_str().is_empty() {
        p.add(
            "data.path",
            "is required: a dataset folder, a data file or a Hugging Face hub snapshot folder",
        );
    }
    for (key, v) in [
        ("data.input_field", &d.input_field),
        ("data.output_field", &d.output_field),
    ] {
        if v.trim().is_empty() {
            p.add(key, "must name a field of the data rows");
        }
    }
    if d.reference_fields.iter().any(|f| f.trim().is_empty()) {
        p.add("data.reference_fields", "contains an empty field name");
    }
    if let Some(r) = d.test_ratio {
        p.fraction("data.test_ratio", r, false, false);
        if d.test.is_some() {
            p.add(
                "data.test_ratio",
                "set either data.test (a file) or data.test_ratio (split from train), not both",
            );
        }
    }
    if let Some(r) = d.dev_ratio {
        p.fraction("data.dev_ratio", r, false, false);
        if d.dev.is_some() {
            p.add(
                "data.dev_ratio",
                "set either data.dev (a file) or data.dev_ratio (split from train), not both",
            );
        }
    }
    if d.test_ratio.unwrap_or(0.0) + d.dev_ratio.unwrap_or(0.0) >= 1.0 {
        p.add(
            "data.dev_ratio",
            "data.test_ratio + data.dev_ratio must leave some rows for training (sum < 1)",
        );
    }
    if let Some(n) = d.test_size {
        p.positive("data.test_size", n);
    }
    if let Some(n) = d.pool_size {
        p.positive("data.pool_size", n);
    }
    if let Some(n) = d.max_input_chars {
        p.positive("data.max_input_chars", n);
    }
    if !d.input_template.contains("{input}") {
        p.add(
            "data.input_template",
            "must contain `{input}` where the example's input goes",
        );
    }
    // Only `{input}` is filled in (braces are not escaped: `{{` stays `{{`); any other
    // `{name}` would reach the model as written.
    let placeholder = regex::Regex::new(r"\{([A-Za-z_][A-Za-z0-9_]*)\}").expect("a valid regex");
    let mut others: Vec<&str> = placeholder
        .captures_iter(&d.input_template)
        .filter_map(|c| c.get(1).map(|m| m.as_str()))
        .filter(|name| *name != "input")
        .collect();
    others.dedup();
    if !others.is_empty() {
        p.add(
            "data.input_template",
            format!(
                "has placeholder(s) {} but only `{{input}}` is filled in; the others would be sent to the model as written: remove them or write the text itself",
                others
                    .iter()
                    .map(|n| format!("`{{{n}}}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
}

fn check_model(exp: &Experiment, p: &mut Problems) {
    let m = &exp.model;
    if m.path.is_some() && m.hub_id.is_some() {
        p.add(
            "model.path",
            "set either model.path (local) or model.hub_id (Hugging Face hub), not both",
        );
    }
    if m.path.is_none() && m.hub_id.is_none() && m.name.trim().is_empty() {
        p.add(
            "model.name",
            "is empty: name a cached model, or set model.path or model.hub_id",
        );
    }
    if m.gguf_file.is_some() && m.hub_id.is_none() && m.path.is_none() {
        p.add(
            "model.gguf_file",
            "needs model.hub_id or model.path (a folder) to find the file in",
        );
    }
    p.positive("model.max_input_tokens", m.max_input_tokens);
    p.positive("model.max_new_tokens", m.max_new_tokens);
    p.positive("model.batch_size", m.batch_size);
    let e = &exp.encoder;
    if e.path.is_some() && e.hub_id.is_some() {
        p.add(
            "encoder.path",
            "set either encoder.path or encoder.hub_id, not both",
        );
    }
    p.positive("encoder.batch_size", e.batch_size);
}

fn check_training(exp: &Experiment, p: &mut Problems) {
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

fn check_al(exp: &Experiment, p: &mut Problems) {
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

/// An environment variable name as keys are conventionally stored: capitals, digits and `_`,
/// not starting with a digit, at most 64 characters. Stricter than the shell on purpose: API
/// keys are mostly lower-case (`sk-…`, `gsk_…`, `hf_…`, hex) or long, so a pasted key fails
/// here instead of being written into every results folder's config.toml.
fn looks_like_env_name(v: &str) -> bool {
    let mut chars = v.chars();
    v.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// A model name with a character no model name has: whitespace, a control character or an
/// invisible one (zero-width space, byte-order mark), usually pasted along with the name.
fn odd_char_in_model_name(name: &str) -> Option<char> {
    name.chars().find(|&c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
    })
}

fn check_model_name(key: &str, name: &str, p: &mut Problems) {
    if let Some(c) = odd_char_in_model_name(name) {
        p.add(
            key,
            format!(
                "contains the character U+{:04X}, which no model name has (pasted along with it?): retype the name",
                c as u32
            ),
        );
    }
}

fn kind_name(kind: LabellerKind) -> &'static str {
    match kind {
        LabellerKind::Golden => "golden",
        LabellerKind::Llm => "llm",
        LabellerKind::Local => "local",
        LabellerKind::Human => "human",
    }
}

fn check_labeller(exp: &Experiment, p: &mut Problems) {
    let l = &exp.labeller;
    // Settings of another kind of labeller are a sign the kind line is missing: without it the
    // run would silently label with the dataset's gold outputs.
    let llm_only = [
        ("labeller.provider", l.provider.is_some()),
        ("labeller.base_url", l.base_url.is_some()),
        ("labeller.api_key_env", l.api_key_env.is_some()),
        ("labeller.batch_api", l.batch_api),
        (
            "labeller.price_input_per_mtok",
            l.price_input_per_mtok != 0.0,
        ),
        (
            "labeller.price_output_per_mtok",
            l.price_output_per_mtok != 0.0,
        ),
        (
            "labeller.model",
            l.model.is_some() && matches!(l.kind, LabellerKind::Golden | LabellerKind::Human),
        ),
    ];
    if l.kind != LabellerKind::Llm {
        for (key, set) in llm_only {
            if set {
                p.add(
                    key,
                    format!(
                        "is a setting of the LLM labeller, but labeller.kind is \"{}\"{}: add kind = \"llm\" to [labeller], or remove it",
                        kind_name(l.kind),
                        if l.kind == LabellerKind::Golden { " (the default)" } else { "" }
                    ),
                );
            }
        }
    }
    if l.kind == LabellerKind::Local && l.model.is_none() {
        p.add(
            "labeller.model",
            "is required for kind = \"local\": a models-cache name, a .gguf file, a model folder or a hub id",
        );
    }
    if let Some(m) = &l.model {
        check_model_name("labeller.model", m, p);
    }
    if l.batch_api && l.provider == Some(Provider::Anthropic) {
        p.add(
            "labeller.batch_api",
            "is supported for OpenAI-compatible providers only: set it to false for provider = \"anthropic\"",
        );
    }
    if l.kind == LabellerKind::Llm {
        if l.provider.is_none() {
            p.add(
                "labeller.provider",
                "is required for kind = \"llm\": openai, anthropic or custom",
            );
        }
        if l.model.is_none() {
            p.add(
                "labeller.model",
                "is required for kind = \"llm\" (the provider's model name)",
            );
        }
        if l.provider == Some(Provider::Custom) && l.base_url.is_none() {
            p.add("labeller.base_url", "is required for provider = \"custom\"");
        }
    }
    check_client(
        "labeller",
        &ClientSettings {
            provider: l.provider,
            api_key_env: l.api_key_env.as_deref(),
            base_url: l.base_url.as_deref(),
            temperature: l.temperature,
            max_tokens: l.max_tokens,
            prices: (l.price_input_per_mtok, l.price_output_per_mtok),
            concurrency: l.concurrency,
            timeout_s: l.timeout_s,
        },
        p,
    );
}

/// The HTTP client settings the LLM labeller and the LLM judge share.
struct ClientSettings<'a> {
    provider: Option<Provider>,
    api_key_env: Option<&'a str>,
    base_url: Option<&'a str>,
    temperature: f64,
    max_tokens: usize,
    prices: (f64, f64),
    concurrency: usize,
    timeout_s: u64,
}

fn check_client(table: &str, c: &ClientSettings<'_>, p: &mut Problems) {
    if let Some(env) = c.api_key_env {
        if !looks_like_env_name(env) {
            p.add(format!("{table}.api_key_env"), "must be the NAME of an environment variable holding the key, in capitals (like OPENAI_API_KEY), never the key itself");
        }
    }
    if let Some(url) = c.base_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            p.add(
                format!("{table}.base_url"),
                format!("`{url}` must start with http:// or https://"),
            );
        }
    }
    p.non_negative(&format!("{table}.temperature"), c.temperature);
    let most = if c.provider == Some(Provider::Anthropic) {
        1.0
    } else {
        2.0
    };
    if c.temperature > most {
        p.add(
            format!("{table}.temperature"),
            format!(
                "{} is above {most}, the most the provider accepts",
                c.temperature
            ),
        );
    }
    p.positive(&format!("{table}.max_tokens"), c.max_tokens);
    p.non_negative(&format!("{table}.price_input_per_mtok"), c.prices.0);
    p.non_negative(&format!("{table}.price_output_per_mtok"), c.prices.1);
    p.positive(&format!("{table}.concurrency"), c.concurrency);
    p.positive(&format!("{table}.timeout_s"), c.timeout_s);
}

fn check_judge(exp: &Experiment, p: &mut Problems) {
    let uses_judge = exp.eval.metrics.iter().any(|m| m == "llm_judge");
    let Some(j) = &exp.eval.judge else {
        if uses_judge {
            p.add(
                "eval.metrics",
                "lists `llm_judge`, which needs an [eval.judge] table naming the judge LLM \
                 (provider, model, and base_url for custom servers)",
            );
        }
        return;
    };
    if j.model.is_empty() {
        p.add(
            "eval.judge.model",
            "is required (the provider's model name)",
        );
    }
    check_model_name("eval.judge.model", &j.model, p);
    if j.provider == Provider::Custom && j.base_url.is_none() {
        p.add(
            "eval.judge.base_url",
            "is required for provider = \"custom\"",
        );
    }
    check_client(
        "eval.judge",
        &ClientSettings {
            provider: Some(j.provider),
            api_key_env: j.api_key_env.as_deref(),
            base_url: j.base_url.as_deref(),
            temperature: j.temperature,
            max_tokens: j.max_tokens,
            prices: (j.price_input_per_mtok, j.price_output_per_mtok),
            concurrency: j.concurrency,
            timeout_s: j.timeout_s,
        },
        p,
    );
    if let Some(b) = j.money_budget {
        p.non_negative("eval.judge.money_budget", b);
    }
}

fn check_eval(exp: &Experiment, known: Option<&[&str]>, p: &mut Problems) {
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

fn check_strategies(exp: &Experiment, p: &mut Problems) {
    if exp.strategies.is_empty() {
        p.add("strategy", "no strategies: add at least one [[strategy]] table with a name, e.g. name = \"random\"");
    }
    let mut keys = BTreeSet::new();
    for (i, s) in exp.strategies.iter().enumerate() {
        let at = format!("strategy[{i}]");
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
