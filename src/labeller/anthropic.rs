//! Anthropic messages API (`POST {base_url}/v1/messages`, `x-api-key`,
//! `anthropic-version: 2023-06-01`, system prompt as a top-level field).
use super::llm::{ApiKey, ChatApi, Completion, Usage};
use super::openai::{head, refuse_redirect};
use super::prompt::{ChatRequest, Role};
use super::retry::{classify_ureq, CallError};
use serde_json::{json, Value};
use std::time::Duration;

pub const API_VERSION: &str = "2023-06-01";

pub struct AnthropicApi {
    agent: ureq::Agent,
    /// Without the version path, e.g. `https://api.anthropic.com`.
    base_url: String,
    model: String,
    key: ApiKey,
    timeout: Duration,
}

impl AnthropicApi {
    pub fn new(base_url: &str, model: &str, key: ApiKey, timeout: Duration) -> Self {
        AnthropicApi {
            // Never follow a redirect: ureq would forward the x-api-key header with it.
            agent: ureq::AgentBuilder::new()
                .timeout_connect(timeout.min(Duration::from_secs(10)))
                .redirects(0)
                .build(),
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            key,
            timeout,
        }
    }

    /// The JSON body of a messages request.
    pub fn body(&self, req: &ChatRequest) -> Value {
        let messages: Vec<Value> = req
            .messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                json!({"role": role, "content": m.content})
            })
            .collect();
        let mut body = json!({
            "model": self.model,
            "max_tokens": req.max_tokens,
            "messages": messages,
            "temperature": req.temperature,
        });
        if let Some(system) = &req.system {
            body["system"] = json!(system);
        }
        body
    }
}

/// Read a message object: the text blocks joined, and the usage.
pub fn parse_message(body: &Value) -> Result<Completion, CallError> {
    let blocks = body
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| CallError::transient("reply has no content array"))?;
    let text: String = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    // Anthropic's input_tokens leaves out the tokens read from and written to its prompt
    // cache, which are billed all the same.
    let usage = body.get("usage").and_then(|u| {
        let tokens = |field: &str| u.get(field).and_then(Value::as_u64).unwrap_or(0);
        let (read, written) = (
            tokens("cache_read_input_tokens"),
            tokens("cache_creation_input_tokens"),
        );
        Some(Usage {
            input_tokens: u.get("input_tokens")?.as_u64()? + read + written,
            output_tokens: u.get("output_tokens")?.as_u64()?,
            cached_input_tokens: read,
            cache_write_tokens: written,
        })
    });
    let stop = body.get("stop_reason").and_then(Value::as_str);
    let cut_off = stop == Some("max_tokens");
    // The safety classifier stopped it: any text before the stop is not a label.
    let refusal = (stop == Some("refusal")).then(|| {
        let said = text.trim();
        if said.is_empty() {
            "stop_reason refusal".to_string()
        } else {
            format!("stop_reason refusal after {:?}", head(said))
        }
    });
    Ok(Completion {
        text,
        usage,
        cut_off,
        refusal,
    })
}

impl ChatApi for AnthropicApi {
    fn complete(&self, req: &ChatRequest) -> Result<Completion, CallError> {
        let url = format!("{}/v1/messages", self.base_url);
        let resp = self
            .agent
            .post(&url)
            .timeout(self.timeout)
            .set("x-api-key", self.key.expose())
            .set("anthropic-version", API_VERSION)
            .set("content-type", "application/json")
            .send_string(&self.body(req).to_string())
            .map_err(|e| classify_ureq(e, Some(self.key.var()), &|t| self.key.redact(t)))?;
        refuse_redirect(&resp, &url, &|t| self.key.redact(t))?;
        let text = resp
            .into_string()
            .map_err(|e| CallError::Unanswered(format!("reply cut off: {e}")))?;
        // A 200 whose body is not a reply: billed, most likely, though unreadable.
        let json: Value = serde_json::from_str(&text).map_err(|e| {
            CallError::Unanswered(format!(
                "reply is not JSON ({e}): {}",
                head(&self.key.redact(&text))
            ))
        })?;
        // Its refusal quotes the reply, which a server echoing the request's headers fills
        // with the key.
        let mut message = parse_message(&json)
            .map_err(|e| CallError::Unanswered(self.key.redact(e.message())))?;
        message.refusal = message.refusal.map(|r| self.key.redact(&r));
        // Its text becomes a label, kept in the label cache and the run's results.
        message.text = self.key.redact(&message.text);
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labeller::prompt::Message;

    #[test]
    fn body_puts_system_at_top_level() {
        let api = AnthropicApi::new(
            "http://h/",
            "claude-x",
            ApiKey::for_tests("K", "secret"),
            Duration::from_secs(1),
        );
        let req = ChatRequest {
            system: Some("sys".into()),
            messages: vec![Message::user("x")],
            temperature: 0.2,
            max_tokens: 9,
        };
        let b = api.body(&req);
        assert_eq!(b["system"], "sys");
        assert_eq!(b["messages"], json!([{"role":"user","content":"x"}]));
        assert_eq!(b["max_tokens"], 9);
        let no_sys = ChatRequest {
            system: None,
            ..req
        };
        assert!(api.body(&no_sys).get("system").is_none());
    }

    #[test]
    fn text_blocks_and_usage_are_read() {
        let m = json!({"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
            "content":[{"type":"thinking","thinking":"hmm"},{"type":"text","text":"Hello"},{"type":"text","text":" there"}],
            "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":20,"output_tokens":4}});
        let c = parse_message(&m).unwrap();
        assert_eq!(c.text, "Hello there");
        assert_eq!(
            c.usage,
            Some(Usage {
                input_tokens: 20,
                output_tokens: 4,
                ..Usage::default()
            })
        );
        assert!(parse_message(&json!({"type":"message"})).is_err());
        assert!(!c.cut_off);
        let cut = json!({"content":[{"type":"text","text":"Meeting moved"}],
            "stop_reason":"max_tokens","usage":{"input_tokens":20,"output_tokens":2}});
        assert!(parse_message(&cut).unwrap().cut_off);
    }
}
