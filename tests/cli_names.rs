//! Names in an experiment file that name nothing (a strategy with no script, a model or
//! encoder this lab does not know): the message gives the line, the nearest valid name and
//! only the names valid for that key.
mod support;

use std::path::Path;
use support::runner_e2e::{append_to_experiment, lab_refuses};
use support::tiny_run::{lab_in, stderr};

const MISTYPED_STRATEGY: &str = "seeds = [0]\n[data]\npath = \"d\"\n[al]\niterations = 1\n\
                                 [[strategy]]\nname = \"random\"\n[[strategy]]\nname = \"mnpl\"\n";

/// `name = "mnpl"` got neither a line nor "did you mean `mnlp`?", and was told to "run lab
/// from the folder that holds strategies/" when run from there.
#[test]
fn a_mistyped_strategy_name_gets_its_line_and_the_nearest_script() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("strategies")).unwrap();
    let random = Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies/random.rhai");
    std::fs::copy(random, dir.path().join("strategies/random.rhai")).unwrap();
    std::fs::write(dir.path().join("strategies/mnlp.rhai"), "").unwrap();
    std::fs::write(dir.path().join("exp.toml"), MISTYPED_STRATEGY).unwrap();

    let err = stderr(&lab_in(dir.path(), &["check", "exp.toml"]));
    assert!(
        err.contains("`strategy[1].name` `mnpl` in exp.toml line 9: script strategies/mnpl.rhai does not exist; did you mean `mnlp`? name one of mnlp, random"),
        "{err}"
    );
    assert!(!err.contains("run lab from"), "{err}");

    // From a folder without strategies/ the advice is where to run lab.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let err = stderr(&lab_in(&elsewhere, &["check", "../exp.toml"]));
    assert!(
        err.contains(
            "there is no strategies/ folder here; run lab from the folder that holds strategies/"
        ),
        "{err}"
    );
}

/// `model.name = "smollm2-135m"` had no line, its choices listed the encoder and left out the
/// tiny-random-* names; `encoder.name` was offered language models and "a .gguf file".
#[test]
fn a_model_or_encoder_name_lists_only_names_valid_for_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("exp.toml"),
        "seeds = [0]\n[data]\npath = \"d\"\n[model]\nname = \"smollm2-135m\"\n[encoder]\n\
         name = \"all-minilm-l6\"\n[al]\niterations = 1\n[[strategy]]\nname = \"random\"\n",
    )
    .unwrap();
    let err = stderr(&lab_in(dir.path(), &["check", "exp.toml"]));
    let model = err
        .lines()
        .find(|l| l.contains("`model.name`"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        model.contains("`model.name` = \"smollm2-135m\" in exp.toml line 5"),
        "{model}"
    );
    assert!(model.contains("smollm2-135m-instruct"), "{model}");
    assert!(model.contains("tiny-random-llama"), "{model}");
    assert!(!model.contains("all-minilm-l6-v2"), "{model}");

    let encoder = err
        .lines()
        .find(|l| l.contains("`encoder.name`"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        encoder.contains(
            "`encoder.name` = \"all-minilm-l6\" in exp.toml line 7 is not an encoder this lab \
             knows; did you mean `all-minilm-l6-v2`?"
        ),
        "{encoder}"
    );
    assert!(!encoder.contains("smollm2"), "{encoder}");
    assert!(!encoder.contains(".gguf"), "{encoder}");
}

/// `model.gguf_file` picks the .gguf in a `model.path` folder that holds several; naming one
/// that is not there was passed by `lab check` and failed only at load time.
#[test]
fn gguf_file_names_a_gguf_in_the_model_path_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("two")).unwrap();
    std::fs::write(dir.path().join("two/a.gguf"), "").unwrap();
    std::fs::write(dir.path().join("two/b.gguf"), "").unwrap();
    let exp = |gguf_file: &str| {
        format!(
            "seeds = [0]\n[data]\npath = \"d\"\n[model]\npath = \"two\"\n\
             gguf_file = \"{gguf_file}\"\n[al]\niterations = 1\n[[strategy]]\nname = \"random\"\n"
        )
    };
    std::fs::write(dir.path().join("typo.toml"), exp("a.guf")).unwrap();
    std::fs::write(dir.path().join("right.toml"), exp("a.gguf")).unwrap();

    let err = stderr(&lab_in(dir.path(), &["check", "typo.toml"]));
    assert!(
        err.contains(
            "`model.gguf_file` in typo.toml line 6: two holds no a.guf; did you mean `a.gguf`? \
             its .gguf files: a.gguf, b.gguf"
        ),
        "{err}"
    );
    let err = stderr(&lab_in(dir.path(), &["check", "right.toml"]));
    assert!(!err.contains("model.gguf_file"), "{err}");
    assert!(!err.contains("holds several"), "{err}");
}

/// One cell was counted as "tiny: 1 cells" (one query: runner::stopping's unit tests).
#[test]
fn one_cell_is_counted_in_the_singular() {
    let dir = tempfile::tempdir().unwrap();
    let exp = support::runner_e2e::experiment(dir.path(), "tiny", "iterations = 1", &["random"]);
    let out = support::tiny_run::lab(&["run", exp.to_str().unwrap()]);
    support::tiny_run::assert_ok(&out);
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(printed.contains("tiny: 1 cell; results in"), "{printed}");
    assert!(!printed.contains("1 cells"), "{printed}");
}

/// `lab run` did not look inside `encoder.path` before training (only `lab check` and `lab
/// bench` did): a folder holding no encoder surfaced when a strategy first embedded, or never.
#[test]
fn lab_run_refuses_an_encoder_path_that_holds_no_encoder_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let exp = support::runner_e2e::experiment(dir.path(), "tiny", "iterations = 1", &["random"]);
    let empty = dir.path().join("no-encoder-here");
    std::fs::create_dir_all(&empty).unwrap();
    append_to_experiment(
        &exp,
        &format!("\n[encoder]\npath = \"{}\"\n", empty.display()),
    );
    let err = lab_refuses(&["run", exp.to_str().unwrap()]);
    assert!(err.contains("`encoder.path` in"), "{err}");
    assert!(err.contains("no-encoder-here"), "{err}");
    assert!(
        support::files_under(dir.path())
            .iter()
            .all(|f| f.file_name().is_none_or(|n| n != "curve.csv")),
        "a cell trained before the check"
    );
}
