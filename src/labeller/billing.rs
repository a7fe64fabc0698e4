//! What a request may cost and what a reply was billed: the worst case a request holds in
//! the budget (scaled up once a server bills more input than estimated), and a reply's usage,
//! or an estimate no lower than the bill when the server sent none.
use super::budget::{estimate_tokens, worst_case_cost, worst_case_input_tokens, Prices};
use super::llm::{lock, Completion, LlmClient, Usage};
use super::prompt::ChatRequest;
use std::sync::atomic::Ordering;

impl LlmClient {
    /// The most `req` can cost: its worst-case input and `max_tokens` of output. Without the
    /// model's tokenizer the input is an estimate meant to be an upper bound; once a server
    /// bills more input tokens than estimated (text of many short words, a tokenizer with a
    /// small vocabulary), later estimates are scaled up by the largest ratio seen, so the
    /// budget can be overrun only by requests reserved before that reply came.
    pub(super) fn worst_case(&self, req: &ChatRequest, prices: &Prices) -> f64 {
        let scale = *lock(&self.input_scale);
        if scale <= 1.0 {
            return worst_case_cost(req, self.counter.as_deref(), prices);
        }
        let input = worst_case_input_tokens(req, self.counter.as_deref()) as f64 * scale;
        prices.worst_cost(input.ceil() as u64, u64::from(req.max_tokens))
    }

    /// Learn from a server's (or a cached reply's) input tokens for `req`: see
    /// [`Self::worst_case`]. Warns once.
    pub(super) fn observe_input(&self, req: &ChatRequest, input_tokens: u64) {
        let estimate = worst_case_input_tokens(req, self.counter.as_deref()).max(1);
        if input_tokens <= estimate {
            return;
        }
        let ratio = input_tokens as f64 / estimate as f64;
        let mut scale = lock(&self.input_scale);
        if *scale <= 1.0 {
            eprintln!(
                "warning: the server billed {input_tokens} input tokens for a request estimated \
                 at {estimate} at most; later requests reserve {ratio:.2} times the estimate, \
                 but requests already sent may take the spending past the money budget by \
                 the difference"
            );
        }
        *scale = scale.max(ratio);
    }

    /// Usage as reported, or (when a server sends none) the worst-case input and the
    /// estimated output, so money is never under-counted.
    pub(super) fn usage_or_estimate(&self, req: &ChatRequest, c: &Completion) -> Usage {
        self.billed_usage(Some(req), c.usage, &c.text)
    }

    /// What a reply of `text` to `req` was billed: `usage` as reported, or, when the server
    /// sent none, the worst-case input and the estimated output (counted in
    /// [`Self::replies_without_usage`], with one warning). A request this call does not know
    /// (a line of a job another run submitted) has its input counted when a call takes its
    /// label from the cache.
    pub(super) fn billed_usage(
        &self,
        req: Option<&ChatRequest>,
        usage: Option<Usage>,
        text: &str,
    ) -> Usage {
        if let Some(usage) = usage {
            if let Some(req) = req {
                // A cache write can cost up to twice an input token (when its price is not
                // set, none is reserved for it): later worst cases make room for that.
                self.observe_input(req, usage.input_tokens + usage.cache_write_tokens);
            }
            return usage;
        }
        if self.without_usage.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!(
                "warning: {} sent a reply without usage (token counts); such replies count \
                 against the money budget at their worst-case input and estimated output \
                 tokens, which may be more than was billed",
                self.name()
            );
        }
        let output = estimate_tokens(text);
        match req {
            Some(req) => Usage {
                input_tokens: worst_case_input_tokens(req, self.counter.as_deref()),
                output_tokens: output.min(u64::from(req.max_tokens)),
                ..Usage::default()
            },
            None => Usage {
                output_tokens: output,
                ..Usage::default()
            },
        }
    }

    /// Replies so far whose server reported no usage, counted at an estimate (see
    /// [`Self::billed_usage`]).
    pub fn replies_without_usage(&self) -> usize {
        self.without_usage.load(Ordering::Relaxed)
    }
}
