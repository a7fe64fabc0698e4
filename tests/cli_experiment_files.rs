//! An experiment file that cannot be read as one — missing, a folder, not UTF-8 — and keys
//! whose problems were reported under another key: the message names the file or key and
//! what to pass instead.
mod support;

use std::path::Path;
use support::tiny_run::{lab_in, stderr};

/// `lab run`, `lab data` and `lab check` said "cannot read experiment file X: No such file or
/// directory (os error 2)", "Is a directory (os error 21)" or "stream did not contain valid
/// UTF-8", and `lab check FOLDER` "cannot check extension-less files".
#[test]
fn an_experiment_path_that_is_no_toml_file_says_what_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("exps")).unwrap();
    std::fs::write(dir.path().join("exps/a.toml"), "seeds = [0]\n").unwrap();
    std::fs::write(dir.path().join("latin1.toml"), b"name = \"x\"\n# caf\xe9\n").unwrap();

    for command in ["run", "data", "select"] {
        let mut args = vec![command, "nope.toml"];
        if command == "select" {
            args.extend(["--strategy", "random"]);
        }
        let missing = stderr(&lab_in(dir.path(), &args));
        assert!(
            missing.contains(
                "experiment file nope.toml does not exist: pass the path of a .toml file"
            ),
            "{command}: {missing}"
        );
        assert!(!missing.contains("os error"), "{command}: {missing}");
    }

    let folder = stderr(&lab_in(dir.path(), &["run", "exps"]));
    assert!(
        folder.contains("exps is a folder: pass an experiment file (.toml) such as exps/a.toml"),
        "{folder}"
    );
    let checked = stderr(&lab_in(dir.path(), &["check", "exps/"]));
    assert!(
        checked.contains("exps is a folder: pass the files in it, e.g. lab check exps/*.toml"),
        "{checked}"
    );

    let latin1 = stderr(&lab_in(dir.path(), &["check", "latin1.toml"]));
    assert!(
        latin1.contains(
            "latin1.toml line 2: not UTF-8 text (TOML files are UTF-8); save it as UTF-8"
        ),
        "{latin1}"
    );
}

/// `data.test_ratio = 1.5` alone was reported twice, the second time under `data.dev_ratio`
/// (unset) as "test_ratio + dev_ratio must leave some rows for training".
#[test]
fn a_ratio_out_of_range_is_reported_once_under_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ratio.toml"),
        "seeds = [0]\n[data]\npath = \"d\"\ntest_ratio = 1.5\n[al]\niterations = 1\n\
         [[strategy]]\nname = \"random\"\n",
    )
    .unwrap();
    let out = lab_in(dir.path(), &["check", "ratio.toml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`data.test_ratio` in ratio.toml line 4: must be in (0, 1) (got 1.5)"),
        "{err}"
    );
    assert!(!err.contains("data.dev_ratio"), "{err}");

    // Both in range but summing to 1 or more is still refused.
    std::fs::write(
        dir.path().join("sum.toml"),
        "seeds = [0]\n[data]\npath = \"d\"\ntest_ratio = 0.5\ndev_ratio = 0.5\n[al]\n\
         iterations = 1\n[[strategy]]\nname = \"random\"\n",
    )
    .unwrap();
    let err = stderr(&lab_in(dir.path(), &["check", "sum.toml"]));
    assert!(
        err.contains("data.test_ratio + data.dev_ratio must leave some rows for training"),
        "{err}"
    );
}

/// `lab check` passed a `model.path` folder holding no model and a `model.path` that is some
/// other file, and never looked at `encoder.path`, which `lab run` then failed on only when a
/// strategy first embedded, after the first training.
#[test]
fn model_and_encoder_paths_that_hold_no_model_are_found_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("data/toy")).unwrap();
    let rows: String = (0..10)
        .map(|i| format!("{{\"input\": \"in {i}\", \"output\": \"out {i}\"}}\n"))
        .collect();
    std::fs::write(root.join("data/toy/train.jsonl"), &rows).unwrap();
    std::fs::write(root.join("data/toy/test.jsonl"), &rows).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("encoder")).unwrap();
    std::fs::write(root.join("encoder/config.json"), "{}").unwrap();
    std::fs::create_dir_all(root.join("two")).unwrap();
    std::fs::write(root.join("two/a.gguf"), "").unwrap();
    std::fs::write(root.join("two/b.gguf"), "").unwrap();
    let random = Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies/random.rhai");
    let write = |name: &str, model: &str, encoder: &str| {
        std::fs::write(
            root.join(format!("{name}.toml")),
            format!(
                "seeds = [0]\n[data]\npath = \"data/toy\"\n[model]\npath = \"{model}\"\n\
                 [encoder]\npath = \"{encoder}\"\n[al]\niterations = 1\n[[strategy]]\n\
                 name = \"random\"\nscript = \"{}\"\n",
                random.display()
            ),
        )
        .unwrap();
    };
    // (name, model.path, encoder.path, what is said of each)
    for (name, model, encoder, model_said, encoder_said) in [
        (
            "empty",
            "empty",
            "nowhere",
            "`model.path` in empty.toml line 5: folder empty holds no model: it needs config.json, tokenizer.json and *.safetensors, or one .gguf file",
            "`encoder.path` in empty.toml line 7: nowhere does not exist: pass a sentence-transformers folder",
        ),
        (
            "other",
            "data/toy/train.jsonl",
            "encoder",
            "`model.path` in other.toml line 5: data/toy/train.jsonl is a file but not a .gguf file",
            "`encoder.path` in other.toml line 7: folder encoder lacks model.safetensors, tokenizer.json",
        ),
        (
            "two",
            "two",
            "data/toy/train.jsonl",
            "folder two holds several .gguf files (a.gguf, b.gguf): set model.gguf_file to the one to load, or model.path to its path",
            "`encoder.path` in two.toml line 7: data/toy/train.jsonl is a file",
        ),
    ] {
        write(name, model, encoder);
        let err = stderr(&lab_in(root, &["check", &format!("{name}.toml")]));
        assert!(err.contains(model_said), "{name}.toml: {err}");
        assert!(err.contains(encoder_said), "{name}.toml: {err}");
    }
}

/// A mistyped file name was "No such file or directory (os error 2)"; a file a typo away, or
/// one differing only in its extension, is now offered.
#[test]
fn a_mistyped_file_name_is_answered_with_the_nearest_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("exps")).unwrap();
    std::fs::create_dir_all(dir.path().join("strategies")).unwrap();
    std::fs::write(dir.path().join("exps/quickstart.toml"), "seeds = [0]\n").unwrap();
    std::fs::write(dir.path().join("strategies/huds.rhai"), "").unwrap();
    std::fs::write(dir.path().join("strategies/mnlp.rhai"), "").unwrap();
    for (args, said) in [
        (
            &["run", "exps/quikstart.toml"][..],
            "experiment file exps/quikstart.toml does not exist; did you mean exps/quickstart.toml?",
        ),
        (
            &["data", "exps/quickstart"],
            "experiment file exps/quickstart does not exist; did you mean exps/quickstart.toml?",
        ),
        (
            &["check", "exps/quickstart.tmol"],
            "file exps/quickstart.tmol does not exist; did you mean exps/quickstart.toml?",
        ),
        (
            &["check", "strategies/hdus.rhai"],
            "strategy script strategies/hdus.rhai does not exist; did you mean strategies/huds.rhai?",
        ),
        // Nothing near: no guess.
        (
            &["check", "strategies/nope.rhai"],
            "strategy script strategies/nope.rhai does not exist: `lab strategies` lists",
        ),
    ] {
        let err = stderr(&lab_in(dir.path(), args));
        assert!(err.contains(said), "{args:?}: {err}");
    }
}

/// A mistyped `data.path` or `data.train` was "does not exist" alone.
#[test]
fn a_mistyped_data_path_is_answered_with_the_nearest_folder_or_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data/toy")).unwrap();
    std::fs::write(dir.path().join("data/toy/train.jsonl"), "").unwrap();
    let write = |name: &str, data: &str| {
        std::fs::write(
            dir.path().join(format!("{name}.toml")),
            format!("seeds = [0]\n[data]\n{data}\n[al]\niterations = 1\n[[strategy]]\nname = \"random\"\n"),
        )
        .unwrap();
    };
    write("folder", "path = \"data/toyy\"");
    write("train", "path = \"data/toy\"\ntrain = \"trian.jsonl\"");
    for command in ["check", "data"] {
        let err = stderr(&lab_in(dir.path(), &[command, "folder.toml"]));
        assert!(
            err.contains("`data.path` = data/toyy does not exist; did you mean data/toy?"),
            "{command}: {err}"
        );
        let err = stderr(&lab_in(dir.path(), &[command, "train.toml"]));
        assert!(
            err.contains("`data.train` = \"trian.jsonl\": data/toy/trian.jsonl does not exist; did you mean data/toy/train.jsonl?"),
            "{command}: {err}"
        );
    }
}
