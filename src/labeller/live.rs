//! Live requests: sent in order, `concurrency` at a time, each holding its worst case in the
//! budget until its actual cost is known, with retries, empty or lost replies counted, and a
//! budget stop point that does not depend on timing.
use super::budget::Reservation;
use super::cache::CachedReply;
use super::llm::{lock, Completion, LlmClient, Replies, Reply, RequestFailed};
use super::prompt::{says_nothing, ChatRequest};
use super::refusals::{refusal_message, RefusalAhead};
use super::retry::CallError;
use super::spend_log::Spent;
use anyhow::{anyhow, Result};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

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
    /// A usable reply, the reservation still held for it, what its empty attempts cost, and
    /// the id of its attempt in the spend log.
    Reply(Completion, Reservation, f64, Option<String>),
    /// Failed; the reservation, if one is still held, is to be released.
    Failed(anyhow::Error, Option<Reservation>),
    /// Empty replies spent the money the next attempt needed: stop before this request.
    OutOfMoney,
}

enum Job {
    Hit(usize, CachedReply),
    Call(usize, Reservation),
    Done,
}

/// A spend log that cannot be written: the call stops, since what it pays would go unrecorded.
fn unlogged(e: anyhow::Error) -> CallError {
    CallError::Fatal(format!("{e:#}"))
}

impl LlmClient {
    /// One request with retries, holding `reservation` for it. An empty reply (nothing left
    /// after reasoning) is retried, but it was billed: its cost is counted and the next
    /// attempt's worst case must fit the budget like any call, or the run stops here. An
    /// attempt whose reply never arrived or could not be read (a timeout after sending, a
    /// cut-off body, a 200 that is not a completion) is counted the same way at its worst
    /// case, the reservation it held: the provider usually bills the tokens it generated
    /// whether or not they reached us, and what it billed is unknown, so the budget assumes
    /// the most it can have been. Every attempt is in the spend log before it is sent, and
    /// its cost before the reply is used.
    fn call(&self, index: usize, key: &str, req: &ChatRequest, reservation: Reservation) -> Called {
        let seed = u64::from_str_radix(&key[..16], 16).unwrap_or(index as u64);
        let what = format!("request {} to {}", index + 1, self.name());
        let mut held = Some(reservation);
        let mut wasted = 0.0;
        let mut out_of_money = false;
        let mut replied_attempt = None;
        let result = self.retry.run(seed, &what, || {
            let worst = held.as_ref().map_or(0.0, Reservation::amount);
            let attempt = self.log_sent(worst).map_err(unlogged)?;
            let (cost, spent, error) = match self.api.complete(req) {
                Ok(c) if c.refusal.is_some() => {
                    // Billed, and not asked again in this call, nor at temperature 0 in any
                    // later one (see `refusals.rs`).
                    let usage = self.usage_or_estimate(req, &c);
                    let cost = self.prices.cost_of(&usage);
                    let refusal = c.refusal.as_deref().unwrap_or_default();
                    let logged = self
                        .log_paid(attempt.as_deref(), cost, Spent::Refused, None)
                        .and_then(|_| self.remember_refusal(key, req.temperature, refusal));
                    if let Some(r) = held.take() {
                        self.budget.settle(r, cost);
                    }
                    self.add_unlabelled(cost);
                    logged.map_err(unlogged)?;
                    return Err(CallError::Fatal(refusal_message(
                        refusal,
                        req.temperature,
                        self.role,
                    )));
                }
                Ok(c) if says_nothing(&c.text) => {
                    let usage = self.usage_or_estimate(req, &c);
                    (
                        self.prices.cost_of(&usage),
                        Spent::Empty,
                        CallError::transient("empty completion"),
                    )
                }
                Ok(c) => {
                    replied_attempt = attempt;
                    return Ok(c);
                }
                Err(CallError::Unanswered(message)) => {
                    (worst, Spent::Lost, CallError::Unanswered(message))
                }
                Err(e) => {
                    // An error reply is not billed. Were this line lost, a resumed run would
                    // only count the attempt at its worst case.
                    let _ = self.log_paid(attempt.as_deref(), 0.0, Spent::Unbilled, None);
                    return Err(e);
                }
            };
            let logged = self.log_paid(attempt.as_deref(), cost, spent, None);
            if let Some(r) = held.take() {
                self.budget.settle(r, cost);
            }
            wasted += cost;
            self.add_unlabelled(cost);
            logged.map_err(unlogged)?;
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
            (Ok(c), Some(r)) => Called::Reply(c, r, wasted, replied_attempt),
            (Ok(_), None) => {
                Called::Failed(anyhow!("internal: a reply without its reservation"), None)
            }
            (Err(e), held) => Called::Failed(e, held),
        }
    }

    pub(super) fn complete_live(&self, requests: &[ChatRequest]) -> Result<Replies> {
        let n = requests.len();
        let all_keys: Vec<String> = requests.iter().map(|r| self.key_of(r)).collect();
        // As a Batch call does: nothing is bought for a call bound to fail at a refusal, and a
        // call whose worst cases stop fitting before one stops there.
        let cut = match self.refusal_ahead(requests, &all_keys, &self.prices) {
            RefusalAhead::Reached(i, refusal) => {
                return Err(self.stopped_at_refusal(i, n, &refusal))
            }
            RefusalAhead::BeyondBudget { stop, refused } => {
                eprintln!(
                    "warning: labelling stops at item {} of {n}, where the money budget no \
                     longer holds every request's worst case up to item {}, which the model \
                     refused in an earlier call ({}); the actual costs might have reached it, \
                     and the labels before it would have been paid for a call that fails \
                     there",
                    stop + 1,
                    refused + 1,
                    super::refusals::REFUSALS_FILE
                );
                Some(stop)
            }
            RefusalAhead::None => None,
        };
        let requests = &requests[..cut.unwrap_or(n)];
        let keys = &all_keys[..requests.len()];
        let slots: Vec<Mutex<Option<Reply>>> =
            (0..requests.len()).map(|_| Mutex::new(None)).collect();
        let queue = Mutex::new(Queue {
            next: 0,
            in_flight: 0,
            stop_at: None,
            failure: None,
            calling: Vec::new(),
        });
        let wake = Condvar::new();
        let bar = crate::util::progress::bar(requests.len() as u64, "labelling");
        let workers = self.concurrency.min(requests.len()).max(1);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let (i, reservation) = match self.next_job(&queue, &wake, requests, keys) {
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
                        Called::Reply(c, reservation, wasted, attempt) => {
                            let usage = self.usage_or_estimate(&requests[i], &c);
                            let cost = self.prices.cost_of(&usage);
                            // Paid whether or not the writes below succeed.
                            self.budget.settle(reservation, cost);
                            if c.cut_off {
                                self.note_cut_off(requests[i].max_tokens);
                            }
                            // The cache keeps what the label cost with its empty attempts;
                            // the label itself counts its own tokens, like a cache hit, and
                            // the empty attempts count as money that bought no label.
                            let cached = self.cached_reply(&keys[i], &c.text, usage, cost + wasted);
                            // In the spend log first: a run killed before the cache write
                            // finds the label there on resume instead of buying it again.
                            self.log_paid(attempt.as_deref(), cost, Spent::Label, Some(&cached))
                                .and_then(|_| self.cache.insert(cached))
                                .map(|()| {
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
        let end = q.stop_at.unwrap_or(requests.len());
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
            budget_reached: q.stop_at.is_some() || cut.is_some(),
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
            if hit.is_none() {
                // Not met when the call began (see `refusal_ahead`): remembered since, by
                // another run sharing the cache.
                if let Some(refusal) = self.remembered_refusal(&keys[i], requests[i].temperature) {
                    let message = self.refusals.remembered_message(&refusal, self.role);
                    let error = anyhow!("request {} to {}: {message}", i + 1, self.name());
                    if q.failure.as_ref().is_none_or(|(j, _)| i < *j) {
                        q.failure = Some((i, error));
                    }
                    wake.notify_all();
                    return Job::Done;
                }
            }
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
                    // As a call's reply would (the stop point must not depend on the cache).
                    self.observe_input(&requests[i], hit.input_tokens);
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
}

#[cfg(test)]
mod tests {
    use crate::labeller::llm::{ChatApi, Completion, LlmClient, Usage};
    use crate::labeller::llm_config::{LlmLabellerConfig, Provider};
    use crate::labeller::prompt::{ChatRequest, Message};
    use crate::labeller::retry::CallError;

    /// Bills 1000 input tokens for any request: far more than the estimate of a short one.
    struct Overbilling;
    impl ChatApi for Overbilling {
        fn complete(&self, _req: &ChatRequest) -> Result<Completion, CallError> {
            Ok(Completion {
                text: "label".into(),
                usage: Some(Usage {
                    input_tokens: 1000,
                    output_tokens: 1,
                    ..Usage::default()
                }),
                cut_off: false,
                refusal: None,
            })
        }
    }

    /// A server billing more input tokens than the worst-case estimate: the first reply
    /// raises the later requests' worst case, so the run stops within the budget. Without it
    /// each request kept reserving the estimate (about 30 tokens) while paying 1000, and the
    /// third request took the spending to $0.003 against a $0.0025 budget.
    #[test]
    fn a_server_billing_more_than_the_estimate_raises_later_worst_cases() {
        let cache = tempfile::tempdir().unwrap();
        let mut cfg = LlmLabellerConfig::new(Provider::Custom, "m");
        cfg.base_url = Some("http://127.0.0.1:9/v1".into());
        cfg.cache_dir = Some(cache.path().to_path_buf());
        cfg.price_input_per_mtok = 1.0;
        cfg.price_output_per_mtok = 1.0;
        cfg.max_tokens = 1;
        cfg.concurrency = 1;
        cfg.money_budget = Some(0.0025);
        let client = LlmClient::with_api(&cfg, Box::new(Overbilling)).unwrap();
        let req = |q: &str| ChatRequest {
            system: None,
            messages: vec![Message::user(q)],
            temperature: 0.0,
            max_tokens: 1,
        };
        let requests: Vec<ChatRequest> = ["a b", "c d", "e f", "g h", "i j"]
            .iter()
            .map(|q| req(q))
            .collect();
        let out = client.complete_all(&requests).unwrap();
        assert!(out.budget_reached);
        assert_eq!(out.replies.len(), 2);
        assert!(client.spent() <= 0.0025, "{}", client.spent());
    }
}
