//! Files of Hugging Face hub repositories: read from the local Hugging Face cache first (works
//! offline, never waits on the network), else downloaded into it.
//!
//! The cache lookup is our own rather than hf-hub's `CacheRepo::get`, which only follows
//! `refs/<revision>`: a revision given as a commit hash has a `snapshots/<hash>/` folder but no
//! ref, and a ref naming a snapshot that is gone must be reported, not taken for a miss.
use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Where the hub loader looks and whether it may use the network.
pub struct HubAccess {
    /// The hub cache folder itself: the one holding `models--owner--name` folders.
    pub cache: hf_hub::Cache,
    pub offline: bool,
}

impl HubAccess {
    /// `HF_HUB_CACHE` (the hub folder itself) or else `HF_HOME` (its parent; the cache is
    /// `$HF_HOME/hub`) for the cache, `HF_HUB_OFFLINE` (1, true, yes or on) to stay off the
    /// network.
    pub fn from_env() -> Self {
        Self {
            cache: hf_hub::Cache::new(cache_dir_from(
                std::env::var_os("HF_HUB_CACHE"),
                std::env::var_os("HF_HOME"),
            )),
            offline: std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| is_true(&v)),
        }
    }
}

/// The hub's address as the Hugging Face tools take it: `HF_ENDPOINT` (e.g. a mirror), else
/// huggingface.co (`None`).
fn endpoint_from_env() -> Option<String> {
    std::env::var("HF_ENDPOINT")
        .ok()
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| !e.is_empty())
}

/// The access token for gated and private models, as the Hugging Face tools find it:
/// `HF_TOKEN`, else the file `HF_TOKEN_PATH`, else `$HF_HOME/token` (default
/// `~/.cache/huggingface/token`, where `huggingface-cli login` writes it). Never printed.
fn token_from_env() -> Option<String> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let token_file = var("HF_TOKEN_PATH").map(PathBuf::from).or_else(|| {
        var("HF_HOME")
            .map(PathBuf::from)
            .or_else(|| dirs::home_dir().map(|h| h.join(".cache").join("huggingface")))
            .map(|home| home.join("token"))
    });
    var("HF_TOKEN")
        .and_then(|t| t.into_string().ok())
        .or_else(|| token_file.and_then(|f| std::fs::read_to_string(f).ok()))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// A boolean variable as huggingface_hub reads one: `HF_HUB_OFFLINE=0` or `false` is online.
fn is_true(value: &str) -> bool {
    ["1", "ON", "YES", "TRUE"].contains(&value.trim().to_uppercase().as_str())
}

/// The hub cache folder the Hugging Face tools use for these variables: `HF_HUB_CACHE` as
/// is, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`. Empty values count as unset.
fn cache_dir_from(hub_cache: Option<OsString>, hf_home: Option<OsString>) -> PathBuf {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(hub_cache) {
        return dir;
    }
    if let Some(home) = set(hf_home) {
        return home.join("hub");
    }
    dirs::home_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("huggingface")
        .join("hub")
}

/// What the cache holds for one repository at one revision.
#[derive(Debug, PartialEq)]
enum Snapshot {
    Found(PathBuf),
    /// Neither `refs/<revision>` nor `snapshots/<revision>/`.
    Missing,
    /// `refs/<revision>` names a commit whose snapshot folder is not there.
    BrokenRef {
        ref_file: PathBuf,
        commit: String,
    },
}

/// Files of one hub repository at one revision.
pub struct HubFiles {
    api: hf_hub::api::sync::ApiRepo,
    /// `<cache>/models--owner--name`.
    repo_dir: PathBuf,
    cache_dir: PathBuf,
    offline: bool,
    id: String,
    revision: String,
}

impl HubFiles {
    pub fn open(access: &HubAccess, id: &str, revision: Option<&str>) -> Result<Self> {
        use hf_hub::{Repo, RepoType};
        let revision = revision.unwrap_or("main").to_string();
        let repo_id = Repo::with_revision(id.to_string(), RepoType::Model, revision.clone());
        // The client reads its token only from `<cache>/../token`, and no HF_ENDPOINT.
        let mut builder = hf_hub::api::sync::ApiBuilder::from_cache(access.cache.clone())
            .with_progress(std::env::var_os("LAB_QUIET").is_none());
        if let Some(token) = token_from_env() {
            builder = builder.with_token(Some(token));
        }
        if let Some(endpoint) = endpoint_from_env() {
            builder = builder.with_endpoint(endpoint);
        }
        let api = builder
            .build()
            .context("cannot start the Hugging Face hub client")?;
        let cache_dir = access.cache.path().clone();
        Ok(Self {
            repo_dir: cache_dir.join(repo_id.folder_name()),
            api: api.repo(repo_id),
            cache_dir,
            offline: access.offline,
            id: id.to_string(),
            revision,
        })
    }

    /// The snapshot folder of this revision: through `refs/<revision>` (a branch or tag), or
    /// `snapshots/<revision>/` itself when the revision is a commit hash.
    fn snapshot(&self) -> Result<Snapshot> {
        let ref_file = self.repo_dir.join("refs").join(&self.revision);
        if ref_file.is_file() {
            let text = std::fs::read_to_string(&ref_file)
                .with_context(|| format!("cannot read {}", ref_file.display()))?;
            // Tools differ on a trailing newline.
            let commit = text.trim().to_string();
            let dir = self.repo_dir.join("snapshots").join(&commit);
            return Ok(if !commit.is_empty() && dir.is_dir() {
                Snapshot::Found(dir)
            } else {
                Snapshot::BrokenRef { ref_file, commit }
            });
        }
        let by_hash = self.repo_dir.join("snapshots").join(&self.revision);
        Ok(if by_hash.is_dir() {
            Snapshot::Found(by_hash)
        } else {
            Snapshot::Missing
        })
    }

    /// The snapshot folder this revision resolves to in the local cache, if it has one: where
    /// `get` reads files from, so its name (the commit) says which files a load uses.
    pub fn local_snapshot(&self) -> Option<PathBuf> {
        match self.snapshot() {
            Ok(Snapshot::Found(dir)) => Some(dir),
            _ => None,
        }
    }

    /// The `.gguf` files of this revision's cached snapshot, sorted (none when not cached).
    pub fn cached_gguf_files(&self) -> Vec<PathBuf> {
        let Ok(Snapshot::Found(dir)) = self.snapshot() else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }

    /// The local path of `file`, fetched when missing.
    pub fn get(&self, file: &str) -> Result<PathBuf> {
        let (id, revision) = (&self.id, &self.revision);
        let snapshot = self.snapshot()?;
        // Where the cache was searched, for the messages below.
        let searched = match &snapshot {
            Snapshot::Found(dir) => {
                let path = dir.join(file);
                // A snapshot entry is a link into blobs/: a dangling one is a miss.
                if path.exists() {
                    return Ok(path);
                }
                format!("{} has no `{file}`", dir.display())
            }
            Snapshot::Missing => format!(
                "the Hugging Face cache {} has no `{id}` at revision `{revision}` \
                 (looked for {} and {})",
                self.cache_dir.display(),
                self.repo_dir.join("refs").join(revision).display(),
                self.repo_dir.join("snapshots").join(revision).display()
            ),
            Snapshot::BrokenRef { ref_file, commit } => format!(
                "{} points to commit `{commit}`, but its snapshot folder {} does not exist \
                 (the cache is incomplete: delete {} and download the model again, or fix the ref)",
                ref_file.display(),
                self.repo_dir.join("snapshots").join(commit).display(),
                self.repo_dir.display()
            ),
        };
        if self.offline {
            bail!(
                "`{file}` of `{id}@{revision}` is not in the local cache: {searched}; \
                 HF_HUB_OFFLINE is set, so nothing is downloaded: unset it to download, or set \
                 HF_HUB_CACHE (the hub folder) or HF_HOME (its parent) to a cache that has it"
            );
        }
        self.api.get(file).with_context(|| {
            format!(
                "cannot get `{file}` of `{id}@{revision}` from the Hugging Face hub, and {searched} \
                 (offline? set HF_HUB_CACHE or HF_HOME to a cache that has it)"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::decoder_config::Family;
    use crate::models::loader::{load_hub_with, write_tiny_folder};
    use candle_core::{DType, Device};
    use std::path::Path;

    fn offline(cache: &Path) -> HubAccess {
        HubAccess {
            cache: hf_hub::Cache::new(cache.to_path_buf()),
            offline: true,
        }
    }

    #[test]
    fn offline_is_read_as_huggingface_hub_reads_it() {
        for on in ["1", "true", "YES", "on"] {
            assert!(is_true(on), "{on}");
        }
        for off in ["0", "false", "no", "off", ""] {
            assert!(!is_true(off), "{off}");
        }
    }

    #[test]
    fn offline_hub_miss_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_hub_with(
            &offline(dir.path()),
            "nobody/nothing",
            None,
            None,
            DType::F32,
            &Device::Cpu,
        )
        .err()
        .expect("nothing is cached");
        let msg = format!("{err:#}");
        assert!(msg.contains("HF_HUB_OFFLINE"), "{msg}");
        assert!(
            msg.contains(&format!("cache {}", dir.path().display()))
                && msg.contains("models--nobody--nothing"),
            "the message names the folder searched: {msg}"
        );
    }

    #[test]
    fn hub_model_loads_from_the_local_cache_offline() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let repo = dir.path().join("models--tiny--llama");
        write_tiny_folder(&repo.join("snapshots/abc123"), Family::Llama, 3)?;
        std::fs::create_dir_all(repo.join("refs"))?;
        // As some tools write it, with a newline.
        std::fs::write(repo.join("refs/main"), "abc123\n")?;
        let access = offline(dir.path());
        let loaded = load_hub_with(&access, "tiny/llama", None, None, DType::F32, &Device::Cpu)?;
        assert_eq!(loaded.decoder.config.num_layers, 2);
        assert!(loaded.chat.has_template());
        Ok(())
    }

    /// `owner/name@<commit hash>`: the snapshot folder is there, no ref names it.
    #[test]
    fn a_commit_hash_revision_is_found_without_a_ref() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let hash = "0123456789abcdef0123456789abcdef01234567";
        let repo = dir.path().join("models--tiny--llama");
        write_tiny_folder(&repo.join("snapshots").join(hash), Family::Llama, 3)?;
        let loaded = load_hub_with(
            &offline(dir.path()),
            "tiny/llama",
            Some(hash),
            None,
            DType::F32,
            &Device::Cpu,
        )?;
        assert_eq!(loaded.decoder.config.num_layers, 2);
        Ok(())
    }

    /// A GGUF repository has no config.json: the error was only that config.json is not in
    /// the cache, with no word of the .gguf files there or how to pick one.
    #[test]
    fn a_gguf_repository_without_gguf_file_names_its_files() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let snapshot = dir.path().join("models--tiny--gguf/snapshots/abc123");
        std::fs::create_dir_all(&snapshot)?;
        crate::models::tiny_models::write_tiny_gguf(&snapshot.join("tiny-q8_0.gguf"), 8)?;
        std::fs::create_dir_all(dir.path().join("models--tiny--gguf/refs"))?;
        std::fs::write(dir.path().join("models--tiny--gguf/refs/main"), "abc123")?;
        let err = load_hub_with(
            &offline(dir.path()),
            "tiny/gguf",
            None,
            None,
            DType::F32,
            &Device::Cpu,
        )
        .err()
        .expect("no file is named");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("holds `tiny-q8_0.gguf`") && msg.contains("`model.gguf_file`"),
            "{msg}"
        );
        // Many GGUF repositories keep the original config.json: the miss is then the weights.
        std::fs::write(
            snapshot.join("config.json"),
            serde_json::to_string(
                &crate::models::lm::tiny_config(Family::Llama, 259).to_hf_json(),
            )?,
        )?;
        let err = load_hub_with(
            &offline(dir.path()),
            "tiny/gguf",
            None,
            None,
            DType::F32,
            &Device::Cpu,
        )
        .err()
        .expect("still no file is named");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("holds `tiny-q8_0.gguf`") && msg.contains("`model.gguf_file`"),
            "{msg}"
        );
        let loaded = load_hub_with(
            &offline(dir.path()),
            "tiny/gguf",
            None,
            Some("tiny-q8_0.gguf"),
            DType::F32,
            &Device::Cpu,
        )?;
        assert_eq!(loaded.decoder.config.num_layers, 2);
        Ok(())
    }

    /// `--model openai-community/gpt2` fetched the tokenizer and every weights file (here:
    /// stopped at the missing tokenizer) before reading config.json's architecture.
    #[test]
    fn an_unsupported_architecture_is_refused_before_the_weights_are_fetched() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let snapshot = dir.path().join("models--someone--gpt2/snapshots/abc123");
        std::fs::create_dir_all(&snapshot)?;
        std::fs::write(
            snapshot.join("config.json"),
            r#"{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}"#,
        )?;
        let err = load_hub_with(
            &offline(dir.path()),
            "someone/gpt2",
            Some("abc123"),
            None,
            DType::F32,
            &Device::Cpu,
        )
        .err()
        .expect("gpt2 is not a supported architecture");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("unknown architecture `model_type = gpt2`") && msg.contains("config.json"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn a_ref_to_a_missing_snapshot_is_named() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let repo = dir.path().join("models--tiny--llama");
        std::fs::create_dir_all(repo.join("refs"))?;
        std::fs::create_dir_all(repo.join("snapshots"))?;
        std::fs::write(repo.join("refs/main"), "feedbeef")?;
        let err = load_hub_with(
            &offline(dir.path()),
            "tiny/llama",
            None,
            None,
            DType::F32,
            &Device::Cpu,
        )
        .err()
        .expect("the snapshot is gone");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("refs/main points to commit `feedbeef`")
                && msg.contains("snapshots/feedbeef does not exist"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn hub_cache_folder_follows_hf_hub_cache_then_hf_home() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            cache_dir_from(os("/hub-cache"), os("/hf-home")),
            PathBuf::from("/hub-cache")
        );
        assert_eq!(
            cache_dir_from(None, os("/hf-home")),
            PathBuf::from("/hf-home/hub")
        );
        assert_eq!(
            cache_dir_from(os(""), os("/hf-home")),
            PathBuf::from("/hf-home/hub")
        );
        assert!(cache_dir_from(None, None).ends_with(".cache/huggingface/hub"));
    }
}
