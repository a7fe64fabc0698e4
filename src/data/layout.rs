//! Finding the split files of a dataset: a folder with `train.*`, `dev.*`|`validation.*`|
//! `valid.*`, `test.*` (also Hugging Face hub layouts like `data/train-00000-of-00002.parquet`),
//! a single file (the train split), or a hub cache folder `datasets--org--name`.
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::DataConfig;

/// The files of each split (several when a split is sharded), and the dataset's name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SplitFiles {
    pub name: String,
    pub train: Vec<PathBuf>,
    pub dev: Vec<PathBuf>,
    pub test: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Split {
    Train,
    Dev,
    Test,
}

impl Split {
    pub fn key(self) -> &'static str {
        match self {
            Split::Train => "data.train",
            Split::Dev => "data.dev",
            Split::Test => "data.test",
        }
    }
}

const DATA_EXTENSIONS: &[&str] = &["jsonl", "ndjson", "json", "csv", "tsv", "parquet"];

/// The folder a relative `data.path` in experiment `file` is read from: the directory `lab`
/// runs in when the path exists there, else the experiment file's folder (so an experiment
/// kept beside its data runs from anywhere). One rule for `lab run`, `lab check` and
/// `lab data`.
pub fn experiment_data_base(data_path: &Path, file: &Path) -> PathBuf {
    match file.parent() {
        Some(folder) if data_path.is_relative() && !data_path.exists() => {
            if folder.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                folder.to_path_buf()
            }
        }
        _ => PathBuf::from("."),
    }
}

/// [`experiment_data_base`], or an error naming both places looked in when neither holds
/// the data.
pub fn find_experiment_data_base(data_path: &Path, file: &Path) -> anyhow::Result<PathBuf> {
    let base = experiment_data_base(data_path, file);
    let found = if base == Path::new(".") {
        data_path.exists()
    } else {
        base.join(data_path).exists()
    };
    if !found && data_path.is_relative() && base != Path::new(".") {
        let here = std::env::current_dir()
            .map(|d| d.join(data_path).display().to_string())
            .unwrap_or_else(|_| data_path.display().to_string());
        anyhow::bail!(
            "`data.path` = {} was looked for at {here} (from the folder `lab` runs in) and at {} \
             (beside {}); neither exists: run `lab` from the folder the path is relative to, or \
             make data.path absolute",
            data_path.display(),
            base.join(data_path).display(),
            file.display()
        );
    }
    Ok(base)
}

/// Locate the split files for `cfg`, reading a relative `data.path` from `base_dir`.
pub fn find_split_files(cfg: &DataConfig, base_dir: &Path) -> Result<SplitFiles> {
    // Joining "." would only add noise to every path shown to the user.
    let given = if cfg.path.is_absolute() || base_dir == Path::new(".") {
        cfg.path.clone()
    } else {
        base_dir.join(&cfg.path)
    };
    if !given.exists() {
        bail!(
            "`data.path` = {} does not exist; {}",
            given.display(),
            match crate::config::nearest_entry(&given) {
                Some(near) => format!("did you mean {near}?"),
                None => "point it at a dataset folder, a data file or a Hugging Face hub snapshot"
                    .to_string(),
            }
        );
    }
    let root = hub_snapshot(&given)?.unwrap_or_else(|| given.clone());
    let name = dataset_name(&given);
    if root.is_file() {
        if let Some(train) = &cfg.train {
            bail!(
                "`data.train` = \"{train}\" is set but `data.path` = {} is a file, which is the train split itself; remove data.train, or point data.path at the folder holding {train}",
                given.display()
            );
        }
        let folder = root.parent().unwrap_or(Path::new("."));
        let files = SplitFiles {
            name,
            train: vec![root.clone()],
            dev: explicit(folder, cfg.dev.as_deref(), Split::Dev)?,
            test: explicit(folder, cfg.test.as_deref(), Split::Test)?,
        };
        check_disjoint(&files, "data.path")?;
        return Ok(files);
    }
    let wanted: Vec<Split> = [
        (Split::Train, &cfg.train),
        (Split::Dev, &cfg.dev),
        (Split::Test, &cfg.test),
    ]
    .into_iter()
    .filter(|(_, named)| named.is_none())
    .map(|(split, _)| split)
    .collect();
    let found = if wanted.is_empty() {
        BTreeMap::new()
    } else {
        auto_detect(&root, &wanted)?
    };
    let pick = |split: Split, named: Option<&str>| -> Result<Vec<PathBuf>> {
        match named {
            Some(_) => explicit(&root, named, split),
            None => Ok(found.get(&split).cloned().unwrap_or_default()),
        }
    };
    let files = SplitFiles {
        name,
        train: pick(Split::Train, cfg.train.as_deref())?,
        dev: pick(Split::Dev, cfg.dev.as_deref())?,
        test: pick(Split::Test, cfg.test.as_deref())?,
    };
    if files.train.is_empty() {
        bail!(
            "no train file in {}: expected train.jsonl / train.json / train.csv / train.parquet (or data/train-00000-of-00001.parquet); set `data.train` to the file name",
            root.display()
        );
    }
    check_disjoint(&files, Split::Train.key())?;
    Ok(files)
}

/// Refuse a file that serves two splits (the test split would be the pool). Files are compared
/// by canonical path, so `./test.jsonl` and a link to it count as the same file. `train_key`
/// is the key the train files came from (`data.path` when it is a file).
fn check_disjoint(files: &SplitFiles, train_key: &str) -> Result<()> {
    let canonical = |p: &PathBuf| p.canonicalize().unwrap_or_else(|_| p.clone());
    let splits = [
        ("train", train_key, &files.train),
        ("dev", Split::Dev.key(), &files.dev),
        ("test", Split::Test.key(), &files.test),
    ];
    for (i, (name_a, key_a, a)) in splits.iter().enumerate() {
        for (name_b, key_b, b) in &splits[i + 1..] {
            for path_b in b.iter() {
                if a.iter()
                    .any(|path_a| canonical(path_a) == canonical(path_b))
                {
                    bail!(
                        "{} is in both the {name_a} split (`{key_a}`) and the {name_b} split (`{key_b}`); a file may serve one split only: point {key_b} at another file, or use data.{name_b}_ratio to split it from train",
                        path_b.display()
                    );
                }
            }
        }
    }
    Ok(())
}

/// An explicitly named split: a file, or a folder whose data files are the shards.
fn explicit(root: &Path, named: Option<&str>, split: Split) -> Result<Vec<PathBuf>> {
    let Some(named) = named else {
        return Ok(Vec::new());
    };
    let path = root.join(named);
    if path.is_file() {
        return Ok(vec![path]);
    }
    if path.is_dir() {
        let files = data_files_in(&path)?;
        if files.is_empty() {
            bail!(
                "`{}` = {}: the folder holds no data files",
                split.key(),
                path.display()
            );
        }
        return Ok(files);
    }
    bail!(
        "`{}` = \"{named}\": {} does not exist{}",
        split.key(),
        path.display(),
        crate::config::nearest_entry(&path)
            .map(|near| format!("; did you mean {near}?"))
            .unwrap_or_default()
    )
}

fn data_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_data_file(p))
        .collect();
    files.sort();
    Ok(files)
}

fn is_data_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| DATA_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Which split a file name names: `train.jsonl`, `validation.csv`,
/// `train-00000-of-00002.parquet`, `test-00000-of-00001-3d2b.parquet`.
pub fn split_of(file_name: &str) -> Option<Split> {
    let lower = file_name.to_ascii_lowercase();
    let stem = lower.split('.').next()?;
    let base = stem.split('-').next()?;
    let rest = &stem[base.len()..];
    // Only the hub's shard suffix may follow the split name, so `train_extra.csv` is no split.
    if !rest.is_empty() && !rest.starts_with("-0") {
        return None;
    }
    match base {
        "train" => Some(Split::Train),
        "dev" | "validation" | "valid" | "val" => Some(Split::Dev),
        "test" => Some(Split::Test),
        _ => None,
    }
}

/// Files of the `wanted` splits under `root` (up to three folders deep, as in
/// `<config>/data/...`). Each split must come from one folder and one naming, else the choice is
/// left to the user.
fn auto_detect(root: &Path, wanted: &[Split]) -> Result<BTreeMap<Split, Vec<PathBuf>>> {
    let mut groups: BTreeMap<Split, BTreeMap<(PathBuf, String), Vec<PathBuf>>> = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                if depth < 3 {
                    stack.push((path, depth + 1));
                }
            } else if is_data_file(&path) {
                if let Some(split) = split_of(&file_name).filter(|s| wanted.contains(s)) {
                    let naming = file_name
                        .split(['-', '.'])
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    let ext = path
                        .extension()
                        .map(|e| e.to_string_lossy().to_ascii_lowercase())
                        .unwrap_or_default();
                    groups
                        .entry(split)
                        .or_default()
                        .entry((dir.clone(), format!("{naming}.{ext}")))
                        .or_default()
                        .push(path);
                }
            }
        }
    }
    let mut found = BTreeMap::new();
    for (split, by_place) in groups {
        if by_place.len() > 1 {
            let options: Vec<String> = by_place
                .values()
                .map(|files| {
                    files[0]
                        .strip_prefix(root)
                        .unwrap_or(&files[0])
                        .display()
                        .to_string()
                })
                .collect();
            bail!(
                "{} has several candidate {} files ({}); set `{}` to the one to use, or point data.path at its folder",
                root.display(),
                format!("{split:?}").to_lowercase(),
                options.join(", "),
                split.key()
            );
        }
        let mut files = by_place.into_values().next().unwrap_or_default();
        files.sort();
        check_shard_set(split, &files)?;
        found.insert(split, files);
    }
    Ok(found)
}

/// Hub shards `<split>-NNNNN-of-MMMMM...` must be one complete set: one MMMMM, every index
/// 0..MMMMM-1 once (leftovers of an earlier download would otherwise be loaded too).
fn check_shard_set(split: Split, files: &[PathBuf]) -> Result<()> {
    let pattern = regex::Regex::new(r"-(\d+)-of-(\d+)").expect("a valid regex");
    let name = |p: &PathBuf| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    let shards: Vec<(usize, usize, String)> = files
        .iter()
        .filter_map(|p| {
            let n = name(p);
            let c = pattern.captures(&n)?;
            Some((c[1].parse().ok()?, c[2].parse().ok()?, n))
        })
        .collect();
    if shards.is_empty() {
        return Ok(());
    }
    let label = format!("{split:?}").to_lowercase();
    let folder = files[0].parent().unwrap_or(Path::new(".")).display();
    if shards.len() != files.len() {
        let plain: Vec<String> = files
            .iter()
            .map(name)
            .filter(|n| !pattern.is_match(n))
            .collect();
        bail!(
            "{folder}: the {label} shards are mixed with other {label} files ({}); remove the leftovers or set `{}`",
            plain.join(", "),
            split.key()
        );
    }
    let mut totals: Vec<usize> = shards.iter().map(|s| s.1).collect();
    totals.sort_unstable();
    totals.dedup();
    if totals.len() > 1 {
        let sets: Vec<String> = totals
            .iter()
            .map(|t| {
                let members: Vec<&str> = shards
                    .iter()
                    .filter(|s| s.1 == *t)
                    .map(|s| s.2.as_str())
                    .collect();
                format!("of {t}: {}", members.join(", "))
            })
            .collect();
        bail!(
            "{folder}: the {label} shards come from more than one download ({}); delete the leftover set",
            sets.join("; ")
        );
    }
    let total = totals[0];
    let mut seen = vec![0usize; total];
    let mut stray = Vec::new();
    for (index, _, n) in &shards {
        match seen.get_mut(*index) {
            Some(count) => *count += 1,
            None => stray.push(n.clone()),
        }
    }
    let missing: Vec<String> = (0..total)
        .filter(|i| seen[*i] == 0)
        .map(|i| format!("{i:05}"))
        .collect();
    let doubled: Vec<String> = (0..total)
        .filter(|i| seen[*i] > 1)
        .map(|i| format!("{i:05}"))
        .collect();
    if !missing.is_empty() || !doubled.is_empty() || !stray.is_empty() {
        bail!(
            "{folder}: the {label} shards are not one complete set of {total}: missing [{}], present twice [{}], out of range [{}]",
            missing.join(", "),
            doubled.join(", "),
            stray.join(", ")
        );
    }
    Ok(())
}

/// For a hub cache folder `datasets--org--name`, its snapshot (the one `refs/main` names, else
/// the only one). Other paths (including a snapshot folder itself) are used as given.
fn hub_snapshot(path: &Path) -> Result<Option<PathBuf>> {
    let snapshots = path.join("snapshots");
    if !path.is_dir() || !snapshots.is_dir() {
        return Ok(None);
    }
    if let Ok(hash) = std::fs::read_to_string(path.join("refs").join("main")) {
        let chosen = snapshots.join(hash.trim());
        if chosen.is_dir() {
            return Ok(Some(chosen));
        }
    }
    let mut all: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .with_context(|| format!("cannot list {}", snapshots.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    match all.len() {
        1 => Ok(all.pop()),
        0 => bail!("{}: the hub cache folder has no snapshot", path.display()),
        _ => bail!(
            "{}: several snapshots and no refs/main; set data.path to one of {}",
            path.display(),
            all.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `org/name` for a path inside a hub cache (`datasets--org--name`), else the folder or file stem.
pub fn dataset_name(path: &Path) -> String {
    for component in path.components().rev() {
        let part = component.as_os_str().to_string_lossy();
        if let Some(rest) = part.strip_prefix("datasets--") {
            return rest.replace("--", "/");
        }
    }
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let target = if canonical.is_file() {
        canonical.file_stem()
    } else {
        canonical.file_name()
    };
    target
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_follow_local_and_hub_conventions() {
        assert_eq!(split_of("train.jsonl"), Some(Split::Train));
        assert_eq!(split_of("validation.csv"), Some(Split::Dev));
        assert_eq!(split_of("valid.json"), Some(Split::Dev));
        assert_eq!(split_of("train-00001-of-00002.parquet"), Some(Split::Train));
        assert_eq!(
            split_of("test-00000-of-00001-3d2b9c.parquet"),
            Some(Split::Test)
        );
        assert_eq!(split_of("train_extra.csv"), None);
        assert_eq!(split_of("trainer.jsonl"), None);
        assert_eq!(split_of("LICENSE"), None);
    }

    #[test]
    fn hub_cache_names_become_org_slash_name() {
        let p = Path::new("/c/hub/datasets--openai--gsm8k/snapshots/abc/main");
        assert_eq!(dataset_name(p), "openai/gsm8k");
        assert_eq!(dataset_name(Path::new("data/aeslc")), "aeslc");
    }
}
