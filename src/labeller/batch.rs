//! OpenAI Batch API: the requests of one call go out as a JSONL file (`POST /files`,
//! purpose `batch`), run as one job (`POST /batches`), are polled (`GET /batches/{id}`) until
//! done, and come back as output and error files (`GET /files/{id}/content`) matched by
//! `custom_id` (the request's cache key).
//!
//! The job id is saved in the label cache folder (`batches/<id>.json`, with the keys of its
//! requests) before polling starts, so a run killed while waiting re-attaches to the job on
//! resume instead of submitting (and paying) again.
use super::budget::Reservation;
use super::llm::{LlmClient, Replies, Reply, Usage};
use super::openai::{head, parse_completion, OpenAiEndpoint};
use super::prompt::ChatRequest;
use super::retry::CallError;
use crate::util::atomic_write;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
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

/// The result of one request in a job: its text and usage, or why it bought no label and,
/// when the provider answered it all the same (an empty or refused reply), what it billed.
type Outcome = std::result::Result<(String, Usage), (String, Option<Usage>)>;

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
        super::openai::refuse_redirect(&resp, &self.endpoint.url(path), &|t| {
            self.endpoint.redact(t)
        })?;
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
    fn upload(&self, content: &str) -> std::result::Result<String, CallError> {
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
        let v: Value = resp
            .into_json()
            .map_err(|e| CallError::transient(format!("POST files: reply is not JSON: {e}")))?;
        string_field(&v, "id").map_err(CallError::transient)
    }

    /// Create the job, tagged in its metadata with [`job_tag`] so a run that dies before
    /// saving the id can still find it.
    fn create(&self, input_file_id: &str, tag: &str) -> std::result::Result<String, CallError> {
        let body = json!({
            "input_file_id": input_file_id,
            "endpoint": format!("/{}", self.api_path("chat/completions")),
            "completion_window": "24h",
            "metadata": {TAG_FIELD: tag},
        });
        let v = self.send_json("POST", "batches", Some(&body))?;
        string_field(&v, "id").map_err(CallError::transient)
    }

    /// A job among the 100 most recent whose metadata carries `tag` and whose results no run
    /// has read yet: still running (validating, in progress, finalizing), or completed with no
    /// read marker in `dir` (see [`read_marker`]). Returns its id and input file id. A job
    /// whose results were read is never taken again: its failed lines must be sent anew.
    fn find_submitted(
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
        resp.into_string()
            .map_err(|e| CallError::transient(format!("file {file_id} cut off: {e}")))
    }

    /// Poll until the job ends (completed, failed, expired, cancelled); returns the batch object.
    fn wait(&self, client: &LlmClient, batch_id: &str, total: usize) -> Result<Value> {
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
                other => bail!("batch {batch_id} has an unknown status {other:?}"),
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
    fn results(&self, client: &LlmClient, batch: &Value) -> Result<HashMap<String, Outcome>> {
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
                let custom_id = string_field(&v, "custom_id").map_err(anyhow::Error::msg)?;
                out.insert(custom_id, result_line(&v));
            }
        }
        Ok(out)
    }
}

fn sha2_of(text: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).to_vec()
}

fn string_field(v: &Value, field: &str) -> std::result::Result<String, String> {
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
fn result_line(v: &Value) -> Outcome {
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Err((
            super::retry::error_body_message(&json!({"error": err}).to_string()),
            None,
        ));
    }
    let status = v
        .pointer("/response/status_code")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let body = v.pointer("/response/body").cloned().unwrap_or(Value::Null);
    if status != 200 {
        return Err((
            format!(
                "HTTP {status}: {}",
                super::retry::error_body_message(&body.to_string())
            ),
            None,
        ));
    }
    let c = parse_completion(&body).map_err(|e| (e.message().to_string(), None))?;
    if let Some(refusal) = &c.refusal {
        return Err((super::llm::refusal_message(refusal), c.usage));
    }
    // Answered, so billed, but no label: the caller counts what it cost.
    if super::prompt::strip_think(&c.text).trim().is_empty() {
        return Err(("empty completion".into(), c.usage));
    }
    let usage = c
        .usage
        .ok_or_else(|| ("no usage in the batch reply".to_string(), None))?;
    Ok((c.text, usage))
}

fn saved_path(dir: &Path, batch_id: &str) -> PathBuf {
    dir.join(BATCHES_DIR).join(format!("{batch_id}.json"))
}

/// Left when a job's results have been read into the label cache, so a rerun that submits
/// the same requests again (its failed lines) does not re-attach to the finished job.
fn read_marker(dir: &Path, batch_id: &str) -> PathBuf {
    dir.join(BATCHES_DIR).join(format!("{batch_id}.read"))
}

/// Jobs saved by earlier runs of this cache.
fn saved_batches(dir: &Path) -> Result<Vec<SavedBatch>> {
    let folder = dir.join(BATCHES_DIR);
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let saved: SavedBatch = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a saved batch job; delete it if the job is no longer wanted",
                path.display()
            )
        })?;
        out.push(saved);
    }
    out.sort_by(|a, b| a.batch_id.cmp(&b.batch_id));
    Ok(out)
}

/// Run one job to the end and return the replies by key, each settled against its
/// reservation, with the errors of the requests this call holds a reservation for.
///
/// Every reply the job produced goes into the label cache, also those of requests this call
/// does not want (a job an earlier run submitted for other items): they were paid for, and a
/// later call takes them from the cache, counting them then, instead of buying them again. A
/// reply whose key the cache already holds (bought meanwhile by another run) is not written
/// over, so a label never changes once cached; if this call wanted it, what it cost counts as
/// money that bought no label.
fn run_job(
    client: &LlmClient,
    api: &BatchApi,
    saved: &SavedBatch,
    mut reservations: HashMap<String, Reservation>,
    by_key: &HashMap<&str, &ChatRequest>,
) -> Result<(HashMap<String, Reply>, Vec<String>)> {
    let started = Instant::now();
    let batch = api.wait(client, &saved.batch_id, saved.keys.len())?;
    let status = batch
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut results = api.results(client, &batch)?;
    let prices = client.prices.scaled(client.batch_discount);
    let mut replies = HashMap::new();
    let mut errors = Vec::new();
    for key in &saved.keys {
        let reservation = reservations.remove(key);
        let result = results.remove(key);
        let billed = match &result {
            Some(Ok((_, usage))) | Some(Err((_, Some(usage)))) => Some(usage.input_tokens),
            _ => None,
        };
        if let (Some(req), Some(tokens)) = (by_key.get(key.as_str()), billed) {
            client.observe_input(req, tokens);
        }
        match result {
            Some(Ok((_, usage))) if client.cache.peek(key).is_some() => {
                if let Some(r) = reservation {
                    let cost = prices.cost(usage.input_tokens, usage.output_tokens);
                    client.budget.settle(r, cost);
                    client.add_unlabelled(cost);
                }
            }
            Some(Ok((text, usage))) => {
                let cost = prices.cost(usage.input_tokens, usage.output_tokens);
                let Some(r) = reservation else {
                    // Not wanted by this call: kept for the call that wants it.
                    client.record(key, &text, usage, cost)?;
                    continue;
                };
                client.budget.settle(r, cost);
                client.record(key, &text, usage, cost)?;
                let reply = Reply {
                    text,
                    cost,
                    input_tokens: usage.input_tokens,
                    output_tokens: usage.output_tokens,
                    seconds: started.elapsed().as_secs_f64(),
                    cached: false,
                };
                replies.insert(key.clone(), reply);
            }
            other => {
                let Some(r) = reservation else {
                    continue;
                };
                let billed = match &other {
                    Some(Err((_, Some(usage)))) => {
                        prices.cost(usage.input_tokens, usage.output_tokens)
                    }
                    _ => 0.0,
                };
                // An empty reply was answered and billed: it stays spent.
                client.budget.settle(r, billed);
                client.add_unlabelled(billed);
                let why = match other {
                    Some(Err((e, _))) => e,
                    _ if status == "failed" => batch_errors(&batch),
                    _ => format!("no result (batch {status})"),
                };
                errors.push(why);
            }
        }
    }
    // Everything the job produced is in the label cache now; the job is finished.
    let marker = read_marker(client.cache.dir(), &saved.batch_id);
    atomic_write(&marker, b"").with_context(|| format!("cannot write {}", marker.display()))?;
    let path = saved_path(client.cache.dir(), &saved.batch_id);
    match std::fs::remove_file(&path) {
        // Another run sharing the cache collected the same job first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => other.with_context(|| format!("cannot remove {}", path.display()))?,
    }
    Ok((replies, errors))
}

fn batch_errors(batch: &Value) -> String {
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

/// The batch counterpart of `LlmClient::complete_live`: re-attach to saved jobs holding any
/// request this call still needs (collecting all their replies into the cache), then send the
/// remaining cache misses that fit the budget as one job.
pub(super) fn complete_batch(
    client: &LlmClient,
    api: &BatchApi,
    requests: &[ChatRequest],
) -> Result<Replies> {
    let keys: Vec<String> = requests.iter().map(|r| client.key_of(r)).collect();
    let by_key: HashMap<&str, &ChatRequest> =
        keys.iter().map(String::as_str).zip(requests).collect();
    let prices = client.prices.scaled(client.batch_discount);
    let mut paid: HashMap<String, Reply> = HashMap::new();
    let mut errors: Vec<String> = Vec::new();

    let missing: HashSet<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| client.cache.peek(k).is_none())
        .collect();
    for saved in saved_batches(client.cache.dir())? {
        // A job holding none of them is left to the run that wants it.
        if !saved.keys.iter().any(|k| missing.contains(k.as_str())) {
            continue;
        }
        // Already submitted and being paid for: hold the money of the requests this call
        // wants, even past the limit.
        let reservations = saved
            .keys
            .iter()
            .filter(|k| missing.contains(k.as_str()))
            .map(|k| {
                (
                    k.clone(),
                    client
                        .budget
                        .force_reserve(client.worst_case(by_key[k.as_str()], &prices)),
                )
            })
            .collect();
        let (replies, errs) = run_job(client, api, &saved, reservations, &by_key)?;
        paid.extend(replies);
        errors.extend(errs);
    }

    // New job: cache misses in request order, each reserved, until one does not fit. When
    // hits are charged (see `LlmClient::treat_cache_hits_as_free`), a hit and a repeat of a
    // request already in this call hold their worst case like a miss until the job is done,
    // then count at their price: every request passes the same test whether or not its label
    // was bought before, so the stop point does not depend on the cache.
    let charged = client.charges_cache_hits();
    let mut stop_at = None;
    let mut reservations = HashMap::new();
    let mut held_for_hits: Vec<(&str, Reservation)> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut job_keys: Vec<String> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let first = seen.insert(key.as_str());
        let in_this_call = paid.contains_key(key) || reservations.contains_key(key);
        if in_this_call && (first || !charged) {
            continue;
        }
        let hit = !in_this_call && client.cache.peek(key).is_some();
        if hit && !charged {
            client.cache.count(true);
            continue;
        }
        match client
            .budget
            .try_reserve(client.worst_case(&requests[i], &prices))
        {
            Some(r) if hit || in_this_call => {
                if hit {
                    client.cache.count(true);
                }
                held_for_hits.push((key.as_str(), r));
            }
            Some(r) => {
                client.cache.count(false);
                reservations.insert(key.clone(), r);
                job_keys.push(key.clone());
            }
            None => {
                stop_at = Some(i);
                break;
            }
        }
    }
    if !job_keys.is_empty() {
        let jobs: Vec<(&str, &ChatRequest)> = job_keys
            .iter()
            .map(|k| (k.as_str(), by_key[k.as_str()]))
            .collect();
        let content = api.input_file(&jobs);
        let tag = job_tag(&job_keys);
        // A run that died between creating the job and saving its id finds it here.
        let earlier = client
            .retry
            .run(0, "listing batches", || {
                api.find_submitted(&tag, client.cache.dir())
            })
            .unwrap_or_else(|e| {
                if std::env::var_os("LAB_VERBOSE").is_some() {
                    eprintln!("cannot list earlier batches ({e:#}); submitting a new one");
                }
                None
            });
        let submitted = match earlier {
            Some((batch_id, file_id)) => Ok((file_id, batch_id)),
            None => client
                .retry
                .run(0, "uploading the batch input file", || api.upload(&content))
                .and_then(|file_id| {
                    let id = client
                        .retry
                        .run(0, "creating the batch", || api.create(&file_id, &tag))?;
                    Ok((file_id, id))
                }),
        };
        let (input_file_id, batch_id) = match submitted {
            Ok(ids) => ids,
            Err(e) => {
                for (_, r) in reservations {
                    client.budget.release(r);
                }
                return Err(e);
            }
        };
        let saved = SavedBatch {
            batch_id,
            input_file_id,
            keys: job_keys,
        };
        let path = saved_path(client.cache.dir(), &saved.batch_id);
        let json = serde_json::to_string_pretty(&saved).context("cannot encode the batch job")?;
        if let Err(e) = atomic_write(&path, json.as_bytes()) {
            for (_, r) in reservations {
                client.budget.release(r);
            }
            return Err(e.context(format!(
                "batch {} was submitted but its id could not be saved (a rerun finds it by its metadata)",
                saved.batch_id
            )));
        }
        let (replies, errs) = run_job(client, api, &saved, reservations, &by_key)?;
        paid.extend(replies);
        errors.extend(errs);
    }

    for (key, r) in held_for_hits {
        match client.cache.peek(key) {
            Some(hit) => client.budget.settle(r, client.cached_cost(&hit)),
            None => client.budget.release(r),
        }
    }
    if !errors.is_empty() {
        bail!(
            "{} batch request(s) failed, first: {}; the {} replies received are in the label cache {} (rerun to retry the failed ones)",
            errors.len(),
            errors[0],
            paid.len(),
            client.cache.dir().display()
        );
    }
    let end = stop_at.unwrap_or(requests.len());
    let mut replies = Vec::with_capacity(end);
    let mut taken: HashSet<&str> = HashSet::new();
    for key in &keys[..end] {
        // A request repeated in one call is paid once: later copies are cache hits.
        let fresh = taken.insert(key.as_str());
        let reply = match paid.get(key) {
            Some(r) if fresh => r.clone(),
            _ => {
                let hit = client
                    .cache
                    .peek(key)
                    .with_context(|| format!("internal: no reply for request {key}"))?;
                client.reply_from_cache(hit)
            }
        };
        replies.push(reply);
    }
    Ok(Replies {
        replies,
        budget_reached: stop_at.is_some(),
    })
}
