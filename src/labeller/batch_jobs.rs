//! Batch jobs across runs: a submitted job is saved in the label cache folder
//! (`batches/<id>.json`, with the keys of its requests) before polling starts, so a run killed
//! while waiting re-attaches to it on resume instead of submitting (and paying) again; a
//! call collects every saved job holding a request it needs, then sends its remaining cache
//! misses that fit the budget as one new job.
use super::batch::{
    batch_errors, job_tag, read_marker, saved_path, Answered, BatchApi, LineFailure, SavedBatch,
    BATCHES_DIR,
};
use super::budget::Held;
use super::llm::{LlmClient, Replies, Reply};
use super::prompt::ChatRequest;
use super::refusals::refusal_message;
use super::spend_log::Spent;
use crate::util::atomic_write;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

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
/// reservation in `held`, with the errors of the requests this call holds a reservation for.
/// On an error (polling gives up, a write fails) what is still held is released: the saved
/// job stays, and the call that collects it counts what it cost.
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
    mut held: Held<'_>,
    by_key: &HashMap<&str, &ChatRequest>,
) -> Result<(HashMap<String, Reply>, Vec<LineFailure>)> {
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
        let wanted = held.contains(key);
        let mut result = results.remove(key);
        let answered = match &result {
            Some(Ok(answered)) => Some(answered),
            Some(Err(failure)) => failure.billed.as_ref(),
            None => None,
        };
        // A reply without usage was billed all the same: it counts at an estimate no lower
        // than the bill, within the worst case held for it, as a live reply does.
        let billed = answered
            .map(|a| client.billed_usage(by_key.get(key.as_str()).copied(), a.usage, &a.text));
        let cost = match (&result, billed) {
            (_, Some(usage)) => prices.cost_of(&usage),
            (Some(Err(failure)), None) if failure.unreadable => by_key
                .get(key.as_str())
                .map_or(0.0, |req| client.worst_case(req, &prices)),
            _ => 0.0,
        };
        if let Some(Err(failure)) = &mut result {
            if let Some(refusal) = &failure.refusal {
                // A job another run submitted may hold requests this call does not make: they
                // were made by a client of the same settings, most likely.
                let temperature = by_key
                    .get(key.as_str())
                    .map_or(client.temperature, |r| r.temperature);
                // Whoever wants this request next gets the refusal, not a new bill for it
                // (at temperature 0; see `refusals.rs`).
                failure.remembered = client.remember_refusal(key, temperature, refusal)?;
                failure.message = refusal_message(refusal, temperature, client.role);
            }
        }
        match result {
            // The saved job stays until the end, so a run killed before a label reaches the
            // cache collects it again: labels need no spend log line.
            Some(Ok(Answered { text, .. })) if client.cache.peek(key).is_none() => {
                let usage = billed.unwrap_or_default();
                let Some(r) = held.take(key) else {
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
                if !wanted {
                    continue;
                }
                let spent = match &other {
                    Some(Ok(_)) => Spent::Duplicate,
                    Some(Err(LineFailure {
                        refusal: Some(_), ..
                    })) => Spent::Refused,
                    Some(Err(LineFailure {
                        unreadable: true, ..
                    })) => Spent::Lost,
                    _ => Spent::Empty,
                };
                // Billed but no label. Counted once: a run that died after logging it has it
                // counted already (see `spend_log.rs`).
                let first =
                    cost == 0.0 || client.log_batch_line(&saved.batch_id, key, cost, spent)?;
                let counted = if first { cost } else { 0.0 };
                if let Some(r) = held.take(key) {
                    client.budget.settle(r, counted);
                }
                client.add_unlabelled(counted);
                match other {
                    Some(Ok(_)) => {}
                    Some(Err(failure)) => errors.push(failure),
                    None if status == "failed" => {
                        errors.push(LineFailure::unbilled(api.redact(&batch_errors(&batch))))
                    }
                    None => {
                        errors.push(LineFailure::unbilled(format!("no result (batch {status})")))
                    }
                }
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
    let mut errors: Vec<LineFailure> = Vec::new();

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
        let mut held = Held::new(&client.budget);
        for k in saved.keys.iter().filter(|k| missing.contains(k.as_str())) {
            let worst = client.worst_case(by_key[k.as_str()], &prices);
            held.push(k, client.budget.force_reserve(worst));
        }
        let (replies, errs) = run_job(client, api, &saved, held, &by_key)?;
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
    let mut refused_at = None;
    // Released on every early return (see `Held`).
    let mut job = Held::new(&client.budget);
    let mut held_for_hits = Held::new(&client.budget);
    let mut seen: HashSet<&str> = HashSet::new();
    let mut in_job: HashSet<&str> = HashSet::new();
    for (i, key) in keys.iter().enumerate() {
        let first = seen.insert(key.as_str());
        let in_this_call = paid.contains_key(key) || in_job.contains(key.as_str());
        if in_this_call && (first || !charged) {
            continue;
        }
        let hit = !in_this_call && client.cache.peek(key).is_some();
        if hit && !charged {
            client.cache.count(true);
            continue;
        }
        if !hit && !in_this_call {
            if let Some(refusal) = client.remembered_refusal(key, requests[i].temperature) {
                refused_at = Some((i, refusal));
                break;
            }
        }
        match client
            .budget
            .try_reserve(client.worst_case(&requests[i], &prices))
        {
            Some(r) if hit || in_this_call => {
                if hit {
                    client.cache.count(true);
                }
                held_for_hits.push(key, r);
            }
            Some(r) => {
                client.cache.count(false);
                job.push(key, r);
                in_job.insert(key.as_str());
            }
            None => {
                stop_at = Some(i);
                break;
            }
        }
    }
    if refused_at.is_some() {
        // The call fails at the refused request before sending anything, as live sending does
        // (see `LlmClient::refusal_ahead`).
        job.release_all();
    }
    if !job.is_empty() {
        let job_keys: Vec<String> = job.keys().map(str::to_string).collect();
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
        let (input_file_id, batch_id) = submitted?;
        let saved = SavedBatch {
            batch_id,
            input_file_id,
            keys: job_keys,
        };
        let path = saved_path(client.cache.dir(), &saved.batch_id);
        let json = serde_json::to_string_pretty(&saved).context("cannot encode the batch job")?;
        if let Err(e) = atomic_write(&path, json.as_bytes()) {
            return Err(e.context(format!(
                "batch {} was submitted but its id could not be saved (a rerun finds it by its metadata)",
                saved.batch_id
            )));
        }
        let (replies, errs) = run_job(client, api, &saved, job, &by_key)?;
        paid.extend(replies);
        errors.extend(errs);
    }

    for (key, r) in held_for_hits.take_all() {
        match client.cache.peek(&key) {
            // A call that fails at a refusal counts nothing for its hits, as live sending.
            Some(hit) if refused_at.is_none() => client.budget.settle(r, client.cached_cost(&hit)),
            _ => client.budget.release(r),
        }
    }
    if !errors.is_empty() {
        let rerun = if errors.iter().any(|e| e.remembered) {
            "a rerun sends the failed ones again, but not the refused ones"
        } else {
            "rerun to retry the failed ones"
        };
        bail!(
            "{} batch request(s) failed, first: {}; the {} replies received are in the label cache {} ({rerun})",
            errors.len(),
            errors[0].message,
            paid.len(),
            client.cache.dir().display()
        );
    }
    if let Some((i, refusal)) = refused_at {
        return Err(client.stopped_at_refusal(i, requests.len(), &refusal));
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
