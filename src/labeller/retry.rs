//! When a failed API call is worth repeating, and how long to wait before it: exponential
//! backoff with jitter, `Retry-After` honoured, a fixed number of retries.
use anyhow::{anyhow, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Longest wait accepted from a server's `Retry-After`; beyond it the header is likely wrong.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// A failed call, sorted by whether trying again can help. Messages never contain the API key.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// 429, 5xx, timeouts, dropped connections, malformed or empty replies.
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// A bad key, an unknown model, a rejected request: trying again cannot help.
    Fatal(String),
    /// The request went out but its reply never arrived or could not be read: a timeout or a
    /// dropped connection after sending, a cut-off body, a 200 whose body is not a reply.
    /// Retried like [`CallError::Transient`], but the provider has most likely billed it (it
    /// bills what it generated, whether or not the answer reached us), so the LLM client
    /// counts such an attempt at its worst case.
    Unanswered(String),
}

impl CallError {
    pub fn transient(message: impl Into<String>) -> Self {
        CallError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CallError::Transient { message, .. }
            | CallError::Fatal(message)
            | CallError::Unanswered(message) => message,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Wait before the first retry; doubles each time.
    pub base: Duration,
    /// Longest computed wait (a server's `Retry-After` may ask for more).
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Wait before retry number `attempt` (0-based): the server's `Retry-After` when given,
    /// else `base·2^attempt` capped at `max_delay`, scaled by a random factor in [0.5, 1) so
    /// parallel workers that failed together do not retry together.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut ChaCha8Rng,
    ) -> Duration {
        if let Some(after) = retry_after {
            return after.min(MAX_RETRY_AFTER);
        }
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        exp.mul_f64(rng.random_range(0.5..1.0))
    }

    /// Call `call` until it succeeds, fails fatally, or the retries are used up. `seed` makes
    /// the jitter reproducible; `what` names the work in the final error.
    pub fn run<T>(
        &self,
        seed: u64,
        what: &str,
        mut call: impl FnMut() -> std::result::Result<T, CallError>,
    ) -> Result<T> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut attempt = 0;
        loop {
            let (message, retry_after) = match call() {
                Ok(v) => return Ok(v),
                Err(CallError::Fatal(msg)) => return Err(anyhow!("{what}: {msg}")),
                Err(CallError::Transient {
                    message,
                    retry_after,
                }) => (message, retry_after),
                Err(CallError::Unanswered(message)) => (message, None),
            };
            if attempt >= self.max_retries {
                return Err(anyhow!(
                    "{what}: still failing after {} attempts; last error: {message} \
                     (raise max_retries or check the server)",
                    attempt + 1
                ));
            }
            let wait = self.delay(attempt, retry_after, &mut rng);
            if std::env::var_os("LAB_VERBOSE").is_some() {
                eprintln!("{what}: {message}; retrying in {:.2}s", wait.as_secs_f64());
            }
            std::thread::sleep(wait);
            attempt += 1;
        }
    }
}

/// Parse `Retry-After` (seconds, possibly fractional; HTTP dates are not used by LLM APIs and
/// fall back to backoff) or OpenAI's `retry-after-ms`.
pub fn parse_retry_after(seconds: Option<&str>, millis: Option<&str>) -> Option<Duration> {
    // Clamped before conversion: a server saying "1e30" must mean "wait the longest we wait",
    // not overflow `Duration` and abort the run.
    let capped = |secs: f64| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64()));
    if let Some(ms) = millis.and_then(|v| v.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(capped(ms / 1000.0));
        }
    }
    let s = seconds?.trim().parse::<f64>().ok()?;
    (s.is_finite() && s >= 0.0).then(|| capped(s))
}

/// Whether an HTTP status is worth retrying: rate limits, timeouts, conflicts, server errors
/// (529 is Anthropic's "overloaded").
pub fn status_is_transient(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || (500..=599).contains(&status)
}

/// The message in an API error body: OpenAI `{"error":{"message",..}}`, Anthropic
/// `{"type":"error","error":{"type","message"}}`, else the body itself, shortened.
pub fn error_body_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        let err = v.get("error")?;
        let msg = err
            .get("message")
            .and_then(|m| m.as_str())
            .or_else(|| err.as_str())?;
        let code = err
            .get("code")
            .and_then(|c| c.as_str())
            .or_else(|| err.get("type").and_then(|t| t.as_str()));
        Some(match code {
            Some(c) => format!("{msg} ({c})"),
            None => msg.to_string(),
        })
    });
    from_json.unwrap_or_else(|| {
        let t = body.trim();
        if t.chars().count() > 300 {
            format!("{}…", t.chars().take(300).collect::<String>())
        } else {
            t.to_string()
        }
    })
}

/// Sort a ureq error into retry or give up, with a message that says what to do. `redact`
/// removes the API key from anything the server echoed.
pub fn classify_ureq(
    err: ureq::Error,
    key_env: Option<&str>,
    redact: &dyn Fn(&str) -> String,
) -> CallError {
    match err {
        ureq::Error::Status(status, resp) => {
            let retry_after =
                parse_retry_after(resp.header("retry-after"), resp.header("retry-after-ms"));
            // Redact before the message is cut to length: a key cut in two would no longer
            // match, and its first part would reach the error.
            let body = redact(&resp.into_string().unwrap_or_default());
            let detail = error_body_message(&body);
            if status_is_transient(status) {
                return CallError::Transient {
                    message: format!("HTTP {status}: {detail}"),
                    retry_after,
                };
            }
            let advice = match status {
                401 | 403 => match key_env {
                    Some(var) => format!(" — check the API key in the environment variable {var}"),
                    None => {
                        " — the server wants an API key: set api_key_env in the labeller config"
                            .to_string()
                    }
                },
                404 => " — check the model name and base_url in the labeller config".to_string(),
                _ => String::new(),
            };
            CallError::Fatal(format!("HTTP {status}: {detail}{advice}"))
        }
        // Not connected: the request never reached the server.
        ureq::Error::Transport(t) if t.kind() != ureq::ErrorKind::Io => {
            CallError::transient(redact(&format!("connection failed: {t}")))
        }
        // Connected, then the connection failed or timed out: the request may have been
        // received (and billed) with its reply lost.
        ureq::Error::Transport(t) => CallError::Unanswered(redact(&format!("no reply: {t}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn policy(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            base: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy {
            max_retries: 10,
            base: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (attempt, full) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (30, 1000),
        ] {
            let d = p.delay(attempt, None, &mut rng).as_secs_f64() * 1000.0;
            assert!(
                d >= full as f64 * 0.5 && d < full as f64,
                "attempt {attempt}: {d}ms"
            );
        }
        let told = p.delay(0, Some(Duration::from_secs(3)), &mut rng);
        assert_eq!(told, Duration::from_secs(3));
        let absurd = p.delay(0, Some(Duration::from_secs(100_000)), &mut rng);
        assert_eq!(absurd, MAX_RETRY_AFTER);
    }

    #[test]
    fn absurd_retry_after_headers_wait_the_longest_we_wait_instead_of_overflowing() {
        assert_eq!(parse_retry_after(Some("1e30"), None), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after(None, Some("1e300")),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            parse_retry_after(Some("2.5"), None),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_retry_after(Some("-1"), None), None);
        assert_eq!(parse_retry_after(Some("inf"), None), None);
    }

    #[test]
    fn jitter_is_reproducible_from_the_seed() {
        let p = policy(3);
        let a: Vec<_> = {
            let mut r = ChaCha8Rng::seed_from_u64(1);
            (0..4).map(|i| p.delay(i, None, &mut r)).collect()
        };
        let mut r = ChaCha8Rng::seed_from_u64(1);
        let b: Vec<_> = (0..4).map(|i| p.delay(i, None, &mut r)).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn run_retries_transient_then_succeeds() {
        let calls = Cell::new(0);
        let out = policy(3).run(0, "label 1", || {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                Err(CallError::transient("HTTP 500"))
            } else {
                Ok(42)
            }
        });
        assert_eq!(out.unwrap(), 42);
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn run_stops_on_fatal_and_after_max_retries() {
        let calls = Cell::new(0);
        let err = policy(5)
            .run(0, "label 1", || -> std::result::Result<(), _> {
                calls.set(calls.get() + 1);
                Err(CallError::Fatal("HTTP 401: bad key".into()))
            })
            .unwrap_err();
        assert_eq!(calls.get(), 1);
        assert!(err.to_string().contains("HTTP 401"));

        calls.set(0);
        let err = policy(2)
            .run(0, "label 9", || -> std::result::Result<(), _> {
                calls.set(calls.get() + 1);
                Err(CallError::transient("HTTP 503"))
            })
            .unwrap_err()
            .to_string();
        assert_eq!(calls.get(), 3);
        assert!(err.contains("label 9") && err.contains("3 attempts") && err.contains("503"));
    }

    #[test]
    fn retry_after_headers_parse() {
        assert_eq!(
            parse_retry_after(Some("2"), None),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after(Some("0.5"), None),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after(Some("9"), Some("250")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"), None),
            None
        );
        assert_eq!(parse_retry_after(Some("-1"), None), None);
        assert_eq!(parse_retry_after(None, None), None);
    }

    #[test]
    fn error_bodies_of_both_apis_give_their_message() {
        let openai = r#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        assert_eq!(
            error_body_message(openai),
            "The model `x` does not exist (model_not_found)"
        );
        let anthropic =
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: x"}}"#;
        assert_eq!(error_body_message(anthropic), "model: x (not_found_error)");
        assert_eq!(error_body_message("  Bad Gateway "), "Bad Gateway");
        assert!(status_is_transient(429) && status_is_transient(529) && status_is_transient(500));
        assert!(
            !status_is_transient(401) && !status_is_transient(404) && !status_is_transient(400)
        );
    }
}
