//! `[labeller]` and `[eval.judge]`: who labels and who judges, and the HTTP client settings
//! they share.
use super::Problems;
use crate::config::labeller::{LabellerKind, Provider};
use crate::config::Experiment;

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

pub(super) fn check_labeller(exp: &Experiment, p: &mut Problems) {
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
            cache_prices: (l.price_cached_input_per_mtok, l.price_cache_write_per_mtok),
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
    /// Cached input read, cache write.
    cache_prices: (Option<f64>, Option<f64>),
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
    if let Some(cached) = c.cache_prices.0 {
        p.non_negative(&format!("{table}.price_cached_input_per_mtok"), cached);
        if cached > c.prices.0 {
            p.add(
                format!("{table}.price_cached_input_per_mtok"),
                format!(
                    "{cached} is above price_input_per_mtok = {}: cached input is billed at a \
                     discount; write the provider's cached-input price, or leave the key out",
                    c.prices.0
                ),
            );
        }
    }
    if let Some(write) = c.cache_prices.1 {
        p.non_negative(&format!("{table}.price_cache_write_per_mtok"), write);
    }
    p.positive(&format!("{table}.concurrency"), c.concurrency);
    p.positive(&format!("{table}.timeout_s"), c.timeout_s);
}

pub(super) fn check_judge(exp: &Experiment, p: &mut Problems) {
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
            cache_prices: (j.price_cached_input_per_mtok, j.price_cache_write_per_mtok),
            concurrency: j.concurrency,
            timeout_s: j.timeout_s,
        },
        p,
    );
    if let Some(b) = j.money_budget {
        p.non_negative("eval.judge.money_budget", b);
    }
}
