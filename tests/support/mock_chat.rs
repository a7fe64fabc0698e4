//! The mock server's completion endpoints: OpenAI chat completions and Anthropic messages,
//! with their usage, faults, refusals and error bodies, and the completion that batch lines
//! get too (`mock_batch.rs`). The server itself is in `mock_openai.rs`.
use super::mock_openai::{
    edited, json_response, last_user, openai_error, take_fault, Fault, Options, Recorded, Response,
    Route, Served, State, Turn, REFUSAL,
};
use serde_json::{json, Value};
use std::sync::Mutex;

/// Usage the server reports: ceil(chars/4) + 4 per turn for the prompt, ceil(chars/4) for the reply.
fn count_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn anthropic_error(status: u16, kind: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

pub(super) fn turns_of(body: &Value, with_system: bool) -> Vec<Turn> {
    let mut turns = Vec::new();
    if with_system {
        if let Some(s) = body.get("system").and_then(Value::as_str) {
            turns.push(("system".to_string(), s.to_string()));
        }
    }
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let content = m
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        turns.push((role, content));
    }
    turns
}

/// The reply text and usage for a request body, or an OpenAI error.
pub(super) fn complete(
    body: &Value,
    o: &Options,
    empty: bool,
) -> Result<(String, u64, u64, String), Response> {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    if model != o.model {
        return Err(openai_error(
            404,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
            "model_not_found",
        ));
    }
    let turns = turns_of(body, true);
    if turns.is_empty() {
        return Err(openai_error(
            400,
            "'messages' is a required property",
            "invalid_request_error",
            "invalid_value",
        ));
    }
    let chars: usize = turns.iter().map(|(_, c)| c.chars().count()).sum();
    if let Some(limit) = o.context_chars.filter(|l| chars > *l) {
        return Err(openai_error(
            400,
            &format!(
                "This model's maximum context length is {limit} characters. However, your messages resulted in {chars} characters. Please reduce the length of the messages."
            ),
            "invalid_request_error",
            "context_length_exceeded",
        ));
    }
    let text = if empty {
        String::new()
    } else {
        (o.responder)(&turns)
    };
    let input_tokens: u64 = turns.iter().map(|(_, c)| count_tokens(c) + 4).sum();
    let max = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    let output_tokens = count_tokens(&text).min(max);
    Ok((text, input_tokens, output_tokens, last_user(&turns)))
}

pub(super) fn completion_object(
    id: &str,
    model: &str,
    text: &str,
    input: u64,
    output: u64,
) -> Value {
    json!({
        "id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
        "system_fingerprint": "fp_mock"
    })
}

pub(super) fn apply_fault(fault: Option<Fault>, anthropic: bool) -> Result<bool, Response> {
    match fault {
        None => Ok(false),
        Some(Fault::RateLimit(secs)) => {
            let mut r = if anthropic {
                anthropic_error(
                    429,
                    "rate_limit_error",
                    "Number of requests has exceeded your rate limit",
                )
            } else {
                openai_error(
                    429,
                    "Rate limit reached for requests",
                    "requests",
                    "rate_limit_exceeded",
                )
            };
            r.headers.push(("Retry-After".into(), format!("{secs}")));
            Err(r)
        }
        Some(Fault::ServerError) if anthropic => {
            Err(anthropic_error(529, "overloaded_error", "Overloaded"))
        }
        Some(Fault::ServerError) => Err(openai_error(
            500,
            "The server had an error while processing your request.",
            "server_error",
            "server_error",
        )),
        Some(Fault::Slow(d)) => {
            std::thread::sleep(d);
            Ok(false)
        }
        Some(Fault::MalformedJson) => Err(Response {
            status: 200,
            body: "{\"id\": \"chatcmpl-1\", \"choices\": [".into(),
            headers: vec![],
        }),
        Some(Fault::Empty) => Ok(true),
        Some(Fault::Unauthorized) if anthropic => Err(anthropic_error(
            401,
            "authentication_error",
            "invalid x-api-key",
        )),
        Some(Fault::Unauthorized) => Err(openai_error(
            401,
            "Incorrect API key provided.",
            "invalid_request_error",
            "invalid_api_key",
        )),
        // Answered by `chat` itself, which has the request's headers.
        Some(Fault::EchoHeaders) => Ok(false),
        // Answered by `chat` and `messages`, as an empty reply in their own shape.
        Some(Fault::Refusal) => Ok(true),
        // Not a completion route's fault: answered as if there were none.
        Some(Fault::EchoHeadersJson) => Ok(false),
        // Answered by `chat` itself, which has the request's headers.
        Some(Fault::EchoHeadersAsContent) => Ok(false),
    }
}

pub(super) fn chat(req: &Recorded, state: &Mutex<State>, o: &Options) -> Response {
    let fault = take_fault(state, Route::Chat);
    if matches!(fault, Some(Fault::EchoHeaders)) {
        let prefix = "<html><body>Bad request. Headers received: Authorization: Bearer ";
        let padding = "x".repeat(280 - prefix.len());
        let shown = req
            .header("authorization")
            .unwrap_or("")
            .trim_start_matches("Bearer ");
        return Response {
            status: 400,
            body: format!("{prefix}{padding}{shown}</body></html>"),
            headers: vec![],
        };
    }
    if matches!(fault, Some(Fault::EchoHeadersAsContent)) {
        let mut headers = serde_json::Map::new();
        for (k, v) in &req.headers {
            headers.insert(k.clone(), json!(v));
        }
        let mut reply = completion_object("chatcmpl-echo", &o.model, "", 10, 10);
        reply["choices"][0]["message"]["content"] = Value::Object(headers);
        return json_response(200, reply);
    }
    let refused = matches!(fault, Some(Fault::Refusal));
    let empty = match apply_fault(fault, false) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let Ok(body) = serde_json::from_str::<Value>(&req.body) else {
        return openai_error(
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            "invalid_json",
        );
    };
    match complete(&body, o, empty) {
        Ok((text, input_tokens, output_tokens, input)) => {
            // An empty reply is useless to the client but billed all the same.
            state.lock().unwrap().served.push(Served {
                input,
                input_tokens,
                output_tokens,
                batch: false,
                empty: text.is_empty(),
                refused,
            });
            let mut reply = completion_object(
                "chatcmpl-mock",
                &o.model,
                &text,
                input_tokens,
                output_tokens,
            );
            if refused {
                reply["choices"][0]["message"]["content"] = Value::Null;
                reply["choices"][0]["message"]["refusal"] = json!(REFUSAL);
            }
            json_response(200, edited(o, reply))
        }
        Err(r) => r,
    }
}

pub(super) fn messages(req: &Recorded, state: &Mutex<State>, o: &Options) -> Response {
    if req.header("x-api-key") != Some(o.api_key.as_str()) {
        // Echoes the key it was given, as some gateways do, so tests can check it is redacted.
        let shown = req.header("x-api-key").unwrap_or("");
        return anthropic_error(
            401,
            "authentication_error",
            &format!("invalid x-api-key: {shown}"),
        );
    }
    if req.header("anthropic-version") != Some("2023-06-01") {
        return anthropic_error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    let fault = take_fault(state, Route::Messages);
    if matches!(fault, Some(Fault::EchoHeadersAsContent)) {
        let headers: Vec<String> = req
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        return json_response(
            200,
            json!({
                "id": "msg_echo", "type": "message", "role": "assistant", "model": o.model,
                "content": [{"type": "text", "text": headers.join("\n")}],
                "stop_reason": "refusal", "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 10}
            }),
        );
    }
    let refused = matches!(fault, Some(Fault::Refusal));
    let empty = match apply_fault(fault, true) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let Ok(body) = serde_json::from_str::<Value>(&req.body) else {
        return anthropic_error(400, "invalid_request_error", "invalid JSON body");
    };
    if body.get("max_tokens").and_then(Value::as_u64).is_none() {
        return anthropic_error(400, "invalid_request_error", "max_tokens: Field required");
    }
    let roles_ok = turns_of(&body, false)
        .iter()
        .all(|(r, _)| r == "user" || r == "assistant");
    if !roles_ok {
        return anthropic_error(
            400,
            "invalid_request_error",
            "messages: roles must be user or assistant; use the top-level system field",
        );
    }
    match complete(&body, o, empty) {
        Ok((text, input_tokens, output_tokens, input)) => {
            // An empty reply is useless to the client but billed all the same.
            state.lock().unwrap().served.push(Served {
                input,
                input_tokens,
                output_tokens,
                batch: false,
                empty: text.is_empty(),
                refused,
            });
            let content = if text.is_empty() {
                json!([])
            } else {
                json!([{"type": "text", "text": text}])
            };
            json_response(
                200,
                edited(
                    o,
                    json!({
                        "id": "msg_mock", "type": "message", "role": "assistant", "model": o.model,
                        "content": content,
                        "stop_reason": if refused { "refusal" } else { "end_turn" },
                        "stop_sequence": null,
                        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}
                    }),
                ),
            )
        }
        Err(_) => {
            let model = body.get("model").and_then(Value::as_str).unwrap_or("");
            anthropic_error(404, "not_found_error", &format!("model: {model}"))
        }
    }
}
