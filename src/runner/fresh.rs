//! `--fresh`: a cell started over, all or nothing. The cell folder is renamed (atomic) to a
//! trash folder beside it, then the trash is deleted. A kill before the rename leaves the old
//! results whole; one after it leaves no cell folder, so a plain rerun starts the cell over
//! too. Deleting file by file instead, a kill part-way would leave some old files for a plain
//! rerun to take up: a human labeller's `annotation/labels.jsonl`, the labels a person typed,
//! would be reused by a run that was meant to ask again.
use crate::runner::crash_point;
use crate::runner::persist::CellPaths;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Start the cell over: its folder is gone when this returns `Ok`. Called with the cell's lock
/// held (`persist::lock_cell`), which is beside the folder and so survives it.
pub fn reset_cell(paths: &CellPaths) -> Result<()> {
    let trash = trash_dir(paths);
    let moved = crate::util::atomic::move_folder_aside(&paths.dir, &trash).with_context(|| {
        format!(
            "cannot move {} aside to start it over (to {}); check that its folder \
             is writable, or remove the cell folder by hand and run again",
            paths.dir.display(),
            trash.display()
        )
    })?;
    if !moved {
        return Ok(());
    }
    crash_point::reached("fresh-cell-moved");
    remove_trash(&trash)
}

/// Delete what a `--fresh` killed after moving the cell aside left: its trash folders. Only
/// this cell's, whose lock the caller holds: another cell's trash may be its `--fresh` at work.
pub fn remove_cell_trash(paths: &CellPaths) -> Result<()> {
    let (Some(parent), Some(prefix)) = (paths.dir.parent(), trash_prefix(paths)) else {
        return Ok(());
    };
    let entries = match std::fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", parent.display())),
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            remove_trash(&entry.path())?;
        }
    }
    Ok(())
}

/// `.seed-<n>.fresh-trash-`: hidden, and not `seed-<n>`, so the report and `lab serve`,
/// which list cells by that name, never take it for a cell.
fn trash_prefix(paths: &CellPaths) -> Option<String> {
    let name = paths.dir.file_name()?.to_string_lossy().into_owned();
    Some(format!(".{name}.fresh-trash-"))
}

/// Unique, so a `--fresh` never renames onto an older trash folder (a rename onto a
/// non-empty folder fails) even where locks are not supported.
fn trash_dir(paths: &CellPaths) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let prefix = trash_prefix(paths).unwrap_or_else(|| ".fresh-trash-".into());
    paths
        .dir
        .with_file_name(format!("{prefix}{}-{nanos}", std::process::id()))
}

fn remove_trash(trash: &Path) -> Result<()> {
    match std::fs::remove_dir_all(trash) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot remove {}, the old results of a cell started over with --fresh; \
                 delete it by hand",
                trash.display()
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell_with_results(results: &Path) -> CellPaths {
        let paths = CellPaths::new(results, "exp", "random", 3);
        std::fs::create_dir_all(paths.dir.join("annotation")).unwrap();
        std::fs::write(paths.state(), "{}").unwrap();
        std::fs::write(paths.dir.join("annotation/labels.jsonl"), "typed\n").unwrap();
        paths
    }

    fn strategy_folder(paths: &CellPaths) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(paths.dir.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn fresh_removes_the_cell_folder_and_no_trash_is_left() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = cell_with_results(tmp.path());
        let other = CellPaths::new(tmp.path(), "exp", "random", 4);
        std::fs::create_dir_all(&other.dir).unwrap();
        reset_cell(&paths).unwrap();
        assert_eq!(strategy_folder(&paths), ["seed-4"]);
        // A cell that was never run.
        reset_cell(&paths).unwrap();
    }

    /// What a `--fresh` killed while deleting the moved cell leaves: a partial trash folder.
    /// Only this cell's trash goes; seed-31's name starts like seed-3's.
    #[test]
    fn a_cells_leftover_trash_is_removed_and_no_other() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = cell_with_results(tmp.path());
        let trash = trash_dir(&paths);
        std::fs::rename(&paths.dir, &trash).unwrap();
        let other = CellPaths::new(tmp.path(), "exp", "random", 31);
        let other_trash = trash_dir(&other);
        std::fs::create_dir_all(&other_trash).unwrap();
        remove_cell_trash(&paths).unwrap();
        assert!(!trash.exists());
        assert!(other_trash.exists(), "seed-31's --fresh may be at work");
    }
}
