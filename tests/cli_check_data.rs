//! `lab check` and `lab data` end to end: exit codes and the messages a user reads.
mod support;

use std::path::Path;
use std::process::Output;
use support::tiny_run::{lab_in, lab_in_fails, lab_with};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `lab <args>` run in `dir`, which must fail; all it printed.
fn lab_fails(dir: &Path, args: &[&str]) -> String {
    text(&lab_in_fails(dir, args))
}

/// The project's valid experiment file, for a test to write a variant of.
fn good_toml(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("good.toml")).unwrap()
}

/// A project folder with a tiny dataset and one strategy script.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("data/toy")).unwrap();
    std::fs::create_dir_all(root.join("strategies")).unwrap();
    std::fs::write(
        root.join("strategies/random.rhai"),
        "const KIND = \"al\";\nfn select(ctx, k) { let n = ctx.param(\"picks\", 1); [] }\n",
    )
    .unwrap();
    let rows = |n: usize| -> String {
        (0..n)
            .map(|i| format!("{{\"text\": \"input number {i}\", \"label\": \"out {i}\"}}\n"))
            .collect()
    };
    std::fs::write(root.join("data/toy/train.jsonl"), rows(20)).unwrap();
    std::fs::write(root.join("data/toy/test.jsonl"), rows(10)).unwrap();
    std::fs::write(
        root.join("good.toml"),
        "seeds = [0, 1, 2]\n[data]\npath = \"data/toy\"\ninput_field = \"text\"\noutput_field = \"label\"\ninput_template = \"Echo: {input}\"\n[al]\niterations = 2\n[[strategy]]\nname = \"random\"\n",
    )
    .unwrap();
    dir
}

#[test]
fn check_accepts_a_valid_file_and_rejects_a_typo_naming_the_fix() {
    let dir = project();
    let ok = lab_in(dir.path(), &["check", "good.toml"]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("ok: good.toml (1 strategy × 3 seeds)"),
        "{}",
        text(&ok)
    );

    let good = good_toml(&dir);
    std::fs::write(
        dir.path().join("typo.toml"),
        good.replace("[al]", "[train]\nlerning_rate = 1e-4\n[al]"),
    )
    .unwrap();
    let bad = lab_in(dir.path(), &["check", "good.toml", "typo.toml"]);
    assert_eq!(bad.status.code(), Some(1));
    let out = text(&bad);
    assert!(out.contains("ok: good.toml"), "{out}");
    assert!(
        out.contains(
            "unknown key `train.lerning_rate` in typo.toml line 8; did you mean `learning_rate`?"
        ),
        "{out}"
    );

    let several = good
        .replace("iterations = 2", "")
        .replace("[al]", "[eval]\nmetrics = [\"rouge_2\"]\n[al]");
    std::fs::write(dir.path().join("several.toml"), several).unwrap();
    let out = text(&lab_in(dir.path(), &["check", "several.toml"]));
    assert!(out.contains("needs a stopping criterion"), "{out}");
    assert!(
        out.contains("unknown metric `rouge_2`; did you mean `rouge2`?"),
        "{out}"
    );

    std::fs::write(
        dir.path().join("noscript.toml"),
        good.replace("\"random\"", "\"nosuch\""),
    )
    .unwrap();
    // A strategy param the script never reads (a typo) and one of the wrong type.
    std::fs::write(
        dir.path().join("params.toml"),
        format!("{good}params = {{ pics = 2, initial = \"random\" }}\n[[strategy]]\nname = \"random\"\nlabel = \"r2\"\nparams = {{ picks = 2.5 }}\n"),
    )
    .unwrap();
    let out = text(&lab_in(dir.path(), &["check", "params.toml"]));
    assert!(
        out.contains("`strategy[0].params.pics` in params.toml line 11 (script strategies/random.rhai): the script never reads `pics`, so it would be ignored; did you mean `picks`?"),
        "{out}"
    );
    assert!(
        out.contains("`strategy[1].params.picks` in params.toml line 15 (script strategies/random.rhai): [strategy.params] picks = 2.5: expected an integer like the default 1"),
        "{out}"
    );

    let missing = lab_in(dir.path(), &["check", "noscript.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing).contains("strategies/nosuch.rhai does not exist"),
        "{}",
        text(&missing)
    );
}

#[test]
fn data_prints_counts_lengths_and_rendered_examples() {
    let dir = project();
    let out = lab_in(dir.path(), &["data", "good.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = text(&out);
    assert!(out.contains("pool       20"), "{out}");
    assert!(out.contains("test       10"), "{out}");
    assert!(out.contains("input words"), "{out}");
    assert_eq!(out.matches("--- pool example id").count(), 3, "{out}");
    assert!(out.contains("Echo: input number 0"), "{out}");
}

#[test]
fn check_and_data_read_a_relative_data_path_beside_the_experiment_like_run_does() {
    let dir = project();
    // From a folder where `data/toy` is not, the experiment file's own folder is used.
    let elsewhere = tempfile::tempdir().unwrap();
    let script = dir.path().join("strategies/random.rhai");
    let good = good_toml(&dir).replace(
        "name = \"random\"\n",
        &format!(
            "name = \"random\"\nscript = {:?}\n",
            script.display().to_string()
        ),
    );
    std::fs::write(dir.path().join("good.toml"), good).unwrap();
    let file = dir.path().join("good.toml");
    let file = file.to_str().unwrap();
    let check = lab_in(elsewhere.path(), &["check", file]);
    assert!(check.status.success(), "{}", text(&check));
    let data = lab_in(elsewhere.path(), &["data", file]);
    assert!(data.status.success(), "{}", text(&data));
    assert!(text(&data).contains("pool       20"), "{}", text(&data));
    // A path found in neither place is named as written, with both places to look.
    std::fs::remove_dir_all(dir.path().join("data/toy")).unwrap();
    let missing = text(&lab_in(elsewhere.path(), &["check", file]));
    assert!(
        missing.contains("`data.path` = data/toy does not exist")
            && missing.contains("experiment file's folder"),
        "{missing}"
    );
    let missing = text(&lab_in(elsewhere.path(), &["data", file]));
    assert!(
        missing.contains("was looked for at")
            && missing.contains(&elsewhere.path().join("data/toy").display().to_string())
            && missing.contains(&dir.path().join("data/toy").display().to_string()),
        "{missing}"
    );
}

#[test]
fn check_names_an_unknown_model_and_bench_runs_nothing_when_any_file_is_bad() {
    let dir = project();
    let good = good_toml(&dir);
    std::fs::write(
        dir.path().join("typo-model.toml"),
        format!("{good}[model]\nname = \"smollm2-135m-instruc\"\n"),
    )
    .unwrap();
    let msg = lab_fails(dir.path(), &["check", "typo-model.toml"]);
    assert!(
        msg.contains("`model.name` = \"smollm2-135m-instruc\" in typo-model.toml line")
            && msg.contains("did you mean `smollm2-135m-instruct`"),
        "{msg}"
    );
    // `lab bench` checks every file before running any: the good first file is not run.
    let msg = lab_fails(dir.path(), &["bench", "good.toml", "typo-model.toml"]);
    assert!(
        msg.contains("1 of 2 experiment files have problems, so nothing was run")
            && msg.contains("typo-model.toml"),
        "{msg}"
    );
    assert!(!dir.path().join("results").exists(), "nothing ran");
}

/// A file asking for CUDA is valid, but this (CPU) build cannot run it: `lab check` says so
/// and passes; `lab bench` skips it, runs the others, and exits non-zero naming it, so
/// `lab bench experiments/*.toml` runs what this build can.
#[cfg(not(feature = "cuda"))]
#[test]
fn a_cuda_experiment_is_noted_by_check_and_skipped_by_bench_on_a_cpu_build() {
    let dir = project();
    let good = good_toml(&dir);
    std::fs::write(
        dir.path().join("gpu.toml"),
        format!("{good}[model]\ndevice = \"cuda\"\n"),
    )
    .unwrap();
    let out = lab_in(dir.path(), &["check", "gpu.toml"]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(
        msg.contains("ok: gpu.toml (1 strategy × 3 seeds; note: `model.device`: device \"cuda\" asked for, but this binary was built without CUDA"),
        "{msg}"
    );
    // Alone, nothing can run.
    let msg = lab_fails(dir.path(), &["bench", "gpu.toml"]);
    assert!(
        msg.contains("this build can run none of the 1 experiment files")
            && msg.contains("--features cuda"),
        "{msg}"
    );
    assert!(!dir.path().join("results").exists(), "nothing ran");
    // Beside a file it can run: that one runs.
    std::fs::write(
        dir.path().join("strategies/first.rhai"),
        "// The first ids.\n// Deviation: none.\nconst KIND = \"al\";\n\
         fn select(ctx, k) { ctx.pool.ids().take(range_vec(k)) }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tiny.toml"),
        "seeds = [0]\n[data]\npath = \"data/toy\"\ninput_field = \"text\"\n\
         output_field = \"label\"\n[model]\nname = \"tiny-random-llama\"\n\
         max_input_tokens = 32\nmax_new_tokens = 4\n[al]\ninit_size = 2\nquery_size = 2\n\
         iterations = 1\n[[strategy]]\nname = \"first\"\n",
    )
    .unwrap();
    let msg = lab_fails(dir.path(), &["bench", "gpu.toml", "tiny.toml"]);
    assert!(
        msg.contains("skipping gpu.toml: `model.device`: device \"cuda\" asked for")
            && msg.contains("1 of 2 experiment files were skipped, as this build cannot run them")
            && !msg.contains("failed or had failed cells"),
        "{msg}"
    );
    let report = std::fs::read_dir(dir.path().join("results"))
        .unwrap()
        .map(|e| e.unwrap().path().join("report.md"))
        .find(|p| p.exists());
    assert!(report.is_some(), "tiny.toml ran and was reported: {msg}");
}

#[test]
fn a_field_no_row_has_is_named_with_the_fields_rows_have() {
    let dir = project();
    let good = good_toml(&dir);
    std::fs::write(
        dir.path().join("field.toml"),
        good.replace("input_field = \"text\"", "input_field = \"txt\""),
    )
    .unwrap();
    let msg = text(&lab_in(dir.path(), &["data", "field.toml"]));
    assert!(
        msg.contains(
            "input field `txt` is missing (the row has fields text, label; did you mean `text`?)"
        ) && msg.contains("Set data.input_field")
            && !msg.contains("on_bad_row"),
        "{msg}"
    );
}

#[test]
fn strategies_only_names_an_unknown_strategy_with_the_nearest() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let msg = lab_fails(repo, &["strategies", "--bench", "50", "--only", "mnlpp"]);
    assert!(
        msg.contains("--only mnlpp: no such strategy") && msg.contains("did you mean `mnlp`"),
        "{msg}"
    );
}

/// Before any LLM labelling the cache folder is simply empty; it follows LAB_LABEL_CACHE as
/// runs do; a --cache folder without a cache is an error naming where runs keep it.
#[test]
fn labels_stats_reads_the_folder_runs_use_and_is_calm_when_it_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("label-cache");
    let stats = |args: &[&str]| {
        let args = [&["labels", "stats"], args].concat();
        lab_with(&args, &[("LAB_LABEL_CACHE", &cache)])
    };
    let out = stats(&[]);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(
        msg.contains(&format!("label cache: {}", cache.display()))
            && msg.contains("entries:     0 (no LLM labels cached yet)"),
        "{msg}"
    );
    let elsewhere = dir.path().join("nothing-here");
    let out = stats(&["--cache", elsewhere.to_str().unwrap()]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("$LAB_LABEL_CACHE"), "{msg}");
}

#[test]
fn check_resolves_split_files_as_run_does() {
    let dir = project();
    let good = good_toml(&dir);
    let with = |extra: &str| good.replace("[al]", &format!("{extra}\n[al]"));
    // The test split named as the train file: the pool would be the test set.
    std::fs::write(dir.path().join("same.toml"), with("test = \"train.jsonl\"")).unwrap();
    let msg = lab_fails(dir.path(), &["check", "same.toml"]);
    assert!(
        msg.contains("is in both the train split (`data.train`) and the test split (`data.test`)"),
        "{msg}"
    );
    // A named split file that does not exist.
    std::fs::write(dir.path().join("gone.toml"), with("dev = \"dev.jsonl\"")).unwrap();
    let msg = lab_fails(dir.path(), &["check", "gone.toml"]);
    assert!(
        msg.contains("`data.dev` = \"dev.jsonl\"") && msg.contains("does not exist"),
        "{msg}"
    );
}

#[test]
fn check_rejects_template_placeholders_other_than_input() {
    let dir = project();
    let good = good_toml(&dir);
    std::fs::write(
        dir.path().join("tmpl.toml"),
        good.replace("Echo: {input}", "Context: {context}\\n{input} {{input}}"),
    )
    .unwrap();
    let msg = lab_fails(dir.path(), &["check", "tmpl.toml"]);
    assert!(
        msg.contains("data.input_template")
            && msg.contains("placeholder(s) `{context}` but only `{input}` is filled in"),
        "{msg}"
    );
}

/// `lab check` reports every problem of a file in one go — keys, values, the model name, the
/// data's rows and sizes — instead of one per run; and it reads the rows as `lab run` does, so
/// a bad row or a test_size beyond the test split fails here, not after `lab run` starts.
#[test]
fn check_reports_every_problem_at_once_and_reads_the_rows() {
    let dir = project();
    let good = good_toml(&dir);
    std::fs::write(
        dir.path().join("many.toml"),
        good.replace("input_template", "test_size = 11\ninput_template")
            .replace(
                "[al]",
                "[model]\nname = \"smollm2-135m-instruc\"\nbatch_size = -1\n[train]\nlerning_rate = 1e-4\nepochs = 0\n[al]\ninit_size = 0",
            ),
    )
    .unwrap();
    let out = lab_in(dir.path(), &["check", "many.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let msg = text(&out);
    for needle in [
        "`model.batch_size` in many.toml line 10: must be a whole number ≥ 0, not negative (got -1)",
        "unknown key `train.lerning_rate` in many.toml line 12; did you mean `learning_rate`?",
        "`train.epochs` in many.toml line 13: must be greater than 0 (got 0)",
        "`al.init_size` in many.toml line 15: must be at least 1",
        "`data.test_size` = 11 but the test split has only 10 rows",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
    }

    // Rows are read: a bad row in the train file, and an initial set larger than the pool.
    std::fs::write(
        dir.path().join("big-init.toml"),
        good.replace("[al]", "[al]\ninit_size = 21"),
    )
    .unwrap();
    let msg = text(&lab_in(dir.path(), &["check", "big-init.toml"]));
    assert!(
        msg.contains(
            "`al.init_size` in big-init.toml line 8: is 21 but the pool has only 20 items"
        ),
        "{msg}"
    );
    let train = dir.path().join("data/toy/train.jsonl");
    let rows = std::fs::read_to_string(&train).unwrap();
    std::fs::write(&train, format!("{rows}{{\"text\": \"no label\"}}\n")).unwrap();
    let msg = lab_fails(dir.path(), &["check", "good.toml"]);
    assert!(
        msg.contains("train.jsonl line 21: output field `label` is missing"),
        "{msg}"
    );
}

/// Every strategy's script problem is reported in one `lab check`: two missing scripts and one
/// that does not compile, not only the first.
#[test]
fn check_names_every_missing_or_broken_script_at_once() {
    let dir = project();
    std::fs::write(
        dir.path().join("strategies/broken.rhai"),
        "const KIND = \"al\";\nfn select(ctx, k) { let = ; }\n",
    )
    .unwrap();
    let good = good_toml(&dir);
    std::fs::write(
        dir.path().join("scripts.toml"),
        format!(
            "{good}[[strategy]]\nname = \"nowhere\"\n[[strategy]]\nname = \"broken\"\n\
             [[strategy]]\nname = \"missing_too\"\n"
        ),
    )
    .unwrap();
    let msg = lab_fails(dir.path(), &["check", "scripts.toml"]);
    for needle in [
        "`strategy[1].name` `nowhere` in scripts.toml line 12: script strategies/nowhere.rhai does not exist",
        "`strategy[2]` `broken` in scripts.toml:",
        "`strategy[3].name` `missing_too` in scripts.toml line 16: script strategies/missing_too.rhai does not exist",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
    }
}
