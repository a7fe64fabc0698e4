//! The files a user names on the command line, read with advice when they cannot be: the
//! OS's own words ("No such file or directory", "Is a directory") say what went wrong but
//! not what to pass instead.
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The text of an experiment file.
pub fn read_experiment_text(path: &Path) -> Result<String> {
    let shown = path.display();
    if path.is_dir() {
        let tomls = entries_in(path, Some("toml"), true);
        bail!(
            "{shown} is a folder: pass an experiment file (.toml){}",
            match tomls.len() {
                0 => "; it holds none".to_string(),
                1..=6 => format!(" such as {}", tomls.join(", ")),
                n => format!(" such as {} ({n} in all)", tomls[..6].join(", ")),
            }
        );
    }
    if !path.exists() {
        bail!(
            "{}",
            missing_file(
                "experiment file",
                path,
                ": pass the path of a .toml file from the folder you run lab in \
                 (experiments/quickstart.toml is the example)"
            )
        );
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read experiment file {shown}"))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        anyhow::anyhow!(
            "experiment file {shown} line {line}: not UTF-8 text (TOML files are UTF-8); save \
             it as UTF-8"
        )
    })
}

/// "`what` X does not exist", with the nearest file in X's folder when one is close enough to
/// be a typo (`strategies/hdus.rhai`, `experiments/quickstart.tmol`), else `otherwise`.
pub fn missing_file(what: &str, path: &Path, otherwise: &str) -> String {
    let shown = path.display();
    match nearest_file(path) {
        Some(near) => format!("{what} {shown} does not exist; did you mean {near}?"),
        None => format!("{what} {shown} does not exist{otherwise}"),
    }
}

/// A file beside `path` whose name is a typo away from its name: among the files of the same
/// extension by stem, else one that differs only in the extension.
pub(super) fn nearest_file(path: &Path) -> Option<String> {
    nearest(path, true)
}

/// [`nearest_file`] among files and folders alike (`data.path`, `data.train`).
pub fn nearest_entry(path: &Path) -> Option<String> {
    nearest(path, false)
}

fn nearest(path: &Path, files_only: bool) -> Option<String> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let listed = entries_in(folder, None, files_only);
    let files: Vec<&Path> = listed.iter().map(Path::new).collect();
    let extension = path.extension();
    let same_extension: Vec<&Path> = files
        .iter()
        .copied()
        .filter(|p| p.extension() == extension)
        .collect();
    // A typo in the extension, or one too many: the same name otherwise.
    let other_extension = || {
        files
            .iter()
            .copied()
            .find(|p| p.file_stem() == path.file_stem() || p.file_name() == path.file_stem())
    };
    let near = nearest_by(path, &same_extension).or_else(other_extension)?;
    let near = near.file_name()?;
    Some(if folder == Path::new(".") {
        near.to_string_lossy().into_owned()
    } else {
        folder.join(near).display().to_string()
    })
}

/// The file of `pool` whose stem is nearest `path`'s, if a typo away.
fn nearest_by<'a>(path: &Path, pool: &[&'a Path]) -> Option<&'a Path> {
    let text = |p: &Path| {
        p.file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let names: Vec<String> = pool.iter().map(|p| text(p)).collect();
    let near = super::diagnose::suggest(&text(path), &names)?;
    let index = names.iter().position(|n| n == near)?;
    Some(pool[index])
}

/// The paths of the files (or, unless `files_only`, any entries) in `folder`, those ending in
/// `.extension` if given, sorted.
fn entries_in(folder: &Path, extension: Option<&str>, files_only: bool) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !files_only || p.is_file())
        .filter(|p| extension.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
        .map(|p| p.display().to_string())
        .collect();
    found.sort();
    found
}
