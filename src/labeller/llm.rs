//! The LLM labeller and its client, which sends chat requests with a money budget, a label
//! cache, retries and a concurrency limit. Settings are in `llm_config.rs`; the wire formats in
//! `openai.rs`, `anthropic.rs` and `batch.rs`.
use super::anthropic::AnthropicApi;
use super::batch::BatchApi;
use super::budget::{
    estimate_tokens, worst_case_cost, worst_case_input_tokens, Budget, Prices, TokenCounter,
};
use super::cache::{CachedReply, LabelCache};
use super::openai::OpenAiEndpoint;
use super::prompt::{clean_reply, strip_think, ChatRequest, ReplyPart};
use super::retry::{CallError, RetryPolicy};
use super::{Label, LabelOutcome, Labeller};
use crate::data::render::render_input;
use crate::data::Example;
use anyhow::{anyhow, Context, Result};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

pub use super::llm_config::{ApiKey, LlmLabellerConfig, Provider};

/// Token counts a server reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A provider's reply to one request, before any clean-up.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub text: String,
    pub usage: Option<Usage>,
    /// The reply stopped at the request's `max_tokens` (OpenAI `finish_reason: "length"`,
    /// Anthropic `stop_reason: "max_tokens"`): the label may be cut short.
    pub cut_off: bool,
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
    api: Box<dyn ChatApi>,
    pub(super) batch: Option<BatchApi>,
    pub(super) prices: Prices,
    pub(super) batch_discount: f64,
    pub(super) budget: Budget,
    pub(super) cache: LabelCache,
    pub(super) retry: RetryPolicy,
    concurrency: usize,
    counter: Option<Box<TokenCounter>>,
    /// Whether a cache hit counts against the budget at what its tokens cost now (see
    /// [`LlmClient::treat_cache_hits_as_free`]).
    charge_cache_hits: bool,
    /// Sampling settings of the config, for requests the client builds itself (the judge).
    pub(super) temperature: f64,
    pub(super) max_tokens: u32,
    /// See [`LlmClient::unlabelled_spent`].
    unlabelled: Mutex<f64>,
    /// Replies that stopped at `max_tokens`, counted for [`LlmClient::cut_off_replies`].
    cut_off: std::sync::atomic::AtomicUsize,
}

/// Hands out request indices in order and decides the budget stop (see `next_job`).
struct Queue {
    next: usize,
    in_flight: usize,
    stop_at: Option<usize>,
    failure: Option<(usize, anyhow::Error)>,
    /// Requests being called now, by index (see `next_job`).
    calling: Vec<usize>,
}

/// How one live request ended.
enum Called {
    /// A usable reply, the reservation still held for it, and what its empty attempts cost.
    Reply(Completion, super::budget::Reservation, f64),
    /// Failed; the reservation, if one is still held, is to be released.
    Failed(anyhow::Error, Option<super::budget::Reservation>),
    /// Empty replies spent the money the next attempt needed: stop before this request.
    OutOfMoney,
}

enum Job {
    Hit(usize, CachedReply),
    Call(usize, super::budget::Reservation),
    Done,
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
        Ok(LlmClient {
            provider: cfg.provider,
            model: cfg.model.clone(),
            endpoint: cfg.cache_endpoint(),
            api,
            batch: None,
            prices: cfg.prices(),
            batch_discount: cfg.batch_discount,
            budget: Budget::new(cfg.money_budget),
            cache: LabelCache::open(&dir).with_context(|| {
                format!(
                    "label cache {} (set by ${}, else the default folder)",
                    dir.display(),
                    super::cache::CACHE_ENV
                )
            })?,
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
        })
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
            eprintln!(
                "warning: an LLM reply stopped at max_tokens = {max_tokens} and is kept cut \
                 short as a label; raise the labeller's max_tokens if labels are longer"
            );
        }
    }

    pub(super) fn key_of(&self, req: &ChatRequest) -> String {
        req.cache_key_at(self.provider.name(), &self.model, &self.endpoint)
    }

    pub(super) fn worst_case(&self, req: &ChatRequest, prices: &Prices) -> f64 {
        worst_case_cost(req, self.counter.as_deref(), prices)
    }

    /// Usage as reported, or (when a server sends none) the worst-case input and the
    /// estimated output, so money is never under-counted.
    pub(super) fn usage_or_estimate(&self, req: &ChatRequest, c: &Completion) -> Usage {
        c.usage.unwrap_or_else(|| Usage {
            input_tokens: worst_case_input_tokens(req, self.counter.as_deref()),
            output_tokens: estimate_tokens(&c.text).min(u64::from(req.max_tokens)),
        })
    }

    /// Send every request (in order, `concurrency` at a time; or as one batch job), paying
    /// only for cache misses. Stops before the first request whose worst case no longer fits
    /// the budget; everything before it is returned.
    pub fn complete_all(&self, requests: &[ChatRequest]) -> Result<Replies> {
        let out = match &self.batch {
            Some(batch) => super::batch::complete_batch(self, batch, requests),
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

    /// One request with retries, holding `reservation` for it. An empty reply (nothing left
    /// after reasoning) is retried, but it was billed: its cost is counted and the next
    /// attempt's worst case must fit the budget like any call, or the run stops here. An
    /// attempt whose reply never arrived or could not be read (a timeout after sending, a
    /// cut-off body, a 200 that is not a completion) is counted the same way at its worst
    /// case, the reservation it held: the provider usually bills the tokens it generated
    /// whether or not they reached us, and what it billed is unknown, so the budget assumes
    /// the most it can have been.
    fn call(
        &self,
        index: usize,
        key: &str,
        req: &ChatRequest,
        reservation: super::budget::Reservation,
    ) -> Called {
        let seed = u64::from_str_radix(&key[..16], 16).unwrap_or(index as u64);
        let what = format!("request {} to {}", index + 1, self.name());
        let mut held = Some(reservation);
        let mut wasted = 0.0;
        let mut out_of_money = false;
        let result = self.retry.run(seed, &what, || {
            let (cost, error) = match self.api.complete(req) {
                Ok(c) if strip_think(&c.text).trim().is_empty() => {
                    let usage = self.usage_or_estimate(req, &c);
                    (
                        self.prices.cost(usage.input_tokens, usage.output_tokens),
                        CallError::transient("empty completion"),
                    )
                }
                Ok(c) => return Ok(c),
                Err(CallError::Unanswered(message)) => (
                    held.as_ref().map_or(0.0, |r| r.amount()),
                    CallError::Unanswered(message),
                ),
                Err(e) => return Err(e),
            };
            if let Some(r) = held.take() {
                self.budget.settle(r, cost);
            }
            wasted += cost;
            self.add_unlabelled(cost);
            match self.budget.try_reserve(self.worst_case(req, &self.prices)) {
                Some(r) => held = Some(r),
                None => {
                    out_of_money = true;
                    return Err(CallError::Fatal("the money budget ran out".into()));
                }
            }
            Err(error)
        });
        match (result, held) {
            _ if out_of_money => Called::OutOfMoney,
            (Ok(c), Some(r)) => Called::Reply(c, r, wasted),
            (Ok(_), None) => {
                Called::Failed(anyhow!("internal: a reply without its reservation"), None)
            }
            (Err(e), held) => Called::Failed(e, held),
        }
    }

    /// Count money spent on attempts that bought no label (see [`LlmClient::unlabelled_spent`]).
    fn add_unlabelled(&self, cost: f64) {
        *lock(&self.unlabelled) += cost;
    }

    /// Dollars this client spent on attempts that bought no label: empty replies and
    /// replies that never arrived, also those before a label that came in the end (the
    /// cache keeps only a label's own tokens). A run that fails must still record them,
    /// or a resumed run would spend them again under the same budget.
    pub fn unlabelled_spent(&self) -> f64 {
        *lock(&self.unlabelled)
    }

    fn complete_live(&self, requests: &[ChatRequest]) -> Result<Replies> {
        let n = requests.len();
        let keys: Vec<String> = requests.iter().map(|r| self.key_of(r)).collect();
        let slots: Vec<Mutex<Option<Reply>>> = (0..n).map(|_| Mutex::new(None)).collect();
        let queue = Mutex::new(Queue {
            next: 0,
            in_flight: 0,
            stop_at: None,
            failure: None,
            calling: Vec::new(),
        });
        let wake = Condvar::new();
        let bar = crate::util::progress::bar(n as u64, "labelling");
        let workers = self.concurrency.min(n).max(1);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let (i, reservation) = match self.next_job(&queue, &wake, requests, &keys) {
                        Job::Done => return,
                        Job::Hit(i, hit) => {
                            *lock(&slots[i]) = Some(self.reply_from_cache(hit));
                            bar.inc(1);
                            continue;
                        }
                        Job::Call(i, r) => (i, r),
                    };
                    let start = Instant::now();
                    let outcome = match self.call(i, &keys[i], &requests[i], reservation) {
                        Called::Failed(e, held) => {
                            if let Some(r) = held {
                                self.budget.release(r);
                            }
                            Err(e)
                        }
                        Called::OutOfMoney => Ok(None),
                        Called::Reply(c, reservation, wasted) => {
                            let usage = self.usage_or_estimate(&requests[i], &c);
                            let cost = self.prices.cost(usage.input_tokens, usage.output_tokens);
                            // Paid whether or not the cache write below succeeds.
                            self.budget.settle(reservation, cost);
                            // The label cost what its empty attempts cost too.
                            let cost = cost + wasted;
                            if c.cut_off {
                                self.note_cut_off(requests[i].max_tokens);
                            }
                            self.record(&keys[i], &c.text, usage, cost).map(|()| {
                                Some(Reply {
                                    text: c.text,
                                    cost,
                                    input_tokens: usage.input_tokens,
                                    output_tokens: usage.output_tokens,
                                    seconds: start.elapsed().as_secs_f64(),
                                    cached: false,
                                })
                            })
                        }
                    };
                    let mut q = lock(&queue);
                    match outcome {
                        Ok(Some(reply)) => {
                            *lock(&slots[i]) = Some(reply);
                            bar.inc(1);
                        }
                        Ok(None) => {
                            q.stop_at = Some(q.stop_at.map_or(i, |s| s.min(i)));
                        }
                        Err(e) => {
                            if q.failure.as_ref().is_none_or(|(j, _)| i < *j) {
                                q.failure = Some((i, e));
                            }
                        }
                    }
                    q.in_flight -= 1;
                    q.calling.retain(|&j| j != i);
                    wake.notify_all();
                });
            }
        });
        bar.finish_and_clear();
        let q = queue.into_inner().unwrap_or_else(|e| e.into_inner());
        // A request after the budget's stop point was not going to be kept: its failure
        // does not turn the budget stop into an error.
        let failure = q
            .failure
            .filter(|(i, _)| q.stop_at.is_none_or(|stop| *i < stop));
        if let Some((i, e)) = failure {
            let paid = slots.iter().filter(|s| lock(s).is_some()).count();
            return Err(e.context(RequestFailed {
                index: i,
                message: format!(
                    "labelling stopped at item {} of {n}; the {paid} replies received are kept in the label cache {} and will not be paid for again",
                    i + 1,
                    self.cache.dir().display()
                ),
            }));
        }
        let end = q.stop_at.unwrap_or(n);
        let replies = slots[..end]
            .iter()
            .enumerate()
            .map(|(i, s)| {
                lock(s)
                    .take()
                    .ok_or_else(|| anyhow!("internal: request {} got no reply", i + 1))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Replies {
            replies,
            budget_reached: q.stop_at.is_some(),
        })
    }

    /// The next request to work on. Requests are handed out in order; one whose worst case
    /// does not fit waits until the requests before it have settled their actual costs, and
    /// stops the run only if it still does not fit. So the stop point depends on actual costs
    /// alone, not on timing: the same run stops at the same item at any concurrency.
    fn next_job(
        &self,
        queue: &Mutex<Queue>,
        wake: &Condvar,
        requests: &[ChatRequest],
        keys: &[String],
    ) -> Job {
        let mut q = lock(queue);
        loop {
            if q.failure.is_some() || q.stop_at.is_some() || q.next >= requests.len() {
                return Job::Done;
            }
            let i = q.next;
            // The same request already being called: wait for its reply to reach the cache,
            // so a repeated input is bought once and gets the same label at any concurrency
            // (as it does one at a time).
            if q.calling.iter().any(|&j| keys[j] == keys[i]) {
                q = wake.wait(q).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let hit = self.cache.peek(&keys[i]);
            if !self.charge_cache_hits {
                if let Some(hit) = hit {
                    self.cache.count(true);
                    q.next += 1;
                    return Job::Hit(i, hit);
                }
            }
            // A charged hit passes the same test as a call (its worst case must fit), so the
            // stop point is the same whether or not the label was bought before.
            let worst = self.worst_case(&requests[i], &self.prices);
            if let Some(r) = self.budget.try_reserve(worst) {
                q.next += 1;
                if let Some(hit) = hit {
                    self.cache.count(true);
                    self.budget.settle(r, self.cached_cost(&hit));
                    return Job::Hit(i, hit);
                }
                self.cache.count(false);
                q.in_flight += 1;
                q.calling.push(i);
                return Job::Call(i, r);
            }
            if q.in_flight == 0 {
                q.stop_at = Some(i);
                wake.notify_all();
                return Job::Done;
            }
            q = wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Put a paid reply in the cache.
    pub(super) fn record(&self, key: &str, text: &str, usage: Usage, cost: f64) -> Result<()> {
        self.cache.insert(CachedReply {
            key: key.to_string(),
            provider: self.provider.name().to_string(),
            model: self.model.clone(),
            text: text.to_string(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost,
        })
    }
}

/// The context of an error that ended a call at request `index` (0-based), so the labeller
/// can name the item.
#[derive(Debug)]
pub struct RequestFailed {
    pub index: usize,
    message: String,
}

impl std::fmt::Display for RequestFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Lock a mutex whose data stays consistent even if a holder panicked (plain slots/counters).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
