//! Settings of the LLM labeller (the experiment's `[labeller]` table) and the API key read
//! from the environment variable they name.
use super::budget::Prices;
use super::prompt::ReplyPart;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI's API (`https://api.openai.com/v1` unless `base_url` says otherwise).
    Openai,
    /// Anthropic's messages API (`https://api.anthropic.com`).
    Anthropic,
    /// Any OpenAI-compatible server at `base_url` (llama.cpp, vLLM, …).
    Custom,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Custom => "custom",
        }
    }
}

/// The `[labeller]` settings of an LLM labeller. Prices are dollars per million tokens.
///
/// ```toml
/// provider = "openai"              # or "anthropic", or "custom" with base_url
/// model = "gpt-4o-mini"
/// api_key_env = "OPENAI_API_KEY"   # the key itself never goes in a file
/// price_input_per_mtok = 0.15
/// price_output_per_mtok = 0.60
/// money_budget = 2.0               # dollars; the run stops before exceeding it
/// few_shot = 3
/// batch_api = false                # true: one Batch API job per call, at batch_discount
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmLabellerConfig {
    pub provider: Provider,
    /// OpenAI-style servers: up to the version (`http://127.0.0.1:8080/v1`); Anthropic: the
    /// host (`https://api.anthropic.com`). Required for `custom`.
    #[serde(default)]
    pub base_url: Option<String>,
    pub model: String,
    /// Environment variable holding the API key. Default `OPENAI_API_KEY` / `ANTHROPIC_API_KEY`
    /// when requests go to that provider's own API; `custom` servers, and a `base_url` pointing
    /// elsewhere, get no key unless this is set.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub temperature: f64,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default)]
    pub price_input_per_mtok: f64,
    #[serde(default)]
    pub price_output_per_mtok: f64,
    /// Input tokens the provider read from its prompt cache (OpenAI's `cached_tokens`,
    /// Anthropic's `cache_read_input_tokens`); unset: at `price_input_per_mtok`.
    #[serde(default)]
    pub price_cached_input_per_mtok: Option<f64>,
    /// Input tokens written to Anthropic's prompt cache (`cache_creation_input_tokens`);
    /// unset: at twice `price_input_per_mtok`, the most Anthropic charges for a cache write.
    #[serde(default)]
    pub price_cache_write_per_mtok: Option<f64>,
    /// Requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Per-request timeout.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First retry wait; doubles per retry up to `retry_max_s` (jittered).
    #[serde(default = "default_retry_base_s")]
    pub retry_base_s: f64,
    #[serde(default = "default_retry_max_s")]
    pub retry_max_s: f64,
    /// Send all labels of an iteration as one OpenAI batch job instead of live requests.
    #[serde(default)]
    pub batch_api: bool,
    /// Price factor of the Batch API.
    #[serde(default = "default_batch_discount")]
    pub batch_discount: f64,
    /// First wait between batch status polls; grows 1.5× per poll up to `batch_poll_max_s`.
    #[serde(default = "default_batch_poll_s")]
    pub batch_poll_s: f64,
    #[serde(default = "default_batch_poll_max_s")]
    pub batch_poll_max_s: f64,
    /// Labeled examples shown as user/assistant turns before the input.
    #[serde(default)]
    pub few_shot: usize,
    #[serde(default = "default_system_prompt")]
    pub system_prompt: String,
    /// Which part of the reply is the label: `first_line` or `whole`.
    #[serde(default)]
    pub reply: ReplyPart,
    /// Inputs (the item's and the few-shot examples') are cut to this many characters, as
    /// the experiment's `data.max_input_chars` cuts them for the model and the annotator.
    #[serde(default)]
    pub max_input_chars: Option<usize>,
    /// Dollars this labeller may spend; `None`: unlimited.
    #[serde(default)]
    pub money_budget: Option<f64>,
    /// Label cache folder. Default `<user cache>/atgen-lab/labels`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

/// What a client is for, so that its errors and warnings name the settings to change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// `[labeller]`: labels the selected items.
    #[default]
    Labeller,
    /// `[eval.judge]`: scores test predictions (`llm_judge`).
    Judge,
}

impl Role {
    /// What the model is asked to do with an item.
    pub fn task(self) -> &'static str {
        match self {
            Role::Labeller => "label",
            Role::Judge => "score",
        }
    }

    /// What to change when the model refuses an item.
    pub fn on_refusal(self) -> &'static str {
        match self {
            Role::Labeller => {
                "take the item out of the data, or change labeller.system_prompt or labeller.model"
            }
            Role::Judge => {
                "take the item out of the test data, or change eval.judge.rubric or \
                 eval.judge.model"
            }
        }
    }

    /// The setting that bounds a reply's length.
    pub fn max_tokens_key(self) -> &'static str {
        match self {
            Role::Labeller => "labeller.max_tokens",
            Role::Judge => "eval.judge.max_tokens",
        }
    }
}

fn default_max_tokens() -> u32 {
    64
}
fn default_concurrency() -> usize {
    4
}
fn default_timeout_s() -> f64 {
    60.0
}
fn default_max_retries() -> u32 {
    6
}
fn default_retry_base_s() -> f64 {
    1.0
}
fn default_retry_max_s() -> f64 {
    60.0
}
fn default_batch_discount() -> f64 {
    0.5
}
fn default_batch_poll_s() -> f64 {
    10.0
}
fn default_batch_poll_max_s() -> f64 {
    300.0
}
fn default_system_prompt() -> String {
    "You label data for a text generation task. Reply with the output only.".into()
}

impl LlmLabellerConfig {
    /// A config with every default, for `provider` and `model`.
    pub fn new(provider: Provider, model: &str) -> Self {
        // Built as a table, not as TOML text: a model name with characters TOML strings
        // cannot hold unescaped (a pasted zero-width space, a control character) stays data.
        let mut table = toml::Table::new();
        table.insert("provider".into(), provider.name().into());
        table.insert("model".into(), model.into());
        // Every other field has a serde default, so this cannot fail.
        table.try_into().expect("defaults deserialize")
    }

    /// Check ranges and combinations; errors name the `labeller.` key and what to write.
    pub fn validate(&self) -> Result<()> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if self.model.trim().is_empty() {
            bail!("labeller.model is empty: name the model, e.g. \"gpt-4o-mini\"");
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            bail!(
                "labeller.temperature = {} is outside 0..=2",
                self.temperature
            );
        }
        if self.provider == Provider::Anthropic && self.temperature > 1.0 {
            bail!(
                "labeller.temperature = {} is above 1, the most Anthropic accepts",
                self.temperature
            );
        }
        if self.max_tokens == 0 {
            bail!("labeller.max_tokens must be at least 1");
        }
        for (key, v) in [
            ("price_input_per_mtok", self.price_input_per_mtok),
            ("price_output_per_mtok", self.price_output_per_mtok),
            ("retry_base_s", self.retry_base_s),
            ("retry_max_s", self.retry_max_s),
        ] {
            if !non_negative(v) {
                bail!("labeller.{key} = {v} must be a number >= 0");
            }
        }
        for (key, v) in [
            (
                "price_cached_input_per_mtok",
                self.price_cached_input_per_mtok,
            ),
            (
                "price_cache_write_per_mtok",
                self.price_cache_write_per_mtok,
            ),
        ] {
            if let Some(v) = v.filter(|v| !non_negative(*v)) {
                bail!(
                    "labeller.{key} = {v} must be a number >= 0 (dollars per million tokens), \
                     or left out"
                );
            }
        }
        if let Some(cached) = self.price_cached_input_per_mtok {
            if cached > self.price_input_per_mtok {
                bail!(
                    "labeller.price_cached_input_per_mtok = {cached} is above \
                     price_input_per_mtok = {}: cached input is billed at a discount (OpenAI: \
                     half or less of the input price, Anthropic: a tenth); write the provider's \
                     cached-input price, or leave the key out to count it at the input price",
                    self.price_input_per_mtok
                );
            }
        }
        for (key, v) in [
            ("timeout_s", self.timeout_s),
            ("batch_poll_s", self.batch_poll_s),
            ("batch_poll_max_s", self.batch_poll_max_s),
        ] {
            if !positive(v) {
                bail!("labeller.{key} = {v} must be a number > 0");
            }
        }
        if self.concurrency == 0 {
            bail!("labeller.concurrency must be at least 1");
        }
        if !(positive(self.batch_discount) && self.batch_discount <= 1.0) {
            bail!(
                "labeller.batch_discount = {} must be in (0, 1]",
                self.batch_discount
            );
        }
        if let Some(b) = self.money_budget {
            if !non_negative(b) {
                bail!("labeller.money_budget = {b} must be a number of dollars >= 0");
            }
        }
        if self.provider == Provider::Custom && self.base_url.is_none() {
            bail!("labeller.provider = \"custom\" needs labeller.base_url, e.g. \"http://127.0.0.1:8080/v1\"");
        }
        if self.batch_api && self.provider == Provider::Anthropic {
            bail!("labeller.batch_api is supported for OpenAI-compatible providers only; set it to false for \"anthropic\"");
        }
        Ok(())
    }

    pub fn prices(&self) -> Prices {
        Prices {
            input_per_mtok: self.price_input_per_mtok,
            output_per_mtok: self.price_output_per_mtok,
            cached_input_per_mtok: self.price_cached_input_per_mtok,
            cache_write_per_mtok: self.price_cache_write_per_mtok,
        }
    }

    /// The provider's own endpoint, used when `base_url` is not set.
    pub(super) fn official_url(&self) -> Option<&'static str> {
        match self.provider {
            Provider::Openai => Some(OPENAI_URL),
            Provider::Anthropic => Some(ANTHROPIC_URL),
            Provider::Custom => None,
        }
    }

    /// The variable the key is read from. The provider's default variable is used only when
    /// requests go to that provider: a `base_url` elsewhere must name its variable, so an
    /// OpenAI or Anthropic key is never sent to a third-party server by accident.
    pub(crate) fn key_env(&self) -> Option<String> {
        if let Some(var) = &self.api_key_env {
            return Some(var.clone());
        }
        let official = self.official_url()?;
        let goes_to_provider = self
            .base_url
            .as_deref()
            .is_none_or(|url| url.trim_end_matches('/') == official);
        goes_to_provider.then(|| match self.provider {
            Provider::Anthropic => "ANTHROPIC_API_KEY".to_string(),
            _ => "OPENAI_API_KEY".to_string(),
        })
    }

    /// The server as part of the label cache key: empty for the provider's own API, else
    /// `base_url` without credentials, query or trailing `/`, scheme and host in lower case
    /// (llama.cpp ignores the model name, so two local servers often share one).
    pub(super) fn cache_endpoint(&self) -> String {
        let Some(url) = self.base_url.as_deref().map(str::trim) else {
            return String::new();
        };
        let url = url
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .trim_end_matches('/');
        if Some(url) == self.official_url() {
            return String::new();
        }
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let mut out = format!("{}://{}", scheme.to_lowercase(), host.to_lowercase());
        if !path.is_empty() {
            out.push('/');
            out.push_str(path);
        }
        out
    }

    pub(super) fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(super::cache::default_dir)
    }
}

pub(super) const OPENAI_URL: &str = "https://api.openai.com/v1";
pub(super) const ANTHROPIC_URL: &str = "https://api.anthropic.com";

/// An API key read from the environment. Never printed: `Debug` names only the variable, and
/// [`ApiKey::redact`] removes it from any text a server echoed back.
#[derive(Clone)]
pub struct ApiKey {
    var: String,
    value: String,
}

impl ApiKey {
    pub fn from_env(var: &str) -> Result<Self> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(ApiKey {
                var: var.to_string(),
                value: v.trim().to_string(),
            }),
            Ok(_) => bail!("the environment variable {var} is empty: put the API key in it (or name another variable with this section's api_key_env)"),
            Err(_) => bail!("the environment variable {var} is not set: export {var}=<your API key> (or name another variable with this section's api_key_env)"),
        }
    }

    #[cfg(test)]
    pub(crate) fn for_tests(var: &str, value: &str) -> Self {
        ApiKey {
            var: var.into(),
            value: value.into(),
        }
    }

    pub fn var(&self) -> &str {
        &self.var
    }

    pub(super) fn expose(&self) -> &str {
        &self.value
    }

    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.value, &format!("[key from {} redacted]", self.var))
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey(from ${})", self.var)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_providers_default_key_goes_only_to_the_providers_own_api() {
        let mut openai = LlmLabellerConfig::new(Provider::Openai, "m");
        assert_eq!(openai.key_env().as_deref(), Some("OPENAI_API_KEY"));
        openai.base_url = Some(format!("{OPENAI_URL}/"));
        assert_eq!(openai.key_env().as_deref(), Some("OPENAI_API_KEY"));
        openai.base_url = Some("https://proxy.example/v1".into());
        assert_eq!(openai.key_env(), None, "no OpenAI key to a third party");
        openai.api_key_env = Some("PROXY_KEY".into());
        assert_eq!(openai.key_env().as_deref(), Some("PROXY_KEY"));

        let mut anthropic = LlmLabellerConfig::new(Provider::Anthropic, "m");
        assert_eq!(anthropic.key_env().as_deref(), Some("ANTHROPIC_API_KEY"));
        anthropic.base_url = Some("http://127.0.0.1:9/".into());
        assert_eq!(anthropic.key_env(), None);
        let err = crate::labeller::llm::LlmClient::from_config(&anthropic)
            .err()
            .expect("needs a key variable")
            .to_string();
        assert!(
            err.contains("api_key_env") && err.contains("127.0.0.1:9"),
            "{err}"
        );

        let custom = LlmLabellerConfig::new(Provider::Custom, "m");
        assert_eq!(custom.key_env(), None);
    }

    #[test]
    fn a_cached_input_price_must_be_a_discount() {
        let mut cfg = LlmLabellerConfig::new(Provider::Openai, "m");
        cfg.price_input_per_mtok = 0.15;
        cfg.price_cached_input_per_mtok = Some(0.075);
        cfg.validate().unwrap();
        assert_eq!(cfg.prices().cached_input_per_mtok, Some(0.075));
        cfg.price_cached_input_per_mtok = Some(0.3);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("labeller.price_cached_input_per_mtok = 0.3 is above")
                && err.contains("leave the key out"),
            "{err}"
        );
        cfg.price_cached_input_per_mtok = Some(f64::NAN);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("price_cached_input_per_mtok = NaN must be"),
            "{err}"
        );
        cfg.price_cached_input_per_mtok = None;
        cfg.price_cache_write_per_mtok = Some(-1.0);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("price_cache_write_per_mtok = -1 must be"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_key_names_the_variable_not_another_sections_key() {
        // The judge's section reads its key the same way: the message must not send the
        // reader to [labeller] (the caller says which section, e.g. "in [eval.judge]").
        let Err(err) = ApiKey::from_env("LAB_TEST_KEY_THAT_IS_NEVER_SET") else {
            panic!("an unset variable must be an error");
        };
        let err = err.to_string();
        assert!(
            err.contains("LAB_TEST_KEY_THAT_IS_NEVER_SET is not set")
                && err.contains("this section's api_key_env")
                && !err.contains("labeller."),
            "{err}"
        );
    }

    #[test]
    fn two_servers_answering_to_one_model_name_do_not_share_cached_labels() {
        let cache = tempfile::tempdir().unwrap();
        let server = |url: &str| {
            let mut cfg = LlmLabellerConfig::new(Provider::Custom, "local");
            cfg.base_url = Some(url.into());
            cfg.cache_dir = Some(cache.path().to_path_buf());
            cfg
        };
        assert_eq!(
            server("HTTP://user:pw@LocalHost:8080/v1/?x=1").cache_endpoint(),
            "http://localhost:8080/v1"
        );
        let mut openai = LlmLabellerConfig::new(Provider::Openai, "m");
        assert_eq!(
            openai.cache_endpoint(),
            "",
            "the provider's own API keeps old keys"
        );
        openai.base_url = Some(format!("{OPENAI_URL}/"));
        assert_eq!(openai.cache_endpoint(), "");

        let req = crate::labeller::prompt::ChatRequest {
            system: None,
            messages: vec![crate::labeller::prompt::Message::user("Label this.")],
            temperature: 0.0,
            max_tokens: 16,
        };
        let key = |cfg: &LlmLabellerConfig| {
            crate::labeller::llm::LlmClient::from_config(cfg)
                .unwrap()
                .key_of(&req)
        };
        let a = key(&server("http://127.0.0.1:8080/v1"));
        assert_eq!(a, key(&server("http://127.0.0.1:8080/v1/")));
        assert_ne!(a, key(&server("http://127.0.0.1:8081/v1")));
    }
}
