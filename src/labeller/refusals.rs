//! Requests the model refused (see [`Completion::refusal`](super::llm::Completion)), kept in
//! the label cache folder as `refusals.jsonl`, keyed like labels.
//!
//! A refusal is billed. At temperature 0 the same request gets the same reply, so a refusal is
//! remembered: a later call or a resumed run that needs it fails with the same advice instead
//! of paying for it again. At a temperature above 0 the model samples, and the same request
//! may well be answered next time, so a refusal is not remembered: the call still stops at it
//! (asking again at once, in a loop, could pay for many refusals), and a rerun asks it once
//! more. What those refusals cost is counted like any attempt that bought no label (the
//! cell's spend log and state), so the cell's money budget bounds what reruns pay for them.
use super::append_log::AppendLog;
use super::budget::Prices;
use super::llm::{LlmClient, RequestFailed, Role};
use super::prompt::ChatRequest;
use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

pub const REFUSALS_FILE: &str = "refusals.jsonl";

/// Where a call meets a request refused in an earlier call (see
/// [`LlmClient::refusal_ahead`]).
#[derive(Debug, PartialEq)]
pub(super) enum RefusalAhead {
    /// No request of the call holds a remembered refusal.
    None,
    /// The call reaches request `.0` within its budget: it is bound to fail there, so it
    /// sends nothing (the labels before it would be paid for a failed call, and for nothing
    /// if the refusal is answered by a new prompt or model). What the model said is `.1`.
    Reached(usize, String),
    /// Request `refused` holds one, but the worst cases stop fitting the budget at request
    /// `stop` before it: a Batch job stops there. Live sending stops there too, although the
    /// actual costs, known only once paid, might have reached the refusal: going further could
    /// pay for the labels of a call that then fails, and the two modes would part ways.
    BeyondBudget { stop: usize, refused: usize },
}

/// Whether a refusal at `temperature` is remembered (see the module documentation).
pub fn remembered_at(temperature: f64) -> bool {
    temperature == 0.0
}

/// The error of a request refused at `temperature` by the model of a client for `role`,
/// saying what to do (see [`Completion::refusal`](super::llm::Completion)).
pub fn refusal_message(refusal: &str, temperature: f64, role: Role) -> String {
    let (task, change) = (role.task(), role.on_refusal());
    if remembered_at(temperature) {
        format!(
            "the model refused to {task} it ({refusal:?}); it is not asked again, since a \
             refusal is billed and at temperature 0 the same request gets the same reply: {change}"
        )
    } else {
        format!(
            "the model refused to {task} it ({refusal:?}); the call stops here, since asking \
             again is billed again; at temperature {temperature} the model may answer it \
             another time: rerun to ask it once more, or {change}"
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Refused {
    key: String,
    provider: String,
    model: String,
    /// What the model said, or what stopped it.
    refusal: String,
}

pub struct Refusals {
    log: AppendLog,
    by_key: Mutex<HashMap<String, String>>,
}

impl Refusals {
    /// Open (or create) the refusals of the label cache in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let (log, read) = AppendLog::open::<Refused>(
            &dir.join(REFUSALS_FILE),
            "not a remembered refusal; delete the line (its request will be asked again)",
        )?;
        let by_key = read.into_iter().map(|r| (r.key, r.refusal)).collect();
        Ok(Refusals {
            log,
            by_key: Mutex::new(by_key),
        })
    }

    fn by_key(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // Only inserted into whole: a panicked holder cannot leave it half-updated.
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the model said when it refused the request `key`, if it did.
    pub fn get(&self, key: &str) -> Option<String> {
        self.by_key().get(key).cloned()
    }

    /// Remember that the request `key` was refused, on disk before returning.
    pub fn remember(&self, key: &str, provider: &str, model: &str, refusal: &str) -> Result<()> {
        if self.get(key).is_some() {
            return Ok(());
        }
        self.log.append(&Refused {
            key: key.to_string(),
            provider: provider.to_string(),
            model: model.to_string(),
            refusal: refusal.to_string(),
        })?;
        self.by_key().insert(key.to_string(), refusal.to_string());
        Ok(())
    }

    /// The error of a request refused in an earlier call: the advice it got then, and how to
    /// ask it again after all.
    pub fn remembered_message(&self, refusal: &str, role: Role) -> String {
        format!(
            "{} (refused in an earlier call and not sent again; to ask it again anyway, delete \
             its line from {})",
            refusal_message(refusal, 0.0, role),
            self.log.path().display()
        )
    }
}

impl LlmClient {
    /// What the model said when it refused request `key` at `temperature` before, if it did
    /// and the refusal is remembered (only at temperature 0: a refusal remembered by an older
    /// version at another temperature is not held against the request).
    pub(super) fn remembered_refusal(&self, key: &str, temperature: f64) -> Option<String> {
        if !remembered_at(temperature) {
            return None;
        }
        self.refusals.get(key)
    }

    /// Remember that the model refused request `key`, when its `temperature` is 0; returns
    /// whether it is remembered.
    pub(super) fn remember_refusal(
        &self,
        key: &str,
        temperature: f64,
        refusal: &str,
    ) -> Result<bool> {
        if !remembered_at(temperature) {
            return Ok(false);
        }
        self.refusals
            .remember(key, self.provider.name(), &self.model, refusal)?;
        Ok(true)
    }

    /// Where a call meets the first request that holds a remembered refusal, if it does,
    /// judged as a Batch job reserves its requests: every request before it (cache misses,
    /// repeats and, when hits are charged, cache hits) at its worst case. The budget is left
    /// as it was.
    pub(super) fn refusal_ahead(
        &self,
        requests: &[ChatRequest],
        keys: &[String],
        prices: &Prices,
    ) -> RefusalAhead {
        let mut held = Vec::new();
        let mut seen = HashSet::new();
        let mut budget_stop = None;
        let mut found = RefusalAhead::None;
        for (i, (req, key)) in requests.iter().zip(keys).enumerate() {
            let hit = !seen.insert(key.as_str()) || self.cache.peek(key).is_some();
            if !hit {
                if let Some(refusal) = self.remembered_refusal(key, req.temperature) {
                    found = match budget_stop {
                        None => RefusalAhead::Reached(i, refusal),
                        Some(stop) => RefusalAhead::BeyondBudget { stop, refused: i },
                    };
                    break;
                }
            }
            if budget_stop.is_some() || (hit && !self.charges_cache_hits()) {
                continue;
            }
            match self.budget.try_reserve(self.worst_case(req, prices)) {
                Some(r) => held.push(r),
                None => budget_stop = Some(i),
            }
        }
        for r in held {
            self.budget.release(r);
        }
        found
    }

    /// The error of a call that stopped before sending anything at request `index` of `n`,
    /// refused in an earlier call.
    pub(super) fn stopped_at_refusal(
        &self,
        index: usize,
        n: usize,
        refusal: &str,
    ) -> anyhow::Error {
        anyhow!("{}", self.refusals.remembered_message(refusal, self.role)).context(RequestFailed {
            index,
            message: format!(
                "labelling stopped at item {} of {n} before sending anything",
                index + 1
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labeller::llm::{ChatApi, Completion};
    use crate::labeller::llm_config::{LlmLabellerConfig, Provider};
    use crate::labeller::retry::CallError;

    struct Unsent;
    impl ChatApi for Unsent {
        fn complete(&self, _req: &ChatRequest) -> std::result::Result<Completion, CallError> {
            Err(CallError::Fatal("not sent in this test".into()))
        }
    }

    /// An older version remembered refusals at any temperature: such a line does not stop a
    /// request sampled above 0, and none is written for one.
    #[test]
    fn only_refusals_at_temperature_zero_are_remembered_and_held_against_a_request() {
        let dir = tempfile::tempdir().unwrap();
        Refusals::open(dir.path())
            .unwrap()
            .remember("k", "custom", "m", "no")
            .unwrap();
        let mut cfg = LlmLabellerConfig::new(Provider::Custom, "m");
        cfg.base_url = Some("http://127.0.0.1:9/v1".into());
        cfg.cache_dir = Some(dir.path().to_path_buf());
        let client = LlmClient::with_api(&cfg, Box::new(Unsent)).unwrap();
        assert_eq!(client.remembered_refusal("k", 0.7), None);
        assert_eq!(client.remembered_refusal("k", 0.0).as_deref(), Some("no"));
        assert!(!client.remember_refusal("k2", 0.7, "no").unwrap());
        assert!(client.remember_refusal("k3", 0.0, "no").unwrap());
        let again = Refusals::open(dir.path()).unwrap();
        assert_eq!(again.get("k2"), None);
        assert_eq!(again.get("k3").as_deref(), Some("no"));
    }

    #[test]
    fn a_refusal_is_remembered_across_opens_once() {
        let dir = tempfile::tempdir().unwrap();
        let refusals = Refusals::open(dir.path()).unwrap();
        assert_eq!(refusals.get("k"), None);
        refusals.remember("k", "openai", "m", "no").unwrap();
        refusals.remember("k", "openai", "m", "no").unwrap();
        let again = Refusals::open(dir.path()).unwrap();
        assert_eq!(again.get("k").as_deref(), Some("no"));
        let text = std::fs::read_to_string(dir.path().join(REFUSALS_FILE)).unwrap();
        assert_eq!(text.lines().count(), 1);
        let message = again.remembered_message("no", Role::Labeller);
        assert!(
            message.contains("take the item out of the data") && message.contains(REFUSALS_FILE),
            "{message}"
        );
    }
}
