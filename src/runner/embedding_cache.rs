//! Where the pool-embedding cache lives and what keys it. Encoder embeddings of a pool do not
//! depend on the acquisition model: they are cached on disk beside the models
//! (`strategy::host::EmbeddingDiskCache`), one file per dataset and encoder, each embedding
//! under its text's hash.
use crate::config::Experiment;
use crate::data::Dataset;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub fn embedding_cache_dir() -> PathBuf {
    crate::models::cache::models_dir().with_file_name("embeddings")
}

/// Remove what a kill while writing the embedding cache (atomically, through a `.tmp*` file)
/// left in its folder, as large as the cache and never read again. Every run on the machine
/// shares the folder, unlocked, so a younger temporary may be another run's write: only one
/// older than any cache write (10 minutes) is a leftover.
pub fn remove_stale_embedding_temporaries() -> anyhow::Result<()> {
    crate::util::atomic::remove_stale_temporaries(
        &embedding_cache_dir(),
        std::time::Duration::from_secs(600),
    )
}

/// The cache file's key: the dataset, its pool size and the encoder. A default encoder's
/// files are pinned by hash (`lab setup` replaces one that changed); an `[encoder] path`
/// folder's are not, so its key also stamps them: an encoder retrained into the same folder
/// must not be served the old one's embeddings.
pub fn dataset_key(exp: &Experiment, dataset: &Dataset) -> String {
    let encoder = match (&exp.encoder.path, &exp.encoder.hub_id) {
        (Some(p), _) => format!("{}#{}", p.display(), folder_stamp(p)),
        (None, Some(h)) => h.clone(),
        (None, None) => exp.encoder.name.clone(),
    };
    let raw = format!("{}-pool{}@{}", dataset.name, dataset.train.len(), encoder);
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@#".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
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
            dataset_key(&exp, &dataset()),
            "aeslc-pool0@all-minilm-l6-v2"
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
        let first = dataset_key(&exp, &dataset());
        assert_eq!(dataset_key(&exp, &dataset()), first, "the same files");
        // Retrained later into the same folder, the same size.
        std::fs::write(&weights, "other weights").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&weights)
            .unwrap()
            .set_modified(SystemTime::now() + Duration::from_secs(60))
            .unwrap();
        assert_ne!(dataset_key(&exp, &dataset()), first);
    }
}
