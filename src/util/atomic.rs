//! Results are never half-written: write to a temporary file beside the target, fsync, rename.
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// A temporary file in `dir` (name starting with `prefix`, ending in `suffix`) that, once persisted, is an ordinary
/// file: mode 0666 less the umask, as `File::create` makes, where tempfile's default is 0600
/// (results, figures and models other users or a web server must be able to read).
pub fn shareable_temp_file(
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

/// Write `bytes` to `path` atomically (temp file in the same folder, fsync, rename).
/// Creates the parent folder when missing.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create folder {}", parent.display()))?;
    let mut tmp = shareable_temp_file(parent, ".tmp", "")?;
    tmp.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    crate::runner::crash_point::staged(path);
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot move the new {} into place", path.display()))?;
    sync_folder(parent);
    Ok(())
}

/// Make a rename in `folder` durable. The rename lives in the folder: without syncing it, a
/// power cut can bring back the old name even though the new file's data was on disk. Not
/// every file system can sync a folder; the data itself is synced by its writer, so that
/// failure is not fatal.
pub fn sync_folder(folder: &Path) {
    #[cfg(unix)]
    if let Ok(folder) = std::fs::File::open(folder) {
        let _ = folder.sync_all();
    }
}

/// Rename the folder `dir` to `aside` beside it (atomic), durably, so that deleting `aside`
/// next is all or nothing: a kill before the rename leaves `dir` whole, one after it leaves no
/// `dir`, and without the sync a power cut could bring `dir` back half deleted.
/// `Ok(false)`: there was no `dir`.
pub fn move_folder_aside(dir: &Path, aside: &Path) -> std::io::Result<bool> {
    match std::fs::rename(dir, aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        sync_folder(parent);
    }
    Ok(true)
}

pub fn atomic_write_string(path: &Path, text: &str) -> Result<()> {
    atomic_write(path, text.as_bytes())
}

/// Remove the `.tmp*` files in `dir` (not below it) last modified at least `age` ago: what
/// a kill between an [`atomic_write`]'s temporary and its rename left behind. A younger one
/// may be another process's write in progress; `Duration::ZERO` removes every one, for a
/// folder no other process writes.
pub fn remove_stale_temporaries(dir: &Path, age: std::time::Duration) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let is_tmp = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(".tmp"));
        let old_enough = || {
            age.is_zero()
                || entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|elapsed| elapsed >= age)
        };
        if is_tmp && entry.path().is_file() && old_enough() {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_creates_parents() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/c.txt");
        atomic_write_string(&p, "one").unwrap();
        atomic_write_string(&p, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        // no temporary files left behind
        let n = std::fs::read_dir(p.parent().unwrap()).unwrap().count();
        assert_eq!(n, 1);
    }

    /// Written files get the umask's usual mode, not tempfile's owner-only 0600.
    #[cfg(unix)]
    #[test]
    fn written_files_are_readable_as_the_umask_allows() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::File::create(&probe).unwrap();
        let usual = probe.metadata().unwrap().permissions().mode() & 0o777;
        let p = dir.path().join("out.txt");
        atomic_write_string(&p, "x").unwrap();
        let mode = p.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, usual, "{mode:o} vs {usual:o}");
        assert_ne!(mode, 0o600, "this test needs a umask that is not 077");
    }
}
