//! The LLM labeller and its client, which sends chat requests with a money budget, a label
//! cache, retries and a concurrency limit. Settings are in `llm_config.rs`; live sending in
//! `live.rs`; worst cases and billed usage in `billing.rs`; the wire formats in `openai.rs`,
//! `anthropic.rs` and `batch.rs`.
use super::anthropic::AnthropicApi;
use super::batch::BatchApi;
use super::budget::{Budget, Prices, TokenCounter};
use super::cache::{CachedReply, LabelCache};
use super::openai::OpenAiEndpoint;
use super::prompt::{clean_reply, ChatRequest, ReplyPart};
use super::refusals::Refusals;
use super::retry::{CallError, RetryPolicy};
use super::spend_log::SpendLog;
use super::{Label, LabelOutcome, Labeller};
use crate::data::render::render_input;
use crate::data::Example;
use anyhow::{anyhow, Context, Result};
use std::sync::Mutex;
use std::time::Duration;

pub use super::llm_config::{ApiKey, LlmLabellerConfig, Provider, Role};

/// Token counts a server reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Every input token billed, those read from or written to a prompt cache included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of `input_tokens`, those read from the provider's prompt cache (OpenAI's
    /// `prompt_tokens_details.cached_tokens`, Anthropic's `cache_read_input_tokens`).
    pub cached_input_tokens: u64,
    /// Of `input_tokens`, those written to it (Anthropic's `cache_creation_input_tokens`).
    pub cache_write_tokens: u64,
}

/// A provider's reply to one request, before any clean-up.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub text: String,
    pub usage: Option<Usage>,
    /// The reply stopped at the request's `max_tokens` (OpenAI `finish_reason: "length"`,
    /// Anthropic `stop_reason: "max_tokens"`): the label may be cut short.
    pub cut_off: bool,
    /// The model refused, or the provider's filter stopped the reply: OpenAI's
    /// `message.refusal` (with no content) or `finish_reason: "content_filter"`, Anthropic's
    /// `stop_reason: "refusal"`. What it said, or what stopped it. Billed, but no label, and
    /// at temperature 0 asking again would be refused (and billed) again (see `refusals.rs`).
    pub refusal: Option<String>,
}

/// One chat request over one provider's wire format.
pub trait ChatApi: Send + Sync {
    fn complete(&self, req: &ChatRequest) -> std::result::Result<Completion, CallError>;
}

/// A reply with what it cost. `text` is raw (see [`clean_reply`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub text: String,
    /// Dollars this reply counts for: paid in this call, or, for a cache hit, its tokens at
    /// the current prices and mode (0 when the client treats hits as free, see
    /// [`LlmClient::treat_cache_hits_as_free`]).
    pub cost: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub seconds: f64,
    pub cached: bool,
}

/// Replies to a prefix of the requests; `budget_reached` says why the rest got none.
#[derive(Clone, Debug, PartialEq)]
pub struct Replies {
    pub replies: Vec<Reply>,
    pub budget_reached: bool,
}

/// Sends chat requests within a money budget, through the label cache, with retries.
pub struct LlmClient {
    pub(super) provider: Provider,
    pub(super) model: String,
    /// `base_url` as part of the cache key (see `LlmLabellerConfig::cache_endpoint`).
    endpoint: String,
    pub(super) api: Box<dyn ChatApi>,
    pub(super) batch: Option<BatchApi>,
    pub(super) prices: Prices,
    pub(super) batch_discount: f64,
    pub(super) budget: Budget,
    pub(super) cache: LabelCache,
    /// Requests refused before, in the label cache folder.
    pub(super) refusals: Refusals,
    /// The cell's spend log, when the client labels for a cell (see `spend_log.rs`).
    pub(super) spend_log: Option<SpendLog>,
    /// What an earlier run logged as spent on no label that the cell's state does not count
    /// yet, charged to the next call.
    pub(super) unrecorded: Mutex<f64>,
    pub(super) retry: RetryPolicy,
    pub(super) concurrency: usize,
    pub(super) counter: Option<Box<TokenCounter>>,
    /// Whether a cache hit counts against the budget at what its tokens cost now (see
    /// [`LlmClient::treat_cache_hits_as_free`]).
    pub(super) charge_cache_hits: bool,
    /// Sampling settings of the config, for requests the client builds itself (the judge).
    pub(super) temperature: f64,
    pub(super) max_tokens: u32,
    /// See [`LlmClient::unlabelled_spent`].
    pub(super) unlabelled: Mutex<f64>,
    /// Replies that stopped at `max_tokens`, counted for [`LlmClient::cut_off_replies`].
    cut_off: std::sync::atomic::AtomicUsize,
    /// See [`LlmClient::replies_without_usage`].
    pub(super) without_usage: std::sync::atomic::AtomicUsize,
    /// What the client is for, as its errors and warnings name the settings to change.
    pub(super) role: Role,
    /// How many times the worst-case input estimate the server has billed at most so far (1
    /// until it bills more than the estimate; see [`LlmClient::worst_case`]).
    pub(super) input_scale: Mutex<f64>,
}

impl LlmClient {
    /// Build the client of `cfg`: reads the API key from its environment variable.
    pub fn from_config(cfg: &LlmLabellerConfig) -> Result<Self> {
        cfg.validate()?;
        let key = cfg.key_env().map(|v| ApiKey::from_env(&v)).transpose()?;
        let timeout = Duration::from_secs_f64(cfg.timeout_s);
        let openai_base =
            |default: &str| cfg.base_url.clone().unwrap_or_else(|| default.to_string());
        let api: Box<dyn ChatApi> = match cfg.provider {
            Provider::Anthropic => {
                let base = cfg
                    .base_url
                    .clone()
                    .unwrap_or_else(|| super::llm_config::ANTHROPIC_URL.into());
                let key = key.clone().ok_or_else(|| {
                    anyhow!(
                        "labeller.api_key_env is required: base_url {base} is not Anthropic's API, \
                         and ANTHROPIC_API_KEY is sent only there; name the variable holding \
                         this server's key"
                    )
                })?;
                Box::new(AnthropicApi::new(&base, &cfg.model, key, timeout))
            }
            Provider::Openai | Provider::Custom => Box::new(OpenAiEndpoint::new(
                &openai_base(super::llm_config::OPENAI_URL),
                &cfg.model,
                key.clone(),
                timeout,
                cfg.provider == Provider::Openai,
            )),
        };
        let mut client = Self::with_api(cfg, api)?;
        if cfg.batch_api {
            let endpoint = OpenAiEndpoint::new(
                &openai_base(super::llm_config::OPENAI_URL),
                &cfg.model,
                key,
                timeout,
                cfg.provider == Provider::Openai,
            );
            client.batch = Some(BatchApi::new(
                endpoint,
                Duration::from_secs_f64(cfg.batch_poll_s),
                Duration::from_secs_f64(cfg.batch_poll_max_s),
            ));
        }
        Ok(client)
    }

    /// A client over any [`ChatApi`] (tests use an in-process one).
    pub fn with_api(cfg: &LlmLabellerConfig, api: Box<dyn ChatApi>) -> Result<Self> {
        cfg.validate()?;
        let dir = cfg.cache_dir();
        let in_cache_folder = || {
            format!(
                "label cache {} (set by ${}, else the default folder)",
                dir.display(),
                super::cache::CACHE_ENV
            )
        };
        Ok(LlmClient {
            provider: cfg.provider,
            model: cfg.model.clone(),
            endpoint: cfg.cache_endpoint(),
            api,
            batch: None,
            prices: cfg.prices(),
            batch_discount: cfg.batch_discount,
            budget: Budget::new(cfg.money_budget),
            cache: LabelCache::open(&dir).with_context(in_cache_folder)?,
            refusals: Refusals::open(&dir).with_context(in_cache_folder)?,
            spend_log: None,
            unrecorded: Mutex::new(0.0),
            retry: RetryPolicy {
                max_retries: cfg.max_retries,
                base: Duration::from_secs_f64(cfg.retry_base_s),
                max_delay: Duration::from_secs_f64(cfg.retry_max_s),
            },
            concurrency: cfg.concurrency,
            counter: None,
            charge_cache_hits: true,
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens,
            unlabelled: Mutex::new(0.0),
            cut_off: std::sync::atomic::AtomicUsize::new(0),
            without_usage: std::sync::atomic::AtomicUsize::new(0),
            role: Role::Labeller,
            input_scale: Mutex::new(1.0),
        })
    }

    /// Say what the client is for (a labeller unless told), so that its errors and warnings
    /// name that role's settings.
    pub fn set_role(&mut self, role: Role) {
        self.role = role;
    }

    /// Count input tokens with the model's tokenizer instead of the chars/3 estimate.
    pub fn set_token_counter(&mut self, counter: Box<TokenCounter>) {
        self.counter = Some(counter);
    }

    /// By default a label found in the cache counts against the budget (and in the replies'
    /// costs) at what its tokens cost now ([`LlmClient::cached_cost`]), and needs the same room in the budget as a call:
    /// an AL run's money curve and the point where its budget stops it must not depend on
    /// what earlier runs left in the cache (the dollars are still paid only once). The judge,
    /// whose budget caps the dollars one `lab run` pays, treats hits as free.
    pub fn treat_cache_hits_as_free(&mut self) {
        self.charge_cache_hits = false;
    }

    pub(super) fn charges_cache_hits(&self) -> bool {
        self.charge_cache_hits
    }

    /// What a cache hit counts for when hits are charged: its own tokens at this client's
    /// prices, in this client's mode (batch-discounted or live). Not the dollars it was
    /// bought for, which depend on the prices and mode of that run and include its empty
    /// attempts: a run's money curve must not depend on what the cache holds, and a hit
    /// must not count for more than the worst case reserved for it.
    pub(super) fn cached_cost(&self, hit: &CachedReply) -> f64 {
        let prices = match self.batch {
            Some(_) => self.prices.scaled(self.batch_discount),
            None => self.prices,
        };
        prices.cost(hit.input_tokens, hit.output_tokens)
    }

    /// The reply a cache hit gives: its text, and what it counts for ([`Self::cached_cost`]).
    pub(super) fn reply_from_cache(&self, hit: CachedReply) -> Reply {
        let charged = self.charge_cache_hits;
        Reply {
            cost: if charged { self.cached_cost(&hit) } else { 0.0 },
            text: hit.text,
            input_tokens: if charged { hit.input_tokens } else { 0 },
            output_tokens: if charged { hit.output_tokens } else { 0 },
            seconds: 0.0,
            cached: true,
        }
    }

    /// `provider:model`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.provider.name(), self.model)
    }

    /// Dollars counted so far by this client: paid, plus cache hits at their price unless
    /// hits are free.
    pub fn spent(&self) -> f64 {
        self.budget.spent()
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    pub fn cache(&self) -> &LabelCache {
        &self.cache
    }

    /// Replies so far that stopped at `max_tokens`. They are kept as labels (they were paid
    /// for, and a label may simply be long), with one warning on the first.
    pub fn cut_off_replies(&self) -> usize {
        self.cut_off.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn note_cut_off(&self, max_tokens: u32) {
        if self
            .cut_off
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            let key = self.role.max_tokens_key();
            let kept = match self.role {
                Role::Labeller => "is kept cut short as a label; raise it if labels are longer",
                Role::Judge => {
                    "is kept cut short; raise it if the judge reasons before its score (a \
                     reply cut short is no score)"
                }
            };
            eprintln!("warning: an LLM reply stopped at {key} = {max_tokens} and {kept}");
        }
    }

    pub(super) fn key_of(&self, req: &ChatRequest) -> String {
        req.cache_key_at(self.provider.name(), &self.model, &self.endpoint)
    }

    /// Send every request (in order, `concurrency` at a time; or as one batch job), paying
    /// only for cache misses. Stops before the first request whose worst case no longer fits
    /// the budget; everything before it is returned.
    pub fn complete_all(&self, requests: &[ChatRequest]) -> Result<Replies> {
        self.charge_unrecorded();
        let out = match &self.batch {
            Some(batch) => super::batch_jobs::complete_batch(self, batch, requests),
            None => self.complete_live(requests),
        };
        // The hit counts are for `lab labels stats` only: a stats.json that cannot be read or
        // written must not turn the labels just paid for into an error.
        if let Err(e) = self.cache.save_counts() {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                eprintln!(
                    "warning: the label cache's hit counts were not saved ({e:#}); labels are \
                     unaffected; delete {} to start the counts over",
                    self.cache.dir().join(super::cache::STATS_FILE).display()
                )
            });
        }
        out
    }

    /// Count money spent on attempts that bought no label (see [`LlmClient::unlabelled_spent`]).
    pub(super) fn add_unlabelled(&self, cost: f64) {
        *lock(&self.unlabelled) += cost;
    }

    /// Dollars this client spent on attempts that bought no label: empty replies and
    /// replies that never arrived, also those before a label that came in the end (the
    /// cache keeps only a label's own tokens). A run that fails must still record them,
    /// or a resumed run would spend them again under the same budget.
    pub fn unlabelled_spent(&self) -> f64 {
        *lock(&self.unlabelled)
    }

    /// A paid reply as the label cache keeps it.
    pub(super) fn cached_reply(
        &self,
        key: &str,
        text: &str,
        usage: Usage,
        cost: f64,
    ) -> CachedReply {
        CachedReply {
            key: key.to_string(),
            provider: self.provider.name().to_string(),
            model: self.model.clone(),
            text: text.to_string(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost,
        }
    }

    /// Put a paid reply in the cache.
    pub(super) fn record(&self, key: &str, text: &str, usage: Usage, cost: f64) -> Result<()> {
        self.cache.insert(self.cached_reply(key, text, usage, cost))
    }
}

/// The context of an error that ended a call at request `index` (0-based), so the labeller
/// can name the item.
#[derive(Debug)]
pub struct RequestFailed {
    pub index: usize,
    pub(super) message: String,
}

impl std::fmt::Display for RequestFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Lock a mutex whose data stays consistent even if a holder panicked (plain slots/counters).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Labels with an LLM: the labelling prompt per item, the client, and the reply clean-up.
pub struct LlmLabeller {
    client: LlmClient,
    system_prompt: String,
    few_shot: usize,
    reply: ReplyPart,
    temperature: f64,
    max_tokens: u32,
    max_input_chars: Option<usize>,
}

impl LlmLabeller {
    pub fn from_config(cfg: &LlmLabellerConfig) -> Result<Self> {
        Ok(Self::with_client(cfg, LlmClient::from_config(cfg)?))
    }

    pub fn with_client(cfg: &LlmLabellerConfig, client: LlmClient) -> Self {
        LlmLabeller {
            client,
            system_prompt: cfg.system_prompt.clone(),
            few_shot: cfg.few_shot,
            reply: cfg.reply,
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens,
            max_input_chars: cfg.max_input_chars,
        }
    }

    pub fn client(&self) -> &LlmClient {
        &self.client
    }

    pub fn client_mut(&mut self) -> &mut LlmClient {
        &mut self.client
    }

    /// The request that labels `input`, showing the first `few_shot` examples given. Inputs
    /// are cut to `max_input_chars` as `data.max_input_chars` cuts them everywhere else.
    pub fn request(&self, input: &str, few_shot: &[Example]) -> ChatRequest {
        let cut = |text: &str| render_input("{input}", text, self.max_input_chars);
        let shown: Vec<Example> = few_shot[..self.few_shot.min(few_shot.len())]
            .iter()
            .map(|ex| Example {
                input: cut(&ex.input),
                ..ex.clone()
            })
            .collect();
        ChatRequest::for_label(
            &self.system_prompt,
            &shown,
            &cut(input),
            self.temperature,
            self.max_tokens,
        )
    }
}

impl Labeller for LlmLabeller {
    fn name(&self) -> String {
        self.client.name()
    }

    fn label(&mut self, items: &[Example], few_shot: &[Example]) -> Result<LabelOutcome> {
        let requests: Vec<ChatRequest> = items
            .iter()
            .map(|ex| self.request(&ex.input, few_shot))
            .collect();
        let out = self.client.complete_all(&requests).map_err(|e| {
            let Some(failed) = e.downcast_ref::<RequestFailed>() else {
                return e;
            };
            let id = items.get(failed.index).map_or(0, |ex| ex.id);
            let text = format!("{e:#}");
            let refused = ["HTTP 400", "HTTP 413", "HTTP 422", "context"]
                .iter()
                .any(|w| text.contains(w));
            let advice = if refused {
                let cut = match self.max_input_chars {
                    Some(n) => format!("now {n}"),
                    None => "not set".to_string(),
                };
                format!(
                    ": if the server refused it as too long for the model's context, set \
                     data.max_input_chars lower ({cut}) or use a model with a longer context"
                )
            } else {
                String::new()
            };
            e.context(format!(
                "labelling item id {id} failed, and a rerun selects it again{advice}"
            ))
        })?;
        let labels = items
            .iter()
            .zip(out.replies)
            .map(|(ex, r)| Label {
                id: ex.id,
                output: clean_reply(&r.text, self.reply),
                cost: r.cost,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                seconds: r.seconds,
                edits: 0,
            })
            .collect();
        Ok(if out.budget_reached {
            LabelOutcome::BudgetReached(labels)
        } else {
            LabelOutcome::Complete(labels)
        })
    }

    fn spent(&self) -> f64 {
        self.client.spent()
    }

    fn unlabelled_spent(&self) -> f64 {
        self.client.unlabelled_spent()
    }
}
