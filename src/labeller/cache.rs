//! The label cache: every paid reply on disk, keyed by (provider, model, request hash), so a
//! repeated or resumed run never pays for the same label twice.
//!
//! Layout of the cache folder:
//! - `labels.jsonl` — one [`CachedReply`] per line, append-only, fsynced after each line;
//! - `stats.json` — hits and misses counted over all runs (for `lab labels stats`);
//! - `refusals.jsonl` — requests the model refused, not to be asked again (see `refusals.rs`);
//! - `batches/` — Batch API jobs in flight (see `batch.rs`).
use super::append_log::{read_entries, AppendLog};
use crate::util::atomic_write;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub const LABELS_FILE: &str = "labels.jsonl";
pub const STATS_FILE: &str = "stats.json";

/// The environment variable that moves the label cache (every run and `lab labels stats`).
pub const CACHE_ENV: &str = "LAB_LABEL_CACHE";

/// Where labels are cached: `$LAB_LABEL_CACHE`, else `<user cache dir>/atgen-lab/labels`.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("atgen-lab")
        .join("labels")
}

/// One paid reply as the provider sent it (before reasoning removal or line picking, so a
/// change of those settings does not need a new call).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedReply {
    pub key: String,
    pub provider: String,
    pub model: String,
    pub text: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Dollars paid for it.
    pub cost: f64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HitCounts {
    pub hits: u64,
    pub misses: u64,
}

pub struct LabelCache {
    dir: PathBuf,
    entries: Mutex<HashMap<String, CachedReply>>,
    file: AppendLog,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What to do about an unreadable line of `labels.jsonl`.
const DAMAGED_LINE: &str =
    "not a label cache entry; delete the line or the file to start a fresh cache";

impl LabelCache {
    /// Open (or create) the cache in `dir` and load its entries. A last line cut short by a
    /// crash is dropped; any other unreadable line is an error naming the file and line.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the label cache folder {}", dir.display()))?;
        let path = dir.join(LABELS_FILE);
        let (file, read) = AppendLog::open::<CachedReply>(&path, DAMAGED_LINE)?;
        let entries = read.into_iter().map(|r| (r.key.clone(), r)).collect();
        Ok(LabelCache {
            dir: dir.to_path_buf(),
            entries: Mutex::new(entries),
            file,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedReply>> {
        // The map is only inserted into whole; a panicked holder cannot leave it half-updated.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached reply for `key`, counting a hit or a miss.
    pub fn lookup(&self, key: &str) -> Option<CachedReply> {
        let found = self.peek(key);
        self.count(found.is_some());
        found
    }

    /// The cached reply for `key`, without counting (count with [`LabelCache::count`]).
    pub fn peek(&self, key: &str) -> Option<CachedReply> {
        self.entries().get(key).cloned()
    }

    /// Count a hit or a miss found with [`LabelCache::peek`].
    pub fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Store a paid reply: appended as one line and synced to disk before returning.
    pub fn insert(&self, reply: CachedReply) -> Result<()> {
        self.file.append(&reply)?;
        self.entries().insert(reply.key.clone(), reply);
        Ok(())
    }

    /// Hits and misses counted by this process since the last [`LabelCache::save_counts`].
    pub fn session_counts(&self) -> HitCounts {
        HitCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Add this session's hits and misses to `stats.json` and reset them.
    pub fn save_counts(&self) -> Result<()> {
        let session = HitCounts {
            hits: self.hits.swap(0, Ordering::Relaxed),
            misses: self.misses.swap(0, Ordering::Relaxed),
        };
        if session == HitCounts::default() {
            return Ok(());
        }
        let mut total = read_counts(&self.dir)?;
        total.hits += session.hits;
        total.misses += session.misses;
        let path = self.dir.join(STATS_FILE);
        let json = serde_json::to_string_pretty(&total).context("cannot encode cache stats")?;
        atomic_write(&path, json.as_bytes())
    }
}

fn read_counts(dir: &Path) -> Result<HitCounts> {
    let path = dir.join(STATS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged (not a cache stats file); delete it to count hits and misses \
                 afresh (the labels and their spend are in {LABELS_FILE}, which it does not touch)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HitCounts::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// What `lab labels stats` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSummary {
    pub entries: usize,
    /// Dollars paid for all cached replies.
    pub total_cost: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub counts: HitCounts,
    /// Why `counts` could not be read (a damaged `stats.json`) and what to do; the counts are
    /// then zero and the rest of the summary stands, as it comes from `labels.jsonl`.
    pub counts_unreadable: Option<String>,
    /// Entries per (provider, model).
    pub by_model: Vec<(String, String, usize, f64)>,
}

impl CacheSummary {
    /// hits / (hits + misses); `None` before any lookup, or when the counts are unreadable.
    pub fn hit_rate(&self) -> Option<f64> {
        if self.counts_unreadable.is_some() {
            return None;
        }
        let n = self.counts.hits + self.counts.misses;
        (n > 0).then(|| self.counts.hits as f64 / n as f64)
    }
}

/// Summarise the cache in `dir` without changing it.
pub fn summarize(dir: &Path) -> Result<CacheSummary> {
    let path = dir.join(LABELS_FILE);
    if !path.exists() {
        bail!(
            "no label cache at {} (no {LABELS_FILE}); pass the folder runs used with --cache \
             (they use ${CACHE_ENV} when set, else <user cache>/atgen-lab/labels)",
            dir.display()
        );
    }
    let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let (read, _) = read_entries::<CachedReply>(&file, &path, DAMAGED_LINE)?;
    // Later lines win, as when the cache is opened.
    let entries: HashMap<String, CachedReply> =
        read.into_iter().map(|r| (r.key.clone(), r)).collect();
    let mut by_model: HashMap<(String, String), (usize, f64)> = HashMap::new();
    // Only the hit rate comes from stats.json: a damaged one must not hide what was bought.
    let (counts, counts_unreadable) = match read_counts(dir) {
        Ok(counts) => (counts, None),
        Err(e) => (HitCounts::default(), Some(format!("{e:#}"))),
    };
    let mut s = CacheSummary {
        entries: entries.len(),
        total_cost: 0.0,
        input_tokens: 0,
        output_tokens: 0,
        counts,
        counts_unreadable,
        by_model: Vec::new(),
    };
    for e in entries.values() {
        s.total_cost += e.cost;
        s.input_tokens += e.input_tokens;
        s.output_tokens += e.output_tokens;
        let slot = by_model
            .entry((e.provider.clone(), e.model.clone()))
            .or_default();
        slot.0 += 1;
        slot.1 += e.cost;
    }
    s.by_model = by_model
        .into_iter()
        .map(|((p, m), (n, c))| (p, m, n, c))
        .collect();
    s.by_model.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn reply(key: &str, cost: f64) -> CachedReply {
        CachedReply {
            key: key.into(),
            provider: "openai".into(),
            model: "m".into(),
            text: format!("label {key}"),
            input_tokens: 10,
            output_tokens: 2,
            cost,
        }
    }

    #[test]
    fn entries_survive_reopen_and_count_hits() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = LabelCache::open(dir.path()).unwrap();
            assert!(c.lookup("a").is_none());
            c.insert(reply("a", 0.5)).unwrap();
            c.insert(reply("b", 0.25)).unwrap();
            assert_eq!(c.lookup("a").unwrap().text, "label a");
            assert_eq!(c.session_counts(), HitCounts { hits: 1, misses: 1 });
            c.save_counts().unwrap();
        }
        let c = LabelCache::open(dir.path()).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.lookup("b").unwrap(), reply("b", 0.25));
        c.save_counts().unwrap();
        let s = summarize(dir.path()).unwrap();
        assert_eq!(s.entries, 2);
        assert_eq!(s.total_cost, 0.75);
        assert_eq!(s.counts, HitCounts { hits: 2, misses: 1 });
        assert!((s.hit_rate().unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.by_model, vec![("openai".into(), "m".into(), 2, 0.75)]);
    }

    #[test]
    fn opening_waits_for_another_process_append_instead_of_cutting_it() {
        let dir = tempfile::tempdir().unwrap();
        LabelCache::open(dir.path())
            .unwrap()
            .insert(reply("a", 1.0))
            .unwrap();
        // Another writer, mid-append under its lock (as `insert` holds it).
        let path = dir.path().join(LABELS_FILE);
        let mut writer = OpenOptions::new().append(true).open(&path).unwrap();
        writer.lock().unwrap();
        let line = serde_json::to_string(&reply("b", 2.0)).unwrap() + "\n";
        let (head, tail) = line.split_at(line.len() / 2);
        writer.write_all(head.as_bytes()).unwrap();
        let opener = {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || LabelCache::open(&dir).unwrap().len())
        };
        // Without the wait, the opener would take "b"'s first half for a torn line and cut it.
        std::thread::sleep(std::time::Duration::from_millis(200));
        writer.write_all(tail.as_bytes()).unwrap();
        writer.unlock().unwrap();
        assert_eq!(opener.join().unwrap(), 2);
        assert_eq!(LabelCache::open(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn torn_last_line_is_dropped_and_not_glued_to() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = LabelCache::open(dir.path()).unwrap();
            c.insert(reply("a", 1.0)).unwrap();
        }
        let path = dir.path().join(LABELS_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"key":"b","prov"#).unwrap();
        drop(f);
        {
            let c = LabelCache::open(dir.path()).unwrap();
            assert_eq!(c.len(), 1);
            c.insert(reply("c", 1.0)).unwrap();
        }
        let c = LabelCache::open(dir.path()).unwrap();
        assert_eq!(c.len(), 2);
        assert!(c.peek("c").is_some());
    }

    #[test]
    fn corrupt_middle_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LABELS_FILE), "not json\n{}\n").unwrap();
        let err = format!("{:#}", LabelCache::open(dir.path()).err().unwrap());
        assert!(err.contains("labels.jsonl:1"), "{err}");
        let missing = tempfile::tempdir().unwrap();
        let err = summarize(missing.path()).unwrap_err().to_string();
        assert!(err.contains("--cache"), "{err}");
    }
}
