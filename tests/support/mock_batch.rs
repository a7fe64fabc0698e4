//! The mock server's file and batch endpoints: `POST /v1/files` (multipart), `POST /v1/batches`,
//! `GET /v1/batches` (list), `GET /v1/batches/{id}`; a batch completes after a set number of
//! polls, writing an output file and, when lines fail, an error file.
use super::mock_chat::{apply_fault, complete, completion_object, turns_of};
use super::mock_openai::{
    edited, json_response, last_user, openai_error, take_fault, Batch, Options, Recorded, Response,
    Route, Served, State, REFUSAL,
};
use serde_json::{json, Value};
use std::sync::Mutex;

pub(super) fn list_batches(state: &Mutex<State>) -> Response {
    let s = state.lock().unwrap();
    let mut data: Vec<&Batch> = s.batches.values().collect();
    data.sort_by(|a, b| b.object["id"].as_str().cmp(&a.object["id"].as_str()));
    let data: Vec<Value> = data.iter().map(|b| b.object.clone()).collect();
    json_response(
        200,
        json!({"object": "list", "first_id": data.first().map(|b| b["id"].clone()),
                                      "last_id": data.last().map(|b| b["id"].clone()), "has_more": false, "data": data}),
    )
}

fn new_id(state: &mut State, prefix: &str) -> String {
    state.next_id += 1;
    format!("{prefix}-{:06}", state.next_id)
}

/// `POST /v1/files`: multipart form with `purpose` and `file`.
pub(super) fn upload(req: &Recorded, state: &Mutex<State>) -> Response {
    let ct = req.header("content-type").unwrap_or("");
    let Some(boundary) = ct.split("boundary=").nth(1) else {
        return openai_error(
            400,
            "Expected multipart/form-data",
            "invalid_request_error",
            "invalid_content_type",
        );
    };
    let (mut purpose, mut file) = (None, None);
    for part in req.body.split(&format!("--{boundary}")) {
        let Some((head, content)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        if head.contains("name=\"purpose\"") {
            purpose = Some(content.to_string());
        } else if head.contains("name=\"file\"") {
            file = Some(content.to_string());
        }
    }
    let (Some(purpose), Some(file)) = (purpose, file) else {
        return openai_error(
            400,
            "Missing purpose or file",
            "invalid_request_error",
            "missing_field",
        );
    };
    if purpose != "batch" {
        return openai_error(
            400,
            &format!("Invalid purpose {purpose}"),
            "invalid_request_error",
            "invalid_purpose",
        );
    }
    let mut s = state.lock().unwrap();
    let id = new_id(&mut s, "file");
    let bytes = file.len();
    s.files.insert(id.clone(), file);
    json_response(
        200,
        json!({"id": id, "object": "file", "bytes": bytes, "created_at": 1_700_000_000,
                              "filename": "batch.jsonl", "purpose": "batch", "status": "processed"}),
    )
}

pub(super) fn create_batch(req: &Recorded, state: &Mutex<State>) -> Response {
    let Ok(body) = serde_json::from_str::<Value>(&req.body) else {
        return openai_error(
            400,
            "invalid JSON body",
            "invalid_request_error",
            "invalid_json",
        );
    };
    let input = body
        .get("input_file_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if body.get("endpoint").and_then(Value::as_str) != Some("/v1/chat/completions")
        || body.get("completion_window").and_then(Value::as_str) != Some("24h")
    {
        return openai_error(
            400,
            "endpoint must be /v1/chat/completions and completion_window 24h",
            "invalid_request_error",
            "invalid_value",
        );
    }
    let mut s = state.lock().unwrap();
    let Some(content) = s.files.get(&input) else {
        return openai_error(
            404,
            &format!("No such File object: {input}"),
            "invalid_request_error",
            "file_not_found",
        );
    };
    let total = content.lines().filter(|l| !l.trim().is_empty()).count();
    let id = new_id(&mut s, "batch");
    let object = json!({
        "id": id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": null,
        "input_file_id": input, "completion_window": "24h", "status": "validating",
        "output_file_id": null, "error_file_id": null, "created_at": 1_700_000_000,
        "in_progress_at": null, "expires_at": 1_700_086_400, "finalizing_at": null,
        "completed_at": null, "failed_at": null, "expired_at": null, "cancelling_at": null,
        "cancelled_at": null, "request_counts": {"total": total, "completed": 0, "failed": 0},
        "metadata": body.get("metadata").cloned().unwrap_or(Value::Null)
    });
    s.batches.insert(
        id,
        Batch {
            object: object.clone(),
            polls: 0,
        },
    );
    json_response(200, object)
}

pub(super) fn get_batch(id: &str, state: &Mutex<State>, o: &Options) -> Response {
    if let Some(fault) = take_fault(state, Route::BatchGet) {
        if let Err(r) = apply_fault(Some(fault), false) {
            return r;
        }
    }
    let mut s = state.lock().unwrap();
    let Some(b) = s.batches.get_mut(id) else {
        return openai_error(
            404,
            &format!("No such Batch object: {id}"),
            "invalid_request_error",
            "batch_not_found",
        );
    };
    b.polls += 1;
    if b.polls < o.batch_polls {
        b.object["status"] = json!("in_progress");
        return json_response(200, b.object.clone());
    }
    if b.object["status"] == "completed" {
        return json_response(200, b.object.clone());
    }
    let input_id = b.object["input_file_id"].as_str().unwrap().to_string();
    let content = s.files[&input_id].clone();
    let (mut out, mut err, mut served) = (String::new(), String::new(), Vec::new());
    let (mut ok_n, mut failed_n) = (0, 0);
    for (n, line) in content.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        let custom_id = v["custom_id"].clone();
        let body = &v["body"];
        let has = |marker: &Option<String>| {
            marker
                .as_ref()
                .is_some_and(|m| last_user(&turns_of(body, false)).contains(m.as_str()))
        };
        let refused = has(&o.batch_refusal_marker);
        let result = if has(&o.batch_fail_marker) {
            Err(openai_error(
                500,
                "The server had an error processing this request.",
                "server_error",
                "server_error",
            ))
        } else {
            complete(body, o, false)
        };
        match result {
            Ok((text, i, t, input)) => {
                ok_n += 1;
                served.push(Served {
                    input,
                    input_tokens: i,
                    output_tokens: t,
                    batch: true,
                    empty: text.is_empty(),
                    refused,
                });
                let mut body = completion_object(&format!("chatcmpl-b{n}"), &o.model, &text, i, t);
                if refused {
                    body["choices"][0]["message"]["content"] = Value::Null;
                    body["choices"][0]["message"]["refusal"] = json!(REFUSAL);
                }
                let body = edited(o, body);
                out.push_str(&json!({"id": format!("batch_req_{n}"), "custom_id": custom_id,
                    "response": {"status_code": 200, "request_id": format!("req_{n}"), "body": body}, "error": null}).to_string());
                out.push('\n');
            }
            Err(r) => {
                failed_n += 1;
                let body: Value = serde_json::from_str(&r.body).unwrap();
                err.push_str(&json!({"id": format!("batch_req_{n}"), "custom_id": custom_id,
                    "response": {"status_code": r.status, "request_id": format!("req_{n}"), "body": body}, "error": null}).to_string());
                err.push('\n');
            }
        }
    }
    let out_id = new_id(&mut s, "file");
    s.files.insert(out_id.clone(), out);
    let err_id = (failed_n > 0).then(|| new_id(&mut s, "file"));
    if let Some(e) = &err_id {
        s.files.insert(e.clone(), err);
    }
    s.served.extend(served);
    let b = s.batches.get_mut(id).unwrap();
    b.object["status"] = json!("completed");
    b.object["output_file_id"] = json!(out_id);
    b.object["error_file_id"] = json!(err_id);
    b.object["completed_at"] = json!(1_700_000_100);
    b.object["request_counts"] =
        json!({"total": ok_n + failed_n, "completed": ok_n, "failed": failed_n});
    json_response(200, b.object.clone())
}
