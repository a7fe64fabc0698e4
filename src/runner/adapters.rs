//! A cell's LoRA adapters on disk: one folder per iteration under `adapters/`, written beside
//! and swapped in, of which only the one state.json points at is kept. state.json names it
//! relative to the cell, so a results folder can be moved or copied and still resume from its
//! own weights.
use crate::models::lm::LanguageModel;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

use crate::runner::crash_point;
use crate::runner::persist::CellPaths;

/// The folder of iteration `t`'s adapter, relative to the cell (what state.json stores).
pub fn relative_dir(t: usize) -> PathBuf {
    Path::new("adapters").join(format!("iter-{t}"))
}

/// Where the adapter state.json names lives. States written before paths were stored relative
/// hold an absolute path, possibly into the folder the cell was copied from: the cell's own
/// adapter of the same name is the right one.
pub fn resolve(paths: &CellPaths, stored: &Path) -> PathBuf {
    if stored.is_relative() {
        return paths.dir.join(stored);
    }
    match stored.file_name() {
        Some(name) => paths.dir.join("adapters").join(name),
        None => stored.to_path_buf(),
    }
}

/// Load the adapter a resumed cell continues from, with advice when it is gone.
pub fn load_for_resume(model: &mut LanguageModel, paths: &CellPaths, stored: &Path) -> Result<()> {
    let dir = resolve(paths, stored);
    if !dir.exists() {
        anyhow::bail!(
            "resuming {}: its adapter {} is missing (state.json continues from it); rerun \
             with --fresh --strategy {} to start this cell over",
            paths.dir.display(),
            dir.display(),
            paths.strategy_key()
        );
    }
    model
        .load_adapter(&dir)
        .with_context(|| format!("resuming {}: cannot load its adapter", paths.dir.display()))
}

/// Write the adapter to a sibling folder, then swap it in, so a crash never leaves a
/// half-written adapter where state.json points.
pub fn save_atomically(model: &LanguageModel, dir: &Path) -> Result<()> {
    let tmp: PathBuf = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    model.save_adapter(&tmp)?;
    crash_point::reached("adapter-staged");
    // A leftover from a crashed attempt at this same iteration is not referenced by
    // state.json, so it can go.
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir)
        .with_context(|| format!("cannot move the new adapter to {}", dir.display()))?;
    // state.json, written next, names this folder: its rename must outlast a power cut.
    if let Some(parent) = dir.parent() {
        crate::util::atomic::sync_folder(parent);
    }
    crash_point::reached("adapter-saved");
    Ok(())
}

/// Remove every adapter folder but `keep` (the one state.json points at): older iterations'
/// and those of iterations a kill interrupted before they were committed.
pub fn remove_unused(paths: &CellPaths, keep: Option<&Path>) {
    let keep = keep.map(|k| resolve(paths, k));
    let Ok(entries) = std::fs::read_dir(paths.dir.join("adapters")) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if Some(&path) != keep.as_ref() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_paths_resolve_inside_the_cell_and_unused_folders_go() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = CellPaths::new(tmp.path(), "exp", "random", 0);
        // Relative (as written now), and absolute into a folder this cell was copied from.
        assert_eq!(
            resolve(&paths, &relative_dir(3)),
            paths.dir.join("adapters/iter-3")
        );
        assert_eq!(
            resolve(
                &paths,
                Path::new("/elsewhere/exp/random/seed-0/adapters/iter-3")
            ),
            paths.dir.join("adapters/iter-3")
        );
        for name in ["iter-2", "iter-3", "iter-4", "iter-4.tmp"] {
            std::fs::create_dir_all(paths.dir.join("adapters").join(name)).unwrap();
        }
        remove_unused(&paths, Some(&relative_dir(3)));
        let left: Vec<_> = std::fs::read_dir(paths.dir.join("adapters"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["iter-3"]);
    }
}
