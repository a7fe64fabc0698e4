//! A cell's spend log, `<cell>/llm_spend.jsonl`: the money of every paid LLM attempt, on disk
//! as soon as it is known and before the reply is used, so a run killed at any moment leaves
//! nothing paid unrecorded.
//!
//! The cell's `state.json` counts money only when an iteration commits (or a failed call ends
//! the cell). Labels bought after that are in the label cache and counted again when a resumed
//! run takes them from there, but money that bought no label (empty replies, refusals, replies
//! that never arrived, attempts in flight when the process died) would be forgotten, and a
//! resumed run would spend that part of the budget a second time. So each live attempt is
//! logged before it is sent (`sent`, at its worst case) and again when its cost is known
//! (`paid`); batch lines that bought no label are logged once per job and line. On resume,
//! what the log says bought no label, less what the state already counts, is charged to the
//! first call. A label whose reply was logged but never reached the label cache is put there.
use super::append_log::AppendLog;
use super::cache::CachedReply;
use super::llm::LlmClient;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub const SPEND_LOG_FILE: &str = "llm_spend.jsonl";

/// What a paid attempt bought.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spent {
    /// A label: counted when the label is taken from the cache, so not counted here.
    Label,
    /// A reply with nothing in it.
    Empty,
    /// A refusal.
    Refused,
    /// A reply that never arrived or could not be read, counted at its worst case.
    Lost,
    /// A batch line whose label the cache held already (bought meanwhile by another run).
    Duplicate,
    /// An error reply: not billed.
    Unbilled,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
enum Entry {
    /// The first line: what the cell's state counted as money that bought no label when the
    /// log began (a cell started before logs were kept).
    Start { unlabelled: f64 },
    /// A live attempt about to be sent, holding its worst case.
    Sent { id: String, worst: f64 },
    /// What an attempt or batch line cost, once known.
    Paid {
        id: String,
        cost: f64,
        spent: Spent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<CachedReply>,
    },
}

pub struct SpendLog {
    log: AppendLog,
    /// Makes attempt ids unique across runs of the cell.
    session: String,
    next: AtomicU64,
    /// Ids with a `Paid` line.
    paid: Mutex<HashSet<String>>,
}

/// What an earlier run logged that the cell's state does not count yet.
#[derive(Debug, Default, PartialEq)]
pub struct Unrecorded {
    /// Dollars that bought no label.
    pub unlabelled: f64,
    /// Labels whose replies were logged, to be found in the label cache.
    pub labels: Vec<CachedReply>,
}

impl SpendLog {
    /// Open (or start) the log at `path`. `committed_unlabelled` is what the cell's state counts
    /// as money that bought no label: its spend less what its labels cost.
    pub fn open(path: &Path, committed_unlabelled: f64) -> Result<(SpendLog, Unrecorded)> {
        let (log, entries) = AppendLog::open::<Entry>(
            path,
            "not a spend log line; restore it, or delete the line (its money is then \
             forgotten, and the cell's money budget may be spent past by that much)",
        )?;
        let log = SpendLog {
            log,
            session: format!("{:016x}", rand::random::<u64>()),
            next: AtomicU64::new(0),
            paid: Mutex::new(HashSet::new()),
        };
        if entries.is_empty() {
            log.log.append(&Entry::Start {
                unlabelled: committed_unlabelled,
            })?;
            return Ok((log, Unrecorded::default()));
        }
        let mut logged_unlabelled = 0.0;
        let mut worst_of: HashMap<String, f64> = HashMap::new();
        let mut labels = Vec::new();
        {
            let mut paid = log.paid_ids();
            for entry in entries {
                match entry {
                    Entry::Start { unlabelled } => logged_unlabelled += unlabelled,
                    Entry::Sent { id, worst } => {
                        worst_of.insert(id, worst);
                    }
                    Entry::Paid {
                        id,
                        cost,
                        spent,
                        label,
                    } => {
                        if !paid.insert(id) {
                            continue;
                        }
                        match spent {
                            Spent::Label => labels.extend(label),
                            _ => logged_unlabelled += cost,
                        }
                    }
                }
            }
            // Sent and never settled: the run died waiting for the reply, which the provider
            // most likely billed all the same.
            logged_unlabelled += worst_of
                .iter()
                .filter(|(id, _)| !paid.contains(*id))
                .map(|(_, worst)| worst)
                .sum::<f64>();
        }
        let unrecorded = logged_unlabelled - committed_unlabelled;
        // The two sums add the same amounts in other orders.
        let rounding = 1e-12 * logged_unlabelled.abs().max(1.0);
        Ok((
            log,
            Unrecorded {
                unlabelled: if unrecorded > rounding {
                    unrecorded
                } else {
                    0.0
                },
                labels,
            },
        ))
    }

    fn paid_ids(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // Only inserted into whole: a panicked holder cannot leave it half-updated.
        self.paid.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Log an attempt about to be sent, holding `worst` dollars; returns its id.
    pub fn sent(&self, worst: f64) -> Result<String> {
        let id = format!(
            "{}-{}",
            self.session,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        self.log.append(&Entry::Sent {
            id: id.clone(),
            worst,
        })?;
        Ok(id)
    }

    /// Log what attempt `id` cost, with its reply when it bought a label. Returns false, and
    /// logs nothing, when `id` was logged as paid before (by a run that died after it).
    pub fn paid(
        &self,
        id: &str,
        cost: f64,
        spent: Spent,
        label: Option<&CachedReply>,
    ) -> Result<bool> {
        if self.paid_ids().contains(id) {
            return Ok(false);
        }
        self.log.append(&Entry::Paid {
            id: id.to_string(),
            cost,
            spent,
            label: label.cloned(),
        })?;
        self.paid_ids().insert(id.to_string());
        Ok(true)
    }
}

impl LlmClient {
    /// Log this client's paid attempts in the spend log at `path` (a cell's; see the module
    /// documentation). `committed_unlabelled` is what the cell's state counts as money that
    /// bought no label. What an earlier run logged beyond it is charged to the next call, and
    /// labels it logged that the label cache lacks are put there.
    pub fn keep_spend_log(&mut self, path: &Path, committed_unlabelled: f64) -> Result<()> {
        let (log, unrecorded) = SpendLog::open(path, committed_unlabelled)?;
        for label in unrecorded.labels {
            if self.cache.peek(&label.key).is_none() {
                self.cache.insert(label).with_context(|| {
                    format!(
                        "cannot put a label {} holds into the label cache",
                        path.display()
                    )
                })?;
            }
        }
        if unrecorded.unlabelled > 0.0 {
            eprintln!(
                "note: an earlier run of this cell paid ${:.6} for LLM replies that bought no \
                 label after its last saved iteration ({}); it is counted against the money \
                 budget",
                unrecorded.unlabelled,
                path.display()
            );
        }
        *super::llm::lock(&self.unrecorded) = unrecorded.unlabelled;
        self.spend_log = Some(log);
        Ok(())
    }

    /// Log an attempt about to be sent (see [`SpendLog::sent`]); `None` without a spend log.
    pub(super) fn log_sent(&self, worst: f64) -> Result<Option<String>> {
        self.spend_log.as_ref().map(|l| l.sent(worst)).transpose()
    }

    /// Log what attempt `id` cost (see [`SpendLog::paid`]); true without a spend log.
    pub(super) fn log_paid(
        &self,
        id: Option<&str>,
        cost: f64,
        spent: Spent,
        label: Option<&CachedReply>,
    ) -> Result<bool> {
        match (&self.spend_log, id) {
            (Some(log), Some(id)) => log.paid(id, cost, spent, label),
            _ => Ok(true),
        }
    }

    /// Log what a batch line cost that bought no label; false when a run that died after
    /// collecting the same job logged it already (its money is counted then).
    pub(super) fn log_batch_line(
        &self,
        batch_id: &str,
        key: &str,
        cost: f64,
        spent: Spent,
    ) -> Result<bool> {
        match &self.spend_log {
            Some(log) => log.paid(&format!("batch:{batch_id}:{key}"), cost, spent, None),
            None => Ok(true),
        }
    }

    /// Charge what an earlier run spent on no label, once (see [`LlmClient::keep_spend_log`]).
    /// It counts as money that bought no label in this call, so the caller records it.
    pub(super) fn charge_unrecorded(&self) {
        let amount = std::mem::take(&mut *super::llm::lock(&self.unrecorded));
        if amount > 0.0 {
            self.budget.charge(amount);
            self.add_unlabelled(amount);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(key: &str) -> CachedReply {
        CachedReply {
            key: key.into(),
            provider: "openai".into(),
            model: "m".into(),
            text: "a label".into(),
            input_tokens: 10,
            output_tokens: 2,
            cost: 0.5,
        }
    }

    #[test]
    fn what_bought_no_label_past_the_committed_amount_is_unrecorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SPEND_LOG_FILE);
        // A cell started before the log: its state already counts $0.25 that bought no label.
        let (log, first) = SpendLog::open(&path, 0.25).unwrap();
        assert_eq!(first, Unrecorded::default());
        let empty = log.sent(1.0).unwrap();
        assert!(log.paid(&empty, 0.125, Spent::Empty, None).unwrap());
        let bought = log.sent(1.0).unwrap();
        log.paid(&bought, 0.5, Spent::Label, Some(&label("k")))
            .unwrap();
        let unbilled = log.sent(1.0).unwrap();
        log.paid(&unbilled, 0.0, Spent::Unbilled, None).unwrap();
        // In flight when the run died.
        log.sent(2.0).unwrap();
        assert!(log
            .paid("batch:b1:k2", 0.0625, Spent::Refused, None)
            .unwrap());
        drop(log);

        let (log, after) = SpendLog::open(&path, 0.25).unwrap();
        assert_eq!(after.unlabelled, 0.125 + 2.0 + 0.0625);
        assert_eq!(after.labels, vec![label("k")]);
        // A job collected again after the run died: its lines were counted once already.
        assert!(!log
            .paid("batch:b1:k2", 0.0625, Spent::Refused, None)
            .unwrap());
        drop(log);
        // Once the state counts it all, nothing is left to charge.
        let (_, committed) = SpendLog::open(&path, 0.25 + 0.125 + 2.0 + 0.0625).unwrap();
        assert_eq!(committed.unlabelled, 0.0);
    }
}
