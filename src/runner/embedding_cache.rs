//! Where the pool-embedding cache lives and what keys it. Encoder embeddings of a pool do not
//! depend on the acquisition model: they are cached on disk beside the models
//! (`strategy::host::EmbeddingDiskCache`), one file per dataset and encoder, each embedding
//! under its text's hash. Runs share the files: a flush merges what other runs wrote since it
//! read, under a lock on the folder, and replaces the file by a rename, so a reader sees a
//! whole file.
use crate::config::Experiment;
use crate::data::Dataset;
use crate::models::hub::HubAccess;
use crate::runner::host::LazyEncoder;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub fn embedding_cache_dir() -> PathBuf {
    crate::models::cache::models_dir().with_file_name("embeddings")
}

/// Remove what a kill while writing the embedding cache (atomically, through a `.tmp*` file)
/// left in its folder, as large as the cache and never read again. Every run on the machine
/// shares the folder (a flush locks it only to merge and rename), so a younger temporary may
/// be another run's write: only one older than any cache write (10 minutes) is a leftover.
pub fn remove_stale_embedding_temporaries() -> anyhow::Result<()> {
    crate::util::atomic::remove_stale_temporaries(
        &embedding_cache_dir(),
        std::time::Duration::from_secs(600),
    )
}

/// The cache file's key: the dataset, its pool size and the encoder as loaded. A default
/// encoder's files are pinned by hash (`lab setup` replaces one that changed), so its name
/// is its key; an `[encoder] path` folder's files are not, so its key also stamps them (an
/// encoder retrained into the same folder must not be served the old one's embeddings); a
/// `hub_id` encoder's key names the snapshot its files are read from, and stamps them, so a
/// hub update (a new commit) gets a cache of its own. `None` (no disk cache) while a hub
/// encoder is not in the local Hugging Face cache: what a load would fetch is not known yet.
pub fn dataset_key(exp: &Experiment, dataset: &Dataset, encoder: &LazyEncoder) -> Option<String> {
    let encoder = match (&exp.encoder.path, &exp.encoder.hub_id) {
        (Some(p), _) => format!("{}#{}", p.display(), folder_stamp(p)),
        (None, Some(id)) => encoder.hub_key(id)?,
        (None, None) => exp.encoder.name.clone(),
    };
    let raw = format!("{}-pool{}@{}", dataset.name, dataset.train.len(), encoder);
    Some(
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.@#".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
    )
}

/// The files `SentenceEncoder` loads from its folder.
const ENCODER_FILES: [&str; 5] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
];

/// `<id>@<snapshot>#<stamp>` for the snapshot the loader reads `id` from (revision `main`,
/// as `SentenceEncoder::load_source` loads it), stamping only the files it loads: other
/// files a tool downloads into the snapshot later do not change the embeddings.
pub(crate) fn hub_encoder_key(hub: &HubAccess, id: &str) -> Option<String> {
    let snapshot = crate::models::hub::HubFiles::open(hub, id, None)
        .ok()?
        .local_snapshot()?;
    if !snapshot.join("model.safetensors").exists() {
        return None;
    }
    let commit = snapshot.file_name()?.to_string_lossy().into_owned();
    let files: Vec<PathBuf> = ENCODER_FILES.iter().map(|f| snapshot.join(f)).collect();
    Some(format!("{id}@{commit}#{}", files_stamp(files)))
}

/// Name, size and modification time of each file an encoder is loaded from in `dir` (its
/// files and the pooling settings), hashed: what `make` would compare, without reading the
/// weights each query. Empty when the folder cannot be listed (the encoder does not load then).
fn folder_stamp(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => return String::new(),
    };
    files.push(dir.join("1_Pooling").join("config.json"));
    files_stamp(files)
}

/// The hash of each existing file's path, size and modification time (a hub snapshot's files
/// are links into its blobs: the blob's).
fn files_stamp(mut files: Vec<PathBuf>) -> String {
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .unwrap_or_default();
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(meta.len().to_le_bytes());
        hasher.update(modified.as_nanos().to_le_bytes());
    }
    hex::encode(&hasher.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::encoder::EncoderSource;
    use std::time::{Duration, SystemTime};

    fn dataset() -> Dataset {
        Dataset {
            name: "aeslc".into(),
            train: Vec::new(),
            dev: Vec::new(),
            test: Vec::new(),
            source: String::new(),
            files: Default::default(),
            train_rows: 0,
            skipped_rows: 0,
        }
    }

    /// A default encoder's key is what it was before folders were stamped: its cache stays.
    #[test]
    fn a_default_encoders_key_names_it() {
        let exp = Experiment::default();
        assert_eq!(
            dataset_key(&exp, &dataset(), &LazyEncoder::of(&exp)).as_deref(),
            Some("aeslc-pool0@all-minilm-l6-v2")
        );
    }

    #[test]
    fn an_encoder_folders_key_changes_when_its_weights_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let weights = dir.path().join("model.safetensors");
        std::fs::write(&weights, "first weights").unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let mut exp = Experiment::default();
        exp.encoder.path = Some(dir.path().to_path_buf());
        let first = dataset_key(&exp, &dataset(), &LazyEncoder::of(&exp)).unwrap();
        assert_eq!(
            dataset_key(&exp, &dataset(), &LazyEncoder::of(&exp)).unwrap(),
            first,
            "the same files"
        );
        // Retrained later into the same folder, the same size.
        std::fs::write(&weights, "other weights").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&weights)
            .unwrap()
            .set_modified(SystemTime::now() + Duration::from_secs(60))
            .unwrap();
        assert_ne!(
            dataset_key(&exp, &dataset(), &LazyEncoder::of(&exp)).unwrap(),
            first
        );
    }

    fn offline(cache: &Path) -> HubAccess {
        HubAccess {
            cache: hf_hub::Cache::new(cache.to_path_buf()),
            offline: true,
        }
    }

    fn hub_encoder(exp: &mut Experiment, cache: &Path) -> LazyEncoder {
        exp.encoder.hub_id = Some("owner/enc".into());
        LazyEncoder::with_hub(EncoderSource::Hub("owner/enc".into()), 8, offline(cache))
    }

    /// A revision of `owner/enc` in the hub cache at `cache`, as the hub client lays it out:
    /// `snapshots/<commit>/` holding links into `blobs/`, `refs/main` naming the commit.
    fn hub_revision(cache: &Path, commit: &str, weights: &str) {
        let repo = cache.join("models--owner--enc");
        let snapshot = repo.join("snapshots").join(commit);
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        for (name, text) in [("config.json", "{}"), ("model.safetensors", weights)] {
            let blob = repo.join("blobs").join(format!("{commit}-{name}"));
            std::fs::write(&blob, text).unwrap();
            std::os::unix::fs::symlink(&blob, snapshot.join(name)).unwrap();
        }
        std::fs::write(repo.join("refs/main"), commit).unwrap();
    }

    #[test]
    fn a_hub_encoders_key_follows_the_revision_in_the_hub_cache() {
        let cache = tempfile::tempdir().unwrap();
        let mut exp = Experiment::default();
        let encoder = hub_encoder(&mut exp, cache.path());
        let key = || dataset_key(&exp, &dataset(), &encoder);
        assert_eq!(key(), None, "not cached yet: no key, so no disk cache");
        hub_revision(cache.path(), "aaaa1111", "first weights");
        let first = key().expect("the snapshot is cached");
        assert!(first.contains("owner_enc@aaaa1111#"), "{first}");
        assert_eq!(key(), Some(first.clone()), "the same files hit the cache");
        // The hub updated the repository (same size weights) and the cache fetched it.
        hub_revision(cache.path(), "bbbb2222", "other weights");
        let second = key().unwrap();
        assert_ne!(second, first, "a new revision gets a cache of its own");
        // A file the encoder does not load, downloaded into the snapshot later.
        std::fs::write(
            cache
                .path()
                .join("models--owner--enc/snapshots/bbbb2222/README.md"),
            "about",
        )
        .unwrap();
        assert_eq!(key(), Some(second.clone()));
        // The embeddings of one revision are not served to the other.
        use crate::strategy::host::EmbeddingDiskCache;
        let embeddings = tempfile::tempdir().unwrap();
        let stored = EmbeddingDiskCache::new(embeddings.path(), &first);
        stored.put("an email", &[1.0, 0.0]);
        stored.flush().unwrap();
        let again = EmbeddingDiskCache::new(embeddings.path(), &first);
        assert_eq!(again.get("an email").unwrap(), Some(vec![1.0, 0.0]));
        let updated = EmbeddingDiskCache::new(embeddings.path(), &second);
        assert_eq!(updated.get("an email").unwrap(), None);
    }

    /// A run keeps the encoder it loaded while the hub cache moves on (a download in another
    /// terminal): its embeddings stay under the loaded revision's key.
    #[test]
    fn a_loaded_hub_encoder_keeps_its_key_when_the_hub_cache_moves_on() {
        let cache = tempfile::tempdir().unwrap();
        let repo = cache.path().join("models--owner--enc");
        let model = crate::models::encoder::tests::tiny_model(14, None);
        let place = |commit: &str| {
            let snapshot = repo.join("snapshots").join(commit);
            std::fs::create_dir_all(&snapshot).unwrap();
            for file in ["config.json", "model.safetensors", "tokenizer.json"] {
                std::fs::copy(model.path().join(file), snapshot.join(file)).unwrap();
            }
            std::fs::create_dir_all(repo.join("refs")).unwrap();
            std::fs::write(repo.join("refs/main"), commit).unwrap();
        };
        place("aaaa1111");
        let mut exp = Experiment::default();
        let encoder = hub_encoder(&mut exp, cache.path());
        encoder.get().unwrap();
        let loaded = dataset_key(&exp, &dataset(), &encoder).unwrap();
        assert!(loaded.contains("@aaaa1111#"), "{loaded}");
        place("bbbb2222");
        assert_eq!(
            dataset_key(&exp, &dataset(), &encoder),
            Some(loaded),
            "this process embeds with aaaa1111 still"
        );
        let next_run = hub_encoder(&mut exp, cache.path());
        let newer = dataset_key(&exp, &dataset(), &next_run).unwrap();
        assert!(newer.contains("@bbbb2222#"), "{newer}");
    }
}
