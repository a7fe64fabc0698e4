//! Money: the price of a call from its token usage, the worst case of a call before it is
//! sent, and a budget that reserves that worst case atomically so parallel requests never
//! overshoot it.
use super::llm::Usage;
use super::prompt::ChatRequest;
use std::sync::Mutex;

/// Template tokens a chat turn adds around its text (role markers, separators). Chat templates
/// of common models use 3–7; 8 keeps the worst case an upper bound.
pub const TOKENS_PER_TURN: u64 = 8;

/// Counts the tokens of a text with the model's own tokenizer.
pub type TokenCounter = dyn Fn(&str) -> usize + Send + Sync;

/// What Anthropic charges at most for writing an input token to its prompt cache (a one-hour
/// cache write), as a multiple of the input price: cache writes count at this when their price
/// is not set.
pub const CACHE_WRITE_FACTOR: f64 = 2.0;

/// Dollars per million input and output tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prices {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Input tokens read from the provider's prompt cache; `None`: at the input price, which
    /// may over-count but never under-counts.
    pub cached_input_per_mtok: Option<f64>,
    /// Input tokens written to the provider's prompt cache (Anthropic); `None`: at
    /// [`CACHE_WRITE_FACTOR`] times the input price.
    pub cache_write_per_mtok: Option<f64>,
}

impl Prices {
    /// Input and output prices, with cached input at the input price.
    pub fn new(input_per_mtok: f64, output_per_mtok: f64) -> Prices {
        Prices {
            input_per_mtok,
            output_per_mtok,
            cached_input_per_mtok: None,
            cache_write_per_mtok: None,
        }
    }

    /// Cost of `input_tokens` and `output_tokens`, every input token at the input price.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_per_mtok + output_tokens as f64 * self.output_per_mtok)
            / 1e6
    }

    /// Cost of a call from its reported usage: its cached input tokens at the cached price,
    /// its cache writes at the write price, the rest of its input at the input price.
    pub fn cost_of(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
        let full = usage.input_tokens - cached - written;
        let cached_price = self.cached_input_per_mtok.unwrap_or(self.input_per_mtok);
        let write_price = self
            .cache_write_per_mtok
            .unwrap_or(self.input_per_mtok * CACHE_WRITE_FACTOR);
        self.cost(full, usage.output_tokens)
            + (cached as f64 * cached_price + written as f64 * write_price) / 1e6
    }

    /// The most `input_tokens` and `output_tokens` can cost: every input token at the input
    /// price, or at the cache write price when one is set above it (an unset write price is
    /// not reserved for: no request here asks for caching; see `LlmClient::billed_usage`).
    pub fn worst_cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        let input_price = self
            .cache_write_per_mtok
            .map_or(self.input_per_mtok, |w| w.max(self.input_per_mtok));
        (input_tokens as f64 * input_price + output_tokens as f64 * self.output_per_mtok) / 1e6
    }

    /// These prices times `factor` (the Batch API's discount).
    pub fn scaled(&self, factor: f64) -> Prices {
        Prices {
            input_per_mtok: self.input_per_mtok * factor,
            output_per_mtok: self.output_per_mtok * factor,
            cached_input_per_mtok: self.cached_input_per_mtok.map(|p| p * factor),
            cache_write_per_mtok: self.cache_write_per_mtok.map(|p| p * factor),
        }
    }
}

/// Tokens of `text` when no tokenizer is known, meant to be at least what a provider bills.
/// BPE vocabularies of current LLMs average 3.5–4.5 characters per token on English words, so
/// letters count a third of a token each, which over-counts. Digits are split into groups of
/// at most three (so each run of n digits counts n/3 rounded up), and punctuation, symbols and
/// white space mostly stand alone, so each of those counts a whole token — except a single
/// space before a letter, which joins the word. Other scripts get far fewer characters per
/// token — CJK often one token or more per character, emoji several — and a byte-level BPE
/// token covers at least one byte, so bytes bound them from above.
pub fn estimate_tokens(text: &str) -> u64 {
    let chars: Vec<char> = text.chars().collect();
    let (mut letters, mut tokens) = (0u64, 0u64);
    let mut digit_run = 0u64;
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_digit() {
            digit_run += 1;
            continue;
        }
        tokens += digit_run.div_ceil(3);
        digit_run = 0;
        if c.is_ascii_alphabetic() {
            letters += 1;
        } else if c == ' ' && chars.get(i + 1).is_some_and(char::is_ascii_alphabetic) {
            // Joins the word after it.
        } else if c.is_ascii() {
            tokens += 1;
        } else {
            tokens += c.len_utf8() as u64;
        }
    }
    tokens + digit_run.div_ceil(3) + letters.div_ceil(3)
}

/// Upper bound of the input tokens a request is billed for: its texts counted with `counter`
/// (or [`estimate_tokens`]) plus [`TOKENS_PER_TURN`] per turn and one turn for the reply's
/// opening.
pub fn worst_case_input_tokens(req: &ChatRequest, counter: Option<&TokenCounter>) -> u64 {
    let text: u64 = req
        .texts()
        .map(|t| match counter {
            Some(count) => count(t) as u64,
            None => estimate_tokens(t),
        })
        .sum();
    text + TOKENS_PER_TURN * (req.turns() as u64 + 1)
}

/// Worst-case cost of a request: every input token, and `max_tokens` of output.
pub fn worst_case_cost(req: &ChatRequest, counter: Option<&TokenCounter>, prices: &Prices) -> f64 {
    prices.worst_cost(
        worst_case_input_tokens(req, counter),
        u64::from(req.max_tokens),
    )
}

/// Money held for a call in flight. Give it back with [`Budget::settle`] or [`Budget::release`].
#[derive(Debug)]
#[must_use = "a reservation holds budget until settled or released"]
pub struct Reservation {
    amount: f64,
}

impl Reservation {
    pub fn amount(&self) -> f64 {
        self.amount
    }
}

#[derive(Debug, Default)]
struct Ledger {
    spent: f64,
    reserved: f64,
}

/// A money budget shared by parallel workers. `spent + reserved` never exceeds the limit, so
/// as long as every call costs at most what was reserved for it, spending never exceeds it.
#[derive(Debug)]
pub struct Budget {
    limit: Option<f64>,
    ledger: Mutex<Ledger>,
}

impl Budget {
    /// `None`: unlimited (costs are still counted).
    pub fn new(limit: Option<f64>) -> Self {
        Budget {
            limit,
            ledger: Mutex::new(Ledger::default()),
        }
    }

    pub fn limit(&self) -> Option<f64> {
        self.limit
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // A worker that panicked mid-update leaves plain numbers behind: still usable.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hold `worst` dollars, or `None` when that would exceed the limit.
    pub fn try_reserve(&self, worst: f64) -> Option<Reservation> {
        let mut l = self.ledger();
        if let Some(limit) = self.limit {
            if l.spent + l.reserved + worst > limit {
                return None;
            }
        }
        l.reserved += worst;
        Some(Reservation { amount: worst })
    }

    /// Hold `worst` dollars even past the limit: for work already submitted and paid for
    /// elsewhere (a batch a resumed run re-attaches to).
    pub fn force_reserve(&self, worst: f64) -> Reservation {
        self.ledger().reserved += worst;
        Reservation { amount: worst }
    }

    /// The call cost `actual`: count it and free the reservation.
    pub fn settle(&self, r: Reservation, actual: f64) {
        let mut l = self.ledger();
        l.reserved = (l.reserved - r.amount).max(0.0);
        l.spent += actual;
    }

    /// Count `amount` dollars spent outside any reservation: what an earlier run of the cell
    /// paid that its saved state does not count yet (see `spend_log.rs`).
    pub fn charge(&self, amount: f64) {
        self.ledger().spent += amount;
    }

    /// The call failed: it costs nothing.
    pub fn release(&self, r: Reservation) {
        self.settle(r, 0.0);
    }

    pub fn spent(&self) -> f64 {
        self.ledger().spent
    }

    /// Money neither spent nor reserved (`None` when unlimited).
    pub fn available(&self) -> Option<f64> {
        let l = self.ledger();
        self.limit
            .map(|limit| (limit - l.spent - l.reserved).max(0.0))
    }
}

/// Reservations held for requests, by key, until each is settled: whatever is still held
/// when this is dropped is released. A call that ends early on an error (a batch poll that
/// gives up, a cache that cannot be written) would otherwise leave it held, and the client's
/// later calls would find less money than there is. Released, not counted as spent: the
/// requests' replies are counted by the call that collects them (a saved batch job stays).
pub struct Held<'a> {
    budget: &'a Budget,
    by_key: Vec<(String, Reservation)>,
}

impl<'a> Held<'a> {
    pub fn new(budget: &'a Budget) -> Self {
        Held {
            budget,
            by_key: Vec::new(),
        }
    }

    pub fn push(&mut self, key: &str, r: Reservation) {
        self.by_key.push((key.to_string(), r));
    }

    pub fn contains(&self, key: &str) -> bool {
        self.by_key.iter().any(|(k, _)| k == key)
    }

    /// The first reservation held for `key`, now the caller's to settle or release.
    pub fn take(&mut self, key: &str) -> Option<Reservation> {
        let at = self.by_key.iter().position(|(k, _)| k == key)?;
        Some(self.by_key.remove(at).1)
    }

    /// Every reservation still held, in the order they were pushed, now the caller's.
    pub fn take_all(&mut self) -> Vec<(String, Reservation)> {
        std::mem::take(&mut self.by_key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.by_key.iter().map(|(k, _)| k.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Give back everything still held.
    pub fn release_all(&mut self) {
        for (_, r) in self.by_key.drain(..) {
            self.budget.release(r);
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.release_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_estimate_bounds_text_in_other_scripts_by_its_bytes() {
        assert_eq!(estimate_tokens("abcdef"), 2);
        assert_eq!(estimate_tokens("abcdefg"), 3);
        // Digit- and punctuation-dense text is about a token per one or two characters: the
        // old chars/3 said 3 for "1,2,3,4" (billed 7: 1 , 2 , 3 , 4) and 6 for the date
        // (billed about 11).
        assert_eq!(estimate_tokens("1,2,3,4"), 7);
        assert_eq!(estimate_tokens("2019-03-14, 12:30"), 11);
        assert_eq!(estimate_tokens("Hello there"), 4);
        // Three CJK characters are 9 UTF-8 bytes; chars / 3 would have said 1 token.
        assert_eq!(estimate_tokens("会议室"), 9);
        assert_eq!(estimate_tokens("ok 👍"), 1 + 1 + 4);
    }

    #[test]
    fn cost_is_usage_times_price() {
        let p = Prices::new(0.15, 0.6);
        assert_eq!(p.cost(1_000_000, 0), 0.15);
        assert_eq!(p.cost(0, 2_000_000), 1.2);
        assert!((p.cost(1000, 100) - 0.00021).abs() < 1e-15);
        assert_eq!(p.scaled(0.5).cost(1_000_000, 1_000_000), 0.375);
    }

    #[test]
    fn cached_input_counts_at_its_price_and_at_the_input_price_unless_told() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 0,
            cached_input_tokens: 600_000,
            cache_write_tokens: 100_000,
        };
        let told = Prices {
            cached_input_per_mtok: Some(0.1),
            cache_write_per_mtok: Some(1.25),
            ..Prices::new(1.0, 2.0)
        };
        assert!((told.cost_of(&usage) - (0.3 + 0.06 + 0.125)).abs() < 1e-12);
        // Unset: reads at the input price, writes at the most Anthropic charges for one.
        let untold = Prices::new(1.0, 2.0);
        assert!((untold.cost_of(&usage) - (0.3 + 0.6 + 0.2)).abs() < 1e-12);
        // A server reporting more cached tokens than input tokens counts no more than these.
        let odd = Usage {
            cached_input_tokens: 2_000_000,
            ..usage
        };
        assert!((told.cost_of(&odd) - 0.1).abs() < 1e-12);
        assert_eq!(told.scaled(0.5).cost_of(&usage), told.cost_of(&usage) * 0.5);
    }

    #[test]
    fn worst_case_counts_every_text_and_turn() {
        let req = ChatRequest::for_label("abcdef", &[], "abcdefg", 0.0, 10);
        // system 6 chars → 2, input 7 chars → 3, 2 turns + reply opening → 24
        assert_eq!(worst_case_input_tokens(&req, None), 2 + 3 + 24);
        let words = |t: &str| t.split_whitespace().count();
        assert_eq!(worst_case_input_tokens(&req, Some(&words)), 1 + 1 + 24);
        let p = Prices::new(1.0, 2.0);
        assert_eq!(worst_case_cost(&req, None, &p), p.cost(29, 10));
    }

    #[test]
    fn reservations_refuse_what_would_exceed() {
        let b = Budget::new(Some(1.0));
        let a = b.try_reserve(0.6).unwrap();
        assert!(b.try_reserve(0.5).is_none());
        b.settle(a, 0.4);
        assert_eq!(b.spent(), 0.4);
        let c = b.try_reserve(0.6).unwrap();
        assert!(b.try_reserve(0.01).is_none());
        b.release(c);
        assert_eq!(b.spent(), 0.4);
        assert!((b.available().unwrap() - 0.6).abs() < 1e-12);
        let unlimited = Budget::new(None);
        assert!(unlimited.try_reserve(1e9).is_some());
        assert_eq!(unlimited.available(), None);
    }

    #[test]
    fn parallel_reservations_never_overshoot() {
        let b = Arc::new(Budget::new(Some(10.0)));
        let granted: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let b = b.clone();
                    s.spawn(move || {
                        let mut n = 0;
                        while let Some(r) = b.try_reserve(0.3) {
                            b.settle(r, 0.3);
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(granted.iter().sum::<usize>(), 33);
        assert!(b.spent() <= 10.0);
    }
}
