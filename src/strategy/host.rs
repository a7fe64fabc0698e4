//! The heavy primitives a strategy may call, as a trait the runner implements with real models,
//! and `CachingHost`, which memoises them within one query step and keeps encoder embeddings of
//! the pool on disk (they do not depend on the acquisition model).
use crate::data::Example;
use crate::strategy::Matrix;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Decoding options of `ctx.generate(view, #{..})`.
#[derive(Clone, Debug, PartialEq)]
pub struct GenOpts {
    pub max_new_tokens: usize,
    /// 0 means greedy decoding.
    pub temperature: f64,
    pub top_p: f64,
    /// Samples per item (1 for greedy).
    pub n: usize,
    /// Seed for stochastic decoding, derived from the run seed and iteration.
    pub seed: u64,
}

impl GenOpts {
    fn cache_key(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.max_new_tokens, self.temperature, self.top_p, self.n, self.seed
        )
    }
}

/// Which encoder `embed` uses: the sentence encoder (model-independent, cached on disk) or the
/// acquisition model's own hidden states (changes every iteration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EmbedModel {
    Encoder,
    Acquisition,
}

impl EmbedModel {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "encoder" => Ok(Self::Encoder),
            "acquisition" => Ok(Self::Acquisition),
            other => bail!("unknown embedding model {other:?}: use \"encoder\" or \"acquisition\""),
        }
    }
}

/// One decoded output with its per-step statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationRecord {
    pub text: String,
    /// log p of each generated token.
    pub token_logprobs: Vec<f32>,
    /// Entropy of the full next-token distribution at each generated step.
    pub entropies: Vec<f32>,
}

/// Outputs of one `generate` call, `[item][sample]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Generations {
    pub per_item: Vec<Vec<GenerationRecord>>,
}

pub trait StrategyHost: Send + Sync {
    /// Decode every item; `base_model` asks for the model before any fine-tuning.
    fn generate(
        &self,
        items: &[Example],
        opts: &GenOpts,
        base_model: bool,
    ) -> Result<Arc<Generations>>;
    /// Teacher-forced log-probabilities of each token of `outputs[i]` given `items[i]`.
    fn score(&self, items: &[Example], outputs: &[String]) -> Result<Vec<Vec<f32>>>;
    /// One L2-normalised row per text.
    fn embed(
        &self,
        texts: &[String],
        model: EmbedModel,
        cache_key: Option<&str>,
    ) -> Result<Arc<Matrix>>;
    /// sacreBLEU sentence BLEU of `hyp` against `refs`, on sacreBLEU's 0–100 scale.
    fn sentence_bleu(&self, hyp: &str, refs: &[&str]) -> f64;
    /// Lowercase `\w+` words, Porter-stemmed.
    fn stem_words(&self, text: &str) -> Vec<String>;
    /// BERTScore precision of each hypothesis against its reference, from encoder token
    /// embeddings (greedy matching of hypothesis tokens to reference tokens).
    fn bertscore_precision(&self, hyps: &[String], refs: &[String]) -> Result<Vec<f64>>;
    /// Identifies the acquisition model's weights, so cached generations are reused only while
    /// the model is unchanged.
    fn model_state(&self) -> String {
        String::new()
    }
}

type GenKey = (bool, String, String);

/// Memoises a host's primitives per item, so strategies that call `generate` twice (te_delfy,
/// dual, ldcal) or on overlapping views pay once. Keep one per query step: generations depend on
/// the model state, which changes between steps.
pub struct CachingHost<'a> {
    inner: &'a dyn StrategyHost,
    generations: Mutex<HashMap<GenKey, Vec<GenerationRecord>>>,
    embeddings: Mutex<HashMap<(EmbedModel, String), Vec<f32>>>,
    disk: Option<EmbeddingDiskCache>,
    /// Wall time inside generate, score, embed (with BERTScore), caching included.
    host_nanos: [AtomicU64; 3],
}

/// Seconds a query step spent in each kind of host primitive.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HostSeconds {
    pub generation: f64,
    pub scoring: f64,
    pub embedding: f64,
}

#[derive(Clone, Copy)]
enum Primitive {
    Generation = 0,
    Scoring = 1,
    Embedding = 2,
}

impl<'a> CachingHost<'a> {
    pub fn new(inner: &'a dyn StrategyHost, disk: Option<EmbeddingDiskCache>) -> Self {
        Self {
            inner,
            generations: Mutex::new(HashMap::new()),
            embeddings: Mutex::new(HashMap::new()),
            disk,
            host_nanos: Default::default(),
        }
    }

    /// Seconds spent in each kind of primitive so far, caching included.
    pub fn host_seconds(&self) -> HostSeconds {
        let s = |p: Primitive| self.host_nanos[p as usize].load(Ordering::Relaxed) as f64 * 1e-9;
        HostSeconds {
            generation: s(Primitive::Generation),
            scoring: s(Primitive::Scoring),
            embedding: s(Primitive::Embedding),
        }
    }

    fn timed<T>(&self, what: Primitive, f: impl FnOnce() -> T) -> T {
        let t = std::time::Instant::now();
        let out = f();
        self.host_nanos[what as usize].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }

    /// Write new encoder embeddings to the disk cache (no-op without one).
    pub fn flush(&self) -> Result<()> {
        match &self.disk {
            Some(d) => d.flush(),
            None => Ok(()),
        }
    }
}

impl StrategyHost for CachingHost<'_> {
    fn generate(&self, items: &[Example], opts: &GenOpts, base: bool) -> Result<Arc<Generations>> {
        self.timed(Primitive::Generation, || {
            self.generate_cached(items, opts, base)
        })
    }

    fn score(&self, items: &[Example], outputs: &[String]) -> Result<Vec<Vec<f32>>> {
        self.timed(Primitive::Scoring, || self.inner.score(items, outputs))
    }

    fn embed(&self, texts: &[String], model: EmbedModel, key: Option<&str>) -> Result<Arc<Matrix>> {
        self.timed(Primitive::Embedding, || {
            self.embed_cached(texts, model, key)
        })
    }

    fn sentence_bleu(&self, hyp: &str, refs: &[&str]) -> f64 {
        self.inner.sentence_bleu(hyp, refs)
    }

    fn stem_words(&self, text: &str) -> Vec<String> {
        self.inner.stem_words(text)
    }

    fn bertscore_precision(&self, hyps: &[String], refs: &[String]) -> Result<Vec<f64>> {
        self.timed(Primitive::Embedding, || {
            self.inner.bertscore_precision(hyps, refs)
        })
    }

    fn model_state(&self) -> String {
        self.inner.model_state()
    }
}

impl CachingHost<'_> {
    fn generate_cached(
        &self,
        items: &[Example],
        opts: &GenOpts,
        base: bool,
    ) -> Result<Arc<Generations>> {
        let state = self.inner.model_state();
        let okey = opts.cache_key();
        let key = |e: &Example| (base, format!("{state}|{okey}"), e.input.clone());
        let missing: Vec<Example> = {
            let cache = self.generations.lock().expect("generation cache lock");
            let mut seen = std::collections::HashSet::new();
            items
                .iter()
                .filter(|e| !cache.contains_key(&key(e)) && seen.insert(e.input.clone()))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let fresh = self.inner.generate(&missing, opts, base)?;
            if fresh.per_item.len() != missing.len() {
                bail!(
                    "the host returned generations for {} items, asked for {}",
                    fresh.per_item.len(),
                    missing.len()
                );
            }
            let mut cache = self.generations.lock().expect("generation cache lock");
            for (e, recs) in missing.iter().zip(&fresh.per_item) {
                cache.insert(key(e), recs.clone());
            }
        }
        let cache = self.generations.lock().expect("generation cache lock");
        let per_item = items
            .iter()
            .map(|e| cache[&key(e)].clone())
            .collect::<Vec<_>>();
        Ok(Arc::new(Generations { per_item }))
    }

    fn embed_cached(
        &self,
        texts: &[String],
        model: EmbedModel,
        key: Option<&str>,
    ) -> Result<Arc<Matrix>> {
        let state = match model {
            EmbedModel::Encoder => String::new(),
            EmbedModel::Acquisition => self.inner.model_state(),
        };
        let ck = |t: &String| (model, format!("{state}|{t}"));
        let mut missing: Vec<String> = Vec::new();
        {
            let mut cache = self.embeddings.lock().expect("embedding cache lock");
            let mut seen = std::collections::HashSet::new();
            for t in texts {
                if cache.contains_key(&ck(t)) || !seen.insert(t.clone()) {
                    continue;
                }
                let from_disk = match (&self.disk, model) {
                    (Some(d), EmbedModel::Encoder) => d.get(t)?,
                    _ => None,
                };
                match from_disk {
                    Some(v) => {
                        cache.insert(ck(t), v);
                    }
                    None => missing.push(t.clone()),
                }
            }
        }
        if !missing.is_empty() {
            let m = self.inner.embed(&missing, model, key)?;
            if m.rows != missing.len() {
                bail!(
                    "the host returned {} embeddings for {} texts",
                    m.rows,
                    missing.len()
                );
            }
            let mut cache = self.embeddings.lock().expect("embedding cache lock");
            for (i, t) in missing.iter().enumerate() {
                let row = m.row(i).to_vec();
                if let (Some(d), EmbedModel::Encoder) = (&self.disk, model) {
                    d.put(t, &row);
                }
                cache.insert(ck(t), row);
            }
        }
        let cache = self.embeddings.lock().expect("embedding cache lock");
        let rows: Vec<Vec<f32>> = texts.iter().map(|t| cache[&ck(t)].clone()).collect();
        let cols = rows.first().map_or(0, Vec::len);
        if rows.is_empty() {
            return Ok(Arc::new(Matrix::zeros(0, 0)));
        }
        Ok(Arc::new(Matrix::from_rows(&rows).with_context(|| {
            format!("embeddings of different widths (expected {cols})")
        })?))
    }
}

/// Encoder embeddings keyed by SHA-256 of the text, in one binary file per dataset and encoder:
/// `b"ATGE" u32 dims u64 count`, then per record 32 hash bytes and `dims` little-endian f32.
pub struct EmbeddingDiskCache {
    path: PathBuf,
    state: Mutex<DiskState>,
}

#[derive(Default)]
struct DiskState {
    loaded: bool,
    dirty: bool,
    dims: usize,
    rows: EmbeddingRows,
}

/// Embeddings by their text's SHA-256.
type EmbeddingRows = HashMap<[u8; 32], Vec<f32>>;

const MAGIC: &[u8; 4] = b"ATGE";

impl EmbeddingDiskCache {
    /// `dataset_key` names the dataset and the encoder (e.g. `aeslc-train@<encoder sha>`).
    pub fn new(dir: impl Into<PathBuf>, dataset_key: &str) -> Self {
        let name = hex::encode(&Sha256::digest(dataset_key.as_bytes())[..12]);
        Self {
            path: dir.into().join(format!("embeddings-{name}.bin")),
            state: Mutex::new(DiskState::default()),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn hash(text: &str) -> [u8; 32] {
        Sha256::digest(text.as_bytes()).into()
    }

    fn ensure_loaded(&self, st: &mut DiskState) -> Result<()> {
        if st.loaded {
            return Ok(());
        }
        st.loaded = true;
        if let Some((dims, rows)) = self.read_file()? {
            st.dims = dims;
            st.rows = rows;
        }
        Ok(())
    }

    /// The file's width and rows; `None` when there is no file yet.
    fn read_file(&self) -> Result<Option<(usize, EmbeddingRows)>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.path.display()))
            }
        };
        let corrupt = || {
            anyhow::anyhow!(
                "embedding cache {} is corrupt: delete it and it will be rebuilt",
                self.path.display()
            )
        };
        if bytes.len() < 16 || &bytes[..4] != MAGIC {
            return Err(corrupt());
        }
        let dims = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
        let count = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let rec = 32 + 4 * dims;
        // Checked: a damaged header's count must not overflow into a matching length.
        let expected = count.checked_mul(rec).and_then(|n| n.checked_add(16));
        if expected != Some(bytes.len()) {
            return Err(corrupt());
        }
        let mut rows = HashMap::with_capacity(count);
        for r in bytes[16..].chunks_exact(rec) {
            let h: [u8; 32] = r[..32].try_into().expect("32 bytes");
            let v = r[32..]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            rows.insert(h, v);
        }
        Ok(Some((dims, rows)))
    }

    /// The cache's folder, locked while a flush reads, merges and replaces the file: every run
    /// on the machine shares the cache, and without it two flushes that both read before
    /// either renamed would each drop the other's new rows. (The folder, not a lock file
    /// beside the cache, so the folder holds only caches.) Released when dropped.
    fn lock_for_writing(&self) -> Result<std::fs::File> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => std::path::Path::new("."),
        };
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create folder {}", dir.display()))?;
        let folder = std::fs::File::open(dir)
            .with_context(|| format!("cannot open folder {} to lock it", dir.display()))?;
        folder
            .lock()
            .with_context(|| format!("cannot lock folder {}", dir.display()))?;
        Ok(folder)
    }

    pub fn get(&self, text: &str) -> Result<Option<Vec<f32>>> {
        let mut st = self.state.lock().expect("disk cache lock");
        self.ensure_loaded(&mut st)?;
        Ok(st.rows.get(&Self::hash(text)).cloned())
    }

    pub fn put(&self, text: &str, row: &[f32]) {
        let mut st = self.state.lock().expect("disk cache lock");
        if st.dims != row.len() {
            // A different encoder width invalidates everything stored so far.
            st.rows.clear();
            st.dims = row.len();
        }
        st.rows.insert(Self::hash(text), row.to_vec());
        st.dirty = true;
    }

    pub fn flush(&self) -> Result<()> {
        let mut st = self.state.lock().expect("disk cache lock");
        if !st.dirty {
            return Ok(());
        }
        let _lock = self.lock_for_writing()?;
        // Rows another run wrote since this one read the file are kept; a corrupt file or one
        // of another width (an encoder change) is replaced whole, as before.
        if let Ok(Some((dims, rows))) = self.read_file() {
            if dims == st.dims {
                for (hash, row) in rows {
                    st.rows.entry(hash).or_insert(row);
                }
            }
        }
        let mut keys: Vec<&[u8; 32]> = st.rows.keys().collect();
        keys.sort();
        let mut out = Vec::with_capacity(16 + keys.len() * (32 + 4 * st.dims));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(st.dims as u32).to_le_bytes());
        out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
        for k in keys {
            out.extend_from_slice(k);
            for v in &st.rows[k] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        crate::util::atomic_write(&self.path, &out)?;
        st.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::fake_host::FakeHost;
    use std::sync::atomic::Ordering;

    fn ex(id: u64, input: &str) -> Example {
        Example {
            id,
            input: input.into(),
            output: String::new(),
            references: vec![String::new()],
        }
    }

    #[test]
    fn caching_host_generates_each_distinct_input_once_per_options() {
        let fake = FakeHost::new(4);
        let host = CachingHost::new(&fake, None);
        let opts = GenOpts {
            max_new_tokens: 4,
            temperature: 0.0,
            top_p: 1.0,
            n: 1,
            seed: 1,
        };
        let items = [ex(1, "a b"), ex(2, "c d"), ex(3, "a b")];
        let g = host.generate(&items, &opts, false).unwrap();
        assert_eq!(g.per_item.len(), 3);
        assert_eq!(g.per_item[0], g.per_item[2]);
        assert_eq!(fake.generated_items.load(Ordering::Relaxed), 2);
        host.generate(&items[1..], &opts, false).unwrap();
        assert_eq!(fake.generated_items.load(Ordering::Relaxed), 2);
        // The base model and other options are separate entries.
        host.generate(&items[..1], &opts, true).unwrap();
        let longer = GenOpts {
            max_new_tokens: 8,
            ..opts
        };
        host.generate(&items[..1], &longer, false).unwrap();
        assert_eq!(fake.generated_items.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn disk_cache_round_trips_and_resets_on_a_new_width() {
        let dir = tempfile::tempdir().unwrap();
        let c = EmbeddingDiskCache::new(dir.path(), "data@enc");
        c.put("hello", &[1.0, 2.0]);
        c.flush().unwrap();
        let again = EmbeddingDiskCache::new(dir.path(), "data@enc");
        assert_eq!(again.get("hello").unwrap(), Some(vec![1.0, 2.0]));
        assert_eq!(again.get("other").unwrap(), None);
        again.put("wide", &[1.0, 2.0, 3.0]);
        assert_eq!(again.get("hello").unwrap(), None);
        assert_ne!(
            c.path(),
            EmbeddingDiskCache::new(dir.path(), "data@enc2").path()
        );
    }
}
