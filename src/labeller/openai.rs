//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`): OpenAI itself and
//! any server that speaks its API (llama.cpp, vLLM, llama-cpp-python, …).
use super::llm::{ApiKey, ChatApi, Completion, Usage};
use super::prompt::{ChatRequest, Role};
use super::retry::{classify_ureq, CallError};
use serde_json::{json, Value};
use std::time::Duration;

/// Where and how to reach an OpenAI-compatible server. Shared by the chat and Batch APIs.
pub struct OpenAiEndpoint {
    pub(super) agent: ureq::Agent,
    /// Up to and including the version, e.g. `https://api.openai.com/v1`.
    pub(super) base_url: String,
    pub(super) model: String,
    pub(super) key: Option<ApiKey>,
    pub(super) timeout: Duration,
    /// OpenAI's own API wants `max_completion_tokens` (its reasoning models reject
    /// `max_tokens`); other servers know only `max_tokens`.
    pub(super) official: bool,
}

impl OpenAiEndpoint {
    pub fn new(
        base_url: &str,
        model: &str,
        key: Option<ApiKey>,
        timeout: Duration,
        official: bool,
    ) -> Self {
        OpenAiEndpoint {
            // Never follow a redirect: the key would go to wherever it points.
            agent: ureq::AgentBuilder::new()
                .timeout_connect(timeout.min(Duration::from_secs(10)))
                .redirects(0)
                .build(),
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            key,
            timeout,
            official,
        }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path.trim_start_matches('/'))
    }

    /// A request with the bearer key and the per-request timeout.
    pub(super) fn request(&self, method: &str, path: &str) -> ureq::Request {
        let mut req = self
            .agent
            .request(method, &self.url(path))
            .timeout(self.timeout);
        if let Some(key) = &self.key {
            req = req.set("Authorization", &format!("Bearer {}", key.expose()));
        }
        req
    }

    pub(super) fn redact(&self, text: &str) -> String {
        match &self.key {
            Some(k) => k.redact(text),
            None => text.to_string(),
        }
    }

    pub(super) fn classify(&self, err: ureq::Error) -> CallError {
        let var = self.key.as_ref().map(ApiKey::var);
        classify_ureq(err, var, &|t| self.redact(t))
    }

    /// The JSON body of a chat completion request.
    pub fn body(&self, req: &ChatRequest) -> Value {
        let mut messages = Vec::with_capacity(req.messages.len() + 1);
        if let Some(system) = &req.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        for m in &req.messages {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            messages.push(json!({"role": role, "content": m.content}));
        }
        let max_field = if self.official {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "temperature": req.temperature,
        });
        body[max_field] = json!(req.max_tokens);
        body
    }
}

/// Read a chat completion object: the first choice's text and the usage.
pub fn parse_completion(body: &Value) -> Result<Completion, CallError> {
    let choice = body
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| CallError::transient("reply has no choices[0]"))?;
    let text = match choice.pointer("/message/content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => {
            return Err(CallError::transient(format!(
                "choices[0].message.content is not text: {other}"
            )))
        }
    };
    let usage = body.get("usage").and_then(|u| {
        Some(Usage {
            input_tokens: u.get("prompt_tokens")?.as_u64()?,
            output_tokens: u.get("completion_tokens")?.as_u64()?,
            // Part of prompt_tokens, billed at the cached-input price.
            cached_input_tokens: u
                .pointer("/prompt_tokens_details/cached_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            cache_write_tokens: 0,
        })
    });
    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let cut_off = finish == Some("length");
    let said = choice
        .pointer("/message/refusal")
        .and_then(Value::as_str)
        .filter(|r| !r.trim().is_empty());
    let refusal = if finish == Some("content_filter") {
        Some(said.map_or_else(
            || "the provider's content filter stopped the reply".to_string(),
            str::to_string,
        ))
    } else if super::prompt::says_nothing(&text) {
        // A refusal with text besides is still a reply: the text is the label.
        said.map(str::to_string)
    } else {
        None
    };
    Ok(Completion {
        text,
        usage,
        cut_off,
        refusal,
    })
}

impl ChatApi for OpenAiEndpoint {
    fn complete(&self, req: &ChatRequest) -> Result<Completion, CallError> {
        let body = self.body(req).to_string();
        let resp = self
            .request("POST", "chat/completions")
            .set("Content-Type", "application/json")
            .send_string(&body)
            .map_err(|e| self.classify(e))?;
        refuse_redirect(&resp, &self.url("chat/completions"), &|t| self.redact(t))?;
        let text = resp
            .into_string()
            .map_err(|e| CallError::Unanswered(format!("reply cut off: {e}")))?;
        // A 200 whose body is not a reply: billed, most likely, though unreadable.
        let json: Value = serde_json::from_str(&text).map_err(|e| {
            CallError::Unanswered(format!(
                "reply is not JSON ({e}): {}",
                head(&self.redact(&text))
            ))
        })?;
        // Its errors and refusals quote the reply, which a server echoing the request's
        // headers fills with the key.
        let mut completion =
            parse_completion(&json).map_err(|e| CallError::Unanswered(self.redact(e.message())))?;
        completion.refusal = completion.refusal.map(|r| self.redact(&r));
        // Its text becomes a label, kept in the label cache and the run's results.
        completion.text = self.redact(&completion.text);
        Ok(completion)
    }
}

/// A 3xx reply (the agents follow no redirect, so the key never goes where it points) as an
/// error that says where `url` redirects.
pub(super) fn refuse_redirect(
    resp: &ureq::Response,
    url: &str,
    redact: &dyn Fn(&str) -> String,
) -> Result<(), CallError> {
    if !(300..400).contains(&resp.status()) {
        return Ok(());
    }
    let to = resp.header("location").unwrap_or("(no Location header)");
    Err(CallError::Fatal(redact(&format!(
        "{url} redirects (HTTP {}) to {to}; redirects are not followed, so the API key is not \
         sent there: set the labeller's base_url to the address it should use",
        resp.status()
    ))))
}

/// The start of a long text, for error messages.
pub(super) fn head(text: &str) -> String {
    let mut s: String = text.chars().take(200).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labeller::prompt::Message;

    #[test]
    fn body_follows_the_chat_completions_shape() {
        let ep = OpenAiEndpoint::new("http://h/v1/", "gpt-x", None, Duration::from_secs(1), true);
        assert_eq!(ep.url("/chat/completions"), "http://h/v1/chat/completions");
        let req = ChatRequest {
            system: Some("sys".into()),
            messages: vec![
                Message::user("q"),
                Message::assistant("a"),
                Message::user("x"),
            ],
            temperature: 0.0,
            max_tokens: 7,
        };
        let b = ep.body(&req);
        assert_eq!(b["model"], "gpt-x");
        assert_eq!(b["messages"][0], json!({"role":"system","content":"sys"}));
        assert_eq!(b["messages"][2], json!({"role":"assistant","content":"a"}));
        assert_eq!(b["max_completion_tokens"], 7);
        let local = OpenAiEndpoint::new("http://h/v1", "m", None, Duration::from_secs(1), false);
        assert_eq!(local.body(&req)["max_tokens"], 7);
    }

    #[test]
    fn completion_text_and_usage_are_read() {
        let ok = json!({"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],
                        "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}});
        let c = parse_completion(&ok).unwrap();
        assert_eq!(c.text, "hi");
        assert_eq!(
            c.usage,
            Some(Usage {
                input_tokens: 12,
                output_tokens: 3,
                ..Usage::default()
            })
        );
        let null = json!({"choices":[{"message":{"role":"assistant","content":null}}]});
        assert_eq!(parse_completion(&null).unwrap().text, "");
        assert!(parse_completion(&json!({"object":"list"})).is_err());
        assert!(!c.cut_off);
    }

    #[test]
    fn refusals_and_filtered_replies_are_told_apart_from_labels() {
        let reply = |message: Value, finish: &str| {
            parse_completion(
                &json!({"choices":[{"message": message, "finish_reason": finish}],
                                     "usage":{"prompt_tokens":9,"completion_tokens":5}}),
            )
            .unwrap()
        };
        let refused = reply(json!({"content": null, "refusal": "No."}), "stop");
        assert_eq!(refused.refusal.as_deref(), Some("No."));
        assert!(refused.usage.is_some(), "billed");
        let filtered = reply(json!({"content": "Half a"}), "content_filter");
        assert!(filtered.refusal.unwrap().contains("content filter"));
        // Text besides a refusal is the label; a null refusal is none.
        assert_eq!(
            reply(json!({"content": "re: x", "refusal": "No."}), "stop").refusal,
            None
        );
        assert_eq!(
            reply(json!({"content": "re: x", "refusal": null}), "stop").refusal,
            None
        );
    }

    /// Answers every request with the same reply, stopped at max_tokens.
    struct CutOffApi;
    impl ChatApi for CutOffApi {
        fn complete(&self, _req: &ChatRequest) -> Result<Completion, CallError> {
            Ok(parse_completion(&json!({
                "choices":[{"message":{"role":"assistant","content":"Meeting moved to"},
                            "finish_reason":"length"}],
                "usage":{"prompt_tokens":10,"completion_tokens":4}
            }))
            .unwrap())
        }
    }

    /// Numbers its replies, so a second call for one request gets another label.
    struct CountingApi(std::sync::atomic::AtomicUsize);
    impl ChatApi for CountingApi {
        fn complete(&self, _req: &ChatRequest) -> Result<Completion, CallError> {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            Ok(parse_completion(&json!({
                "choices":[{"message":{"role":"assistant","content":format!("label {n}")},
                            "finish_reason":"stop"}],
                "usage":{"prompt_tokens":10,"completion_tokens":2}
            }))
            .unwrap())
        }
    }

    /// A custom-server labeller config with its cache in `cache` (the server is never called:
    /// the tests give the client an in-process API).
    fn local_config(cache: &std::path::Path) -> crate::labeller::llm_config::LlmLabellerConfig {
        let mut cfg = crate::labeller::llm_config::LlmLabellerConfig::new(
            crate::labeller::llm_config::Provider::Custom,
            "m",
        );
        cfg.base_url = Some("http://127.0.0.1:9/v1".into());
        cfg.cache_dir = Some(cache.to_path_buf());
        cfg
    }

    #[test]
    fn a_repeated_input_is_bought_once_at_any_concurrency() {
        let cache = tempfile::tempdir().unwrap();
        let mut cfg = local_config(cache.path());
        cfg.concurrency = 4;
        cfg.temperature = 0.7;
        let api = std::sync::Arc::new(CountingApi(Default::default()));
        struct Shared(std::sync::Arc<CountingApi>);
        impl ChatApi for Shared {
            fn complete(&self, req: &ChatRequest) -> Result<Completion, CallError> {
                self.0.complete(req)
            }
        }
        let client =
            crate::labeller::llm::LlmClient::with_api(&cfg, Box::new(Shared(api.clone()))).unwrap();
        let req = |q: &str| ChatRequest {
            system: None,
            messages: vec![Message::user(q)],
            temperature: 0.7,
            max_tokens: 4,
        };
        let out = client
            .complete_all(&[req("a"), req("a"), req("b"), req("a")])
            .unwrap();
        assert_eq!(
            api.0.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "a and b once each"
        );
        let texts: Vec<&str> = out.replies.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts[0], texts[1]);
        assert_eq!(texts[0], texts[3]);
        assert_ne!(texts[0], texts[2]);
        assert!(!out.replies[0].cached && out.replies[1].cached && out.replies[3].cached);
    }

    #[test]
    fn replies_cut_off_at_max_tokens_are_kept_and_counted() {
        let cache = tempfile::tempdir().unwrap();
        let cfg = local_config(cache.path());
        let client = crate::labeller::llm::LlmClient::with_api(&cfg, Box::new(CutOffApi)).unwrap();
        let req = |q: &str| ChatRequest {
            system: None,
            messages: vec![Message::user(q)],
            temperature: 0.0,
            max_tokens: 4,
        };
        let out = client.complete_all(&[req("a"), req("b")]).unwrap();
        assert_eq!(out.replies.len(), 2);
        assert_eq!(out.replies[0].text, "Meeting moved to");
        assert_eq!(client.cut_off_replies(), 2);
    }
}
