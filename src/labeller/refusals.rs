//! Requests the model refused (see [`Completion::refusal`](super::llm::Completion)), kept in
//! the label cache folder as `refusals.jsonl`, keyed like labels. A refusal is billed and most
//! likely repeated, so a later call or a resumed run that needs the same request fails with
//! the same advice instead of paying for it again.
use super::append_log::AppendLog;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

pub const REFUSALS_FILE: &str = "refusals.jsonl";

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
    pub fn remembered_message(&self, refusal: &str) -> String {
        format!(
            "{} (refused in an earlier call and not sent again; to ask it again anyway, delete \
             its line from {})",
            super::llm::refusal_message(refusal),
            self.log.path().display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let message = again.remembered_message("no");
        assert!(
            message.contains("take the item out of the data") && message.contains(REFUSALS_FILE),
            "{message}"
        );
    }
}
