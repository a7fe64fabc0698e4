//! OpenAI Batch API: the requests of one call go out as a JSONL file (`POST /files`,
//! purpose `batch`), run as one job (`POST /batches`), are polled (`GET /batches/{id}`) until
//! done, and come back as output and error files (`GET /files/{id}/content`) matched by
//! `custom_id` (the request's cache key).
//!
//! This file is the protocol and where saved jobs live in the label cache folder
//! (`batches/`); `batch_jobs.rs` saves, re-attaches to and collects them across runs.
use super::llm::{LlmClient, Usage};
use super::openai::{head, parse_completion, OpenAiEndpoint};
use super::prompt::ChatRequest;
use super::retry::CallError;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const BATCHES_DIR: &str = "batches";
/// Metadata key that tags a job with the requests it holds (see [`job_tag`]).
const TAG_FIELD: &str = "atgen_lab_job";

/// A short hash of a job's request keys, stored in the job's metadata.
pub fn job_tag(keys: &[String]) -> String {
    hex::encode(sha2_of(&keys.join("\n")))[..32].to_string()
}

pub struct BatchApi {
    endpoint: OpenAiEndpoint,
    poll: Duration,
    poll_max: Duration,
}

/// A submitted job, as saved in `batches/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedBatch {
    pub batch_id: String,
    pub input_file_id: String,
    /// Cache keys (= custom ids) of the requests in the job.
    pub keys: Vec<String>,
}

/// A completion the provider returned for a line, so billed: its text, and the usage it
/// reported (a compatible server, or a damaged line, may report none).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Answered {
    pub text: String,
    pub usage: Option<Usage>,
}

/// Why a request in a job bought no label.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LineFailure {
    pub message: String,
    /// The reply the provider billed, when it answered all the same (an empty or refused one).
    pub billed: Option<Answered>,
    /// What the model said, when it refused.
    pub refusal: Option<String>,
    /// A refusal that later calls do not send again (see `refusals.rs`).
    pub remembered: bool,
    /// A 200 whose body is not a completion: billed, most likely, for what is unknown.
    pub unreadable: bool,
}

impl LineFailure {
    pub(super) fn unbilled(message: String) -> Self {
        LineFailure {
            message,
            billed: None,
            refusal: None,
            remembered: false,
            unreadable: false,
        }
    }
}

/// The result of one request in a job: its reply, or why it bought no label.
pub(super) type Outcome = std::result::Result<Answered, LineFailure>;

impl BatchApi {
    pub fn new(endpoint: OpenAiEndpoint, poll: Duration, poll_max: Duration) -> Self {
        BatchApi {
            endpoint,
            poll,
            poll_max,
        }
    }

    /// The JSONL input file: one chat completion request per line, `custom_id` = cache key.
    pub fn input_file(&self, jobs: &[(&str, &ChatRequest)]) -> String {
        let url = format!("/{}", self.api_path("chat/completions"));
        let mut out = String::new();
        for (key, req) in jobs {
            let line = json!({"custom_id": key, "method": "POST", "url": url, "body": self.endpoint.body(req)});
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }

    /// `v1/chat/completions` for a base URL ending in `/v1`: batch lines name the endpoint by
    /// its path on the server.
    fn api_path(&self, rest: &str) -> String {
        let version = self
            .endpoint
            .base_url
            .rsplit('/')
            .next()
            .filter(|v| v.starts_with('v') && v[1..].chars().all(|c| c.is_ascii_digit()))
            .unwrap_or("v1");
        format!("{version}/{rest}")
    }

    fn send_json(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Value, CallError> {
        let req = self.endpoint.request(method, path);
        let resp = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        }
        .map_err(|e| self.endpoint.classify(e))?;
        self.refuse_redirect(&resp, path)?;
        let text = resp
            .into_string()
            .map_err(|e| CallError::transient(format!("reply cut off: {e}")))?;
        serde_json::from_str(&text).map_err(|e| {
            CallError::transient(format!(
                "{method} {path}: reply is not JSON ({e}): {}",
                head(&self.endpoint.redact(&text))
            ))
        })
    }

    /// Upload the input file (multipart form: `purpose=batch`, `file`); returns its id.
    pub(super) fn upload(&self, content: &str) -> std::result::Result<String, CallError> {
        let boundary = format!("atgen-lab-{}", &hex::encode(sha2_of(content))[..24]);
        let mut body = String::new();
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
        ));
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"batch.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n"
        ));
        body.push_str(content);
        body.push_str(&format!("\r\n--{boundary}--\r\n"));
        let resp = self
            .endpoint
            .request("POST", "files")
            .set(
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            )
            .send_string(&body)
            .map_err(|e| self.endpoint.classify(e))?;
        self.refuse_redirect(&resp, "files")?;
        let v: Value = resp
            .into_json()
            .map_err(|e| CallError::transient(format!("POST files: reply is not JSON: {e}")))?;
        self.field(&v, "id").map_err(CallError::transient)
    }

    /// A 3xx reply as the error that says where it points (see `openai::refuse_redirect`).
    fn refuse_redirect(&self, resp: &ureq::Response, path: &str) -> Result<(), CallError> {
        super::openai::refuse_redirect(resp, &self.endpoint.url(path), &|t| self.endpoint.redact(t))
    }

    /// `text` with the key taken out (see [`BatchApi::field`]).
    pub(super) fn redact(&self, text: &str) -> String {
        self.endpoint.redact(text)
    }

    /// A failed line as errors quote it: its message and refusal quote the server's reply.
    fn redact_failure(&self, failure: LineFailure) -> LineFailure {
        LineFailure {
            message: self.redact(&failure.message),
            refusal: failure.refusal.map(|r| self.redact(&r)),
            billed: failure.billed.map(|a| self.redact_answer(a)),
            ..failure
        }
    }

    /// A reply as the label cache and the run's results keep it.
    fn redact_answer(&self, answered: Answered) -> Answered {
        Answered {
            text: self.redact(&answered.text),
            ..answered
        }
    }

    /// A string field of a reply, or an error quoting the reply with the key taken out: a
    /// `base_url` that reaches an echo service or a debugging proxy gets the request's
    /// headers back, the key among them.
    fn field(&self, v: &Value, name: &str) -> std::result::Result<String, String> {
        string_field(v, name).map_err(|e| self.endpoint.redact(&e))
    }

    /// Create the job, tagged in its metadata with [`job_tag`] so a run that dies before
    /// saving the id can still find it.
    pub(super) fn create(
        &self,
        input_file_id: &str,
        tag: &str,
    ) -> std::result::Result<String, CallError> {
        let body = json!({
            "input_file_id": input_file_id,
            "endpoint": format!("/{}", self.api_path("chat/completions")),
            "completion_window": "24h",
            "metadata": {TAG_FIELD: tag},
        });
        let v = self.send_json("POST", "batches", Some(&body))?;
        self.field(&v, "id").map_err(CallError::transient)
    }

    /// A job among the 100 most recent whose metadata carries `tag` and whose results no run
    /// has read yet: still running (validating, in progress, finalizing), or completed with no
    /// read marker in `dir` (see [`read_marker`]). Returns its id and input file id. A job
    /// whose results were read is never taken again: its failed lines must be sent anew.
    pub(super) fn find_submitted(
        &self,
        tag: &str,
        dir: &Path,
    ) -> std::result::Result<Option<(String, String)>, CallError> {
        let list = self.send_json("GET", "batches?limit=100", None)?;
        let found = list
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|b| {
                let status = b.get("status").and_then(Value::as_str).unwrap_or("");
                let unread = match status {
                    "validating" | "in_progress" | "finalizing" => true,
                    "completed" => b
                        .get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| !read_marker(dir, id).exists()),
                    _ => false,
                };
                b.pointer(&format!("/metadata/{TAG_FIELD}"))
                    .and_then(Value::as_str)
                    == Some(tag)
                    && unread
            });
        Ok(found.and_then(|b| {
            Some((
                b.get("id")?.as_str()?.to_string(),
                b.get("input_file_id")?.as_str()?.to_string(),
            ))
        }))
    }

    fn file_content(&self, file_id: &str) -> std::result::Result<String, CallError> {
        let resp = self
            .endpoint
            .request("GET", &format!("files/{file_id}/content"))
            .call()
            .map_err(|e| self.endpoint.classify(e))?;
        self.refuse_redirect(&resp, &format!("files/{file_id}/content"))?;
        resp.into_string()
            .map_err(|e| CallError::transient(format!("file {file_id} cut off: {e}")))
    }

    /// Poll until the job ends (completed, failed, expired, cancelled); returns the batch object.
    pub(super) fn wait(&self, client: &LlmClient, batch_id: &str, total: usize) -> Result<Value> {
        let bar = crate::util::progress::bar(total as u64, "batch");
        bar.set_message(batch_id.to_string());
        let mut delay = self.poll;
        let started = Instant::now();
        loop {
            let what = format!("polling batch {batch_id}");
            let v = client.retry.run(0, &what, || {
                self.send_json("GET", &format!("batches/{batch_id}"), None)
            })?;
            let status = v.get("status").and_then(Value::as_str).unwrap_or("");
            if let Some(done) = v
                .pointer("/request_counts/completed")
                .and_then(Value::as_u64)
            {
                bar.set_position(done);
            }
            match status {
                "completed" | "failed" | "expired" | "cancelled" => {
                    bar.finish_and_clear();
                    return Ok(v);
                }
                "validating" | "in_progress" | "finalizing" | "cancelling" => {}
                other => bail!(
                    "batch {batch_id} has an unknown status {}",
                    self.redact(&format!("{other:?}"))
                ),
            }
            if std::env::var_os("LAB_VERBOSE").is_some() {
                eprintln!(
                    "batch {batch_id}: {status} after {:.0}s",
                    started.elapsed().as_secs_f64()
                );
            }
            std::thread::sleep(delay);
            delay = delay.mul_f64(1.5).min(self.poll_max);
        }
    }

    /// Results by custom id from the job's output and error files.
    pub(super) fn results(
        &self,
        client: &LlmClient,
        batch: &Value,
    ) -> Result<HashMap<String, Outcome>> {
        let mut out = HashMap::new();
        for field in ["output_file_id", "error_file_id"] {
            let Some(id) = batch.get(field).and_then(Value::as_str) else {
                continue;
            };
            let what = format!("downloading {field} {id}");
            let text = client.retry.run(0, &what, || self.file_content(id))?;
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let v: Value = serde_json::from_str(line)
                    .with_context(|| format!("line {} of batch file {id} is not JSON", n + 1))?;
                let custom_id = self.field(&v, "custom_id").map_err(anyhow::Error::msg)?;
                let outcome = result_line(&v)
                    .map(|a| self.redact_answer(a))
                    .map_err(|f| self.redact_failure(f));
                out.insert(custom_id, outcome);
            }
        }
        Ok(out)
    }
}

pub(super) fn sha2_of(text: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).to_vec()
}

pub(super) fn string_field(v: &Value, field: &str) -> std::result::Result<String, String> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "reply has no string field {field:?}: {}",
                head(&v.to_string())
            )
        })
}

/// One line of an output or error file: `{"custom_id", "response": {"status_code", "body"},
/// "error": null | {"code", "message"}}`.
pub(super) fn result_line(v: &Value) -> Outcome {
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Err(LineFailure::unbilled(super::retry::error_body_message(
            &json!({"error": err}).to_string(),
        )));
    }
    let status = v
        .pointer("/response/status_code")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let body = v.pointer("/response/body").cloned().unwrap_or(Value::Null);
    if status != 200 {
        return Err(LineFailure::unbilled(format!(
            "HTTP {status}: {}",
            super::retry::error_body_message(&body.to_string())
        )));
    }
    // Counted at its worst case, as a live reply that could not be read.
    let c = parse_completion(&body).map_err(|e| LineFailure {
        unreadable: true,
        ..LineFailure::unbilled(e.message().to_string())
    })?;
    // Answered, so billed, with or without usage: the caller counts what it cost.
    let answered = Answered {
        text: c.text,
        usage: c.usage,
    };
    if let Some(refusal) = c.refusal {
        return Err(LineFailure {
            // Said by the caller, which knows the request's temperature and the client's role.
            message: format!("refused: {refusal:?}"),
            billed: Some(answered),
            refusal: Some(refusal),
            remembered: false,
            unreadable: false,
        });
    }
    if super::prompt::says_nothing(&answered.text) {
        return Err(LineFailure {
            message: "empty completion".into(),
            billed: Some(answered),
            refusal: None,
            remembered: false,
            unreadable: false,
        });
    }
    Ok(answered)
}

/// The job's own errors, for a job that failed as a whole.
pub(super) fn batch_errors(batch: &Value) -> String {
    let msgs: Vec<String> = batch
        .pointer("/errors/data")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| super::retry::error_body_message(&json!({"error": e}).to_string()))
                .collect()
        })
        .unwrap_or_default();
    if msgs.is_empty() {
        "the batch failed".to_string()
    } else {
        format!("the batch failed: {}", msgs.join("; "))
    }
}

pub(super) fn saved_path(dir: &Path, batch_id: &str) -> PathBuf {
    dir.join(BATCHES_DIR).join(format!("{batch_id}.json"))
}

/// Left when a job's results have been read into the label cache, so a rerun that submits
/// the same requests again (its failed lines) does not re-attach to the finished job.
pub(super) fn read_marker(dir: &Path, batch_id: &str) -> PathBuf {
    dir.join(BATCHES_DIR).join(format!("{batch_id}.read"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labeller::llm::ApiKey;

    /// A line's failure quotes the server's reply: a server echoing the request's headers
    /// must not put the key into the error, nor into `refusals.jsonl`.
    #[test]
    fn failed_lines_are_quoted_without_the_key() {
        let key = ApiKey::for_tests("LAB_TEST_KEY_LINES", "sk-line-secret-42");
        let endpoint = OpenAiEndpoint::new(
            "http://127.0.0.1:9/v1",
            "m",
            Some(key),
            Duration::from_secs(1),
            false,
        );
        let api = BatchApi::new(endpoint, Duration::from_secs(1), Duration::from_secs(1));
        let line = |message: Value| {
            let v = json!({"custom_id": "k", "response": {"status_code": 200, "body":
                {"choices": [{"message": message, "finish_reason": "stop"}]}}});
            api.redact_failure(result_line(&v).unwrap_err())
        };
        let echoed = json!({"authorization": "Bearer sk-line-secret-42"});
        let not_text = line(json!({"content": echoed}));
        assert!(
            not_text.message.contains("content is not text")
                && not_text.message.contains("LAB_TEST_KEY_LINES redacted")
                && !not_text.message.contains("sk-line-secret-42"),
            "{}",
            not_text.message
        );
        let refused = line(json!({"content": null, "refusal": "no: sk-line-secret-42"}));
        for text in [&refused.message, refused.refusal.as_ref().unwrap()] {
            assert!(!text.contains("sk-line-secret-42"), "{text}");
        }
    }
}
