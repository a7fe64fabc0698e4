use super::*;
use std::path::PathBuf;

const METRICS: &[&str] = &[
    "exact_match",
    "exact_match_strict",
    "gsm8k_accuracy",
    "rouge1",
    "rouge2",
    "rougeL",
    "rougeLsum",
    "sacrebleu",
    "sentence_bleu",
    "bertscore_minilm",
];

const MINIMAL: &str = r#"
[data]
path = "data/aeslc"

[al]
iterations = 3

[[strategy]]
name = "random"
"#;

/// Parse and validate as `lab check` does: every problem in one report.
fn parse(text: &str) -> anyhow::Result<Experiment> {
    parse_and_validate(text, Path::new("experiments/x.toml"), Some(METRICS))
}

fn error_of(text: &str) -> String {
    format!(
        "{:#}",
        parse(text).expect_err("the file should be rejected")
    )
}

#[test]
fn minimal_file_gets_documented_defaults() {
    let exp = parse(MINIMAL).unwrap();
    assert_eq!(exp.name, "x");
    assert_eq!(exp.seeds, vec![0]);
    assert_eq!(exp.results_dir, PathBuf::from("results"));
    assert_eq!(exp.data.input_template, "{input}");
    assert_eq!(
        exp.data.effective_reference_fields(),
        vec!["output".to_string()]
    );
    assert_eq!(exp.data.on_bad_row, OnBadRow::Fail);
    assert_eq!(exp.model.name, "smollm2-135m-instruct");
    assert_eq!(
        (exp.model.max_input_tokens, exp.model.max_new_tokens),
        (128, 16)
    );
    assert!(exp.model.first_line_only);
    assert_eq!(exp.lora.r, 16);
    assert_eq!(exp.lora.target_modules.len(), 7);
    assert_eq!(exp.train.learning_rate, 3e-4);
    assert_eq!(exp.train.schedule, LrSchedule::Linear);
    assert_eq!(exp.al.init_size, Size::Count(10));
    assert_eq!(exp.labeller.kind, LabellerKind::Golden);
    assert_eq!(exp.eval.metrics, vec!["rouge1", "rouge2", "rougeL"]);
    assert_eq!(exp.sandbox.max_operations, 50_000_000);
    assert_eq!(
        exp.strategies[0].script_path(),
        PathBuf::from("strategies/random.rhai")
    );
    assert_eq!(exp.strategies[0].key(), "random");
}

#[test]
fn misspelt_key_names_file_path_line_and_fix() {
    let text = MINIMAL.replace("[al]", "[train]\nepochs = 2\nlerning_rate = 1e-4\n\n[al]");
    let err = error_of(&text);
    assert_eq!(
        err,
        "unknown key `train.lerning_rate` in experiments/x.toml line 7; did you mean `learning_rate`?"
    );
}

#[test]
fn misspelt_key_inside_a_strategy_table_names_its_index() {
    let text = format!("{MINIMAL}\n[[strategy]]\nname = \"mnlp\"\nlable = \"m\"\n");
    let err = error_of(&text);
    assert!(
        err.starts_with("unknown key `strategy[1].lable` in experiments/x.toml line 13"),
        "{err}"
    );
    assert!(err.ends_with("did you mean `label`?"), "{err}");
}

#[test]
fn unrelated_unknown_key_lists_the_valid_ones() {
    let err = error_of(&MINIMAL.replace("[al]", "[al]\nzzzzzz = 1"));
    assert!(err.contains("unknown key `al.zzzzzz`"), "{err}");
    assert!(
        err.contains("valid keys here: init_size, query_size, iterations"),
        "{err}"
    );
}

#[test]
fn bad_enum_value_lists_valid_values() {
    let err = error_of(&format!("{MINIMAL}\n[lora]\nmethod = \"qlra\"\n"));
    assert_eq!(
        err,
        "`lora.method` in experiments/x.toml line 12: unknown value `qlra`; valid values: lora, dora, qlora (did you mean `qlora`?)"
    );
}

#[test]
fn wrong_type_names_key_and_line() {
    let err = error_of(&format!("{MINIMAL}\n[model]\nbatch_size = \"big\"\n"));
    assert_eq!(
        err,
        "`model.batch_size` in experiments/x.toml line 12: expected a whole number ≥ 0, like 3 (got \"big\")"
    );
}

/// serde's own words ("invalid value: integer `-5`, expected usize") name Rust types; the
/// messages say what to write instead.
#[test]
fn type_errors_say_what_to_write_in_the_files_terms() {
    let with = |table: &str, line: &str| error_of(&format!("{MINIMAL}\n[{table}]\n{line}\n"));
    for (table, line, expected) in [
        (
            "train",
            "epochs = 2.5",
            "expected a whole number ≥ 0, like 3 (got 2.5)",
        ),
        (
            "train",
            "epochs = -2",
            "must be a whole number ≥ 0, not negative (got -2)",
        ),
        (
            "train",
            "learning_rate = \"fast\"",
            "expected a number, like 0.5 (got \"fast\")",
        ),
        (
            "train",
            "from_scratch = 1",
            "expected true or false (got 1)",
        ),
        (
            "model",
            "name = 3",
            "expected text in quotes, like \"…\" (got 3)",
        ),
        (
            "eval",
            "metrics = \"rouge2\"",
            "expected a list in brackets, like [0, 1] (got \"rouge2\")",
        ),
    ] {
        let err = with(table, line);
        let key = line.split(' ').next().unwrap();
        assert_eq!(
            err,
            format!("`{table}.{key}` in experiments/x.toml line 12: {expected}"),
            "{line}"
        );
    }
}

/// A file with several mistakes gets them all in one report, each with its line, instead of
/// one per `lab check`; the checks a left-out key would make misleading are held back.
#[test]
fn every_problem_in_a_file_is_reported_at_once() {
    let text = r#"seeds = [1, 1]
[data]
path = "data/aeslc"
input_feild = "email"
[model]
batch_size = "big"
device = "gpu"
[train]
epochs = 0
[al]
iterations = "three"
query_size = 0
label_budget = -5
[eval]
metrics = ["rouge_2"]
[[strategy]]
name = "random"
[[strategy]]
label = "second"
"#;
    let err = error_of(text);
    let lines: Vec<&str> = err.lines().collect();
    for needle in [
        "unknown key `data.input_feild` in experiments/x.toml line 4; did you mean `input_field`?",
        "`model.batch_size` in experiments/x.toml line 6: expected a whole number",
        "`model.device` in experiments/x.toml line 7: unknown value `gpu`; valid values: auto, cpu, cuda",
        "`al.iterations` in experiments/x.toml line 11: expected a whole number",
        "`al.label_budget` in experiments/x.toml line 13: must be a whole number ≥ 0, not negative (got -5)",
        "`strategy[1].name` in experiments/x.toml line 18: is required",
        // Semantic problems beside them: in untouched tables, or with a value as written.
        "`seeds` in experiments/x.toml line 1: lists a seed twice",
        "`train.epochs` in experiments/x.toml line 9: must be greater than 0 (got 0)",
        "`al.query_size` in experiments/x.toml line 12: must be at least 1",
        "`eval.metrics` in experiments/x.toml line 15: unknown metric `rouge_2`",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(needle)),
            "missing {needle:?} in:\n{err}"
        );
    }
    assert_eq!(lines.len(), 10, "{err}");
    // `al.iterations` was left out as unreadable: [al] is not also said to lack a stopping
    // criterion, nor strategy[1] to have an empty name.
    assert!(!err.contains("stopping criterion"), "{err}");
    assert!(!err.contains("must be non-empty"), "{err}");
    // `lab run` (load_experiment) reports the same set.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.toml");
    std::fs::write(&file, text).unwrap();
    let run = format!("{:#}", load_experiment(&file).unwrap_err());
    assert!(
        run.contains("input_feild")
            && run.contains("lists a seed twice")
            && run.contains("label_budget"),
        "{run}"
    );
}

#[test]
fn missing_strategy_name_is_reported() {
    let err = error_of(&format!("{MINIMAL}\n[[strategy]]\nlabel = \"b\"\n"));
    assert!(
        err.contains("`strategy[1].name` in experiments/x.toml line 11: is required")
            && err.contains("`script = \"path/to/x.rhai\"`"),
        "{err}"
    );
}

/// `script = "path/x.rhai"` alone names the strategy `x`, as README says.
#[test]
fn a_strategy_given_only_its_script_is_named_after_the_file() {
    let exp = parse_and_validate(
        &format!("{MINIMAL}\n[[strategy]]\nscript = \"my/longest_first.rhai\"\n"),
        Path::new("experiments/x.toml"),
        Some(METRICS),
    )
    .unwrap();
    let s = &exp.strategies[1];
    assert_eq!(
        (s.name.as_str(), s.key()),
        ("longest_first", "longest_first")
    );
    assert_eq!(s.script_path(), PathBuf::from("my/longest_first.rhai"));
}

#[test]
fn single_bracket_strategy_table_gets_double_bracket_advice() {
    let err = error_of(&MINIMAL.replace("[[strategy]]", "[strategy]"));
    assert!(
        err.contains("`strategy` in experiments/x.toml line 8"),
        "{err}"
    );
    assert!(
        err.contains("[[strategy]] header (double brackets)"),
        "{err}"
    );
}

#[test]
fn syntax_error_names_line_and_column() {
    let err = error_of("[data]\npath = \n");
    assert!(
        err.starts_with("experiments/x.toml line 2, column"),
        "{err}"
    );
    assert!(err.contains("invalid TOML"), "{err}");
}

#[test]
fn semantic_problems_are_all_reported_with_lines() {
    let text = r#"seeds = [1, 1]
[data]
path = "d"
input_template = "no placeholder"
test_ratio = 1.5

[train]
learning_rate = -1.0

[al]
query_size = 2.5

[[strategy]]
name = "random"
"#;
    let err = error_of(text);
    for needle in [
        "`seeds` in experiments/x.toml line 1: lists a seed twice",
        "`data.input_template` in experiments/x.toml line 4: must contain `{input}`",
        "`data.test_ratio` in experiments/x.toml line 5: must be in (0, 1) (got 1.5)",
        "`train.learning_rate` in experiments/x.toml line 8: must be a finite number greater than 0 (got -1)",
        "`al.query_size` in experiments/x.toml line 11: a fraction of the pool must be in (0, 1]",
        "`al` in experiments/x.toml line 10: needs a stopping criterion",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn unknown_metric_suggests_nearest_registered_one() {
    let text = MINIMAL.replace(
        "[al]",
        "[eval]\nmetrics = [\"rouge2\", \"rouge_l\"]\n\n[al]",
    );
    let err = error_of(&text);
    assert!(
        err.contains("unknown metric `rouge_l`; did you mean `rougeL`?"),
        "{err}"
    );
    // Without the registry the same file passes structural validation.
    validate(&parse_experiment(&text, Path::new("x.toml")).unwrap()).unwrap();
}

#[test]
fn required_performance_must_be_an_evaluated_metric() {
    let text = MINIMAL.replace(
        "iterations = 3",
        "required_performance = { sacrebleu = 30.0 }",
    );
    let err = error_of(&text);
    assert!(err.contains("`al.required_performance.sacrebleu`"), "{err}");
    assert!(err.contains("add it to eval.metrics"), "{err}");
}

#[test]
fn api_key_env_must_be_a_variable_name() {
    let text = format!("{MINIMAL}\n[labeller]\napi_key_env = \"sk-proj-abc123\"\n");
    assert!(error_of(&text).contains("never the key itself"));
}

#[test]
fn llm_labeller_needs_provider_and_model() {
    let err = error_of(&format!("{MINIMAL}\n[labeller]\nkind = \"llm\"\n"));
    assert!(err.contains("`labeller.provider`"), "{err}");
    assert!(err.contains("`labeller.model`"), "{err}");
}

#[test]
fn duplicate_strategy_needs_a_label() {
    let twice = format!("{MINIMAL}\n[[strategy]]\nname = \"random\"\n");
    assert!(error_of(&twice).contains("strategy `random` appears twice"));
    let labelled = format!("{twice}label = \"random-2\"\n");
    let exp = parse(&labelled).unwrap();
    assert_eq!(exp.strategies[1].key(), "random-2");
}

#[test]
fn resolved_config_round_trips_through_toml() {
    let text = r#"
name = "round"
seeds = [3, 4]
description = "all tables set"
[data]
path = "data/aeslc"
reference_fields = ["subject", "annotations"]
test_size = 100
[model]
hub_id = "Qwen/Qwen3-1.7B"
[labeller]
kind = "llm"
provider = "openai"
model = "gpt-4o-mini"
api_key_env = "OPENAI_API_KEY"
[al]
query_size = 0.01
iterations = 2
required_performance = { rouge2 = 0.2 }
[[strategy]]
name = "huds"
pool_subsample = 500
params = { clusters = 5, lambda = 0.5, nested = { a = [1, 2] } }
"#;
    let exp = parse(text).unwrap();
    let written = exp.to_toml_string().unwrap();
    let again = parse_experiment(&written, Path::new("results/round/config.toml")).unwrap();
    let (mut a, mut b) = (exp.clone(), again);
    a.source = None;
    b.source = None;
    assert_eq!(a, b, "written:\n{written}");
    // Every default is spelled out, so the file states the whole run.
    assert!(written.contains("learning_rate = 0.0003"), "{written}");
    assert!(
        written.contains("api_key_env = \"OPENAI_API_KEY\""),
        "{written}"
    );
}

#[test]
fn shipped_experiments_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let exp = load_experiment(&path).unwrap();
            validate_with(&exp, METRICS).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            validate_with(&exp, crate::metrics::registry::names())
                .unwrap_or_else(|e| panic!("{} against the registry: {e:#}", path.display()));
            n += 1;
        }
    }
    assert!(
        n >= 3,
        "expected quickstart and the paper experiments in {}",
        dir.display()
    );
}

#[test]
fn check_rejects_unsupported_extensions_naming_supported_ones() {
    let err = check::check_file(Path::new("strategies/x.py"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot check `.py` files; supported: .toml"),
        "{err}"
    );
}

#[test]
fn pasted_api_keys_are_refused_as_variable_names() {
    for key in [
        "gsk_abcdefghijklmnopqrstuvwxyz0123456789",
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYz",
        "3f9a0c1d2e4b5a6978c0d1e2f3a4b5c6",
        "A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6E7F8A9B0C1D2E3F4A5B6C7D8E9F0A1B2C3",
    ] {
        let text = format!(
            "{MINIMAL}\n[labeller]\nkind = \"llm\"\nprovider = \"openai\"\nmodel = \"m\"\napi_key_env = \"{key}\"\n"
        );
        let err = error_of(&text);
        assert!(err.contains("never the key itself"), "{key}: {err}");
        assert!(
            !err.contains(key),
            "the error must not repeat the key: {err}"
        );
    }
    let ok = format!(
        "{MINIMAL}\n[labeller]\nkind = \"llm\"\nprovider = \"openai\"\nmodel = \"m\"\napi_key_env = \"GROQ_API_KEY_2\"\n"
    );
    parse(&ok).unwrap();
}

#[test]
fn nan_and_infinite_numbers_are_refused_naming_the_key() {
    for (table, line, key) in [
        ("lora", "alpha = nan", "lora.alpha"),
        ("lora", "alpha = inf", "lora.alpha"),
        ("train", "learning_rate = nan", "train.learning_rate"),
        ("train", "learning_rate = inf", "train.learning_rate"),
        ("train", "max_seq_len = 1", "train.max_seq_len"),
    ] {
        let err = error_of(&format!("{MINIMAL}\n[{table}]\n{line}\n"));
        assert!(
            err.contains(&format!("`{key}` in experiments/x.toml")),
            "{line}: {err}"
        );
    }
    let budget = MINIMAL.replace("iterations = 3", "iterations = 3\nmoney_budget = nan");
    let err = error_of(&budget);
    assert!(err.contains("`al.money_budget`"), "{err}");
    assert!(err.contains("finite number greater than 0"), "{err}");
}

#[test]
fn a_misspelled_lora_target_is_refused_with_a_suggestion() {
    let err = error_of(&format!(
        "{MINIMAL}\n[lora]\ntarget_modules = [\"q_proj\", \"q_porj\"]\n"
    ));
    assert!(err.contains("`lora.target_modules`"), "{err}");
    assert!(
        err.contains("unknown module `q_porj`; did you mean `q_proj`?"),
        "{err}"
    );
    assert!(!err.contains("unknown module `q_proj`"), "{err}");
}

#[test]
fn llm_settings_without_kind_llm_are_refused_instead_of_using_gold_labels() {
    let text = format!(
        "{MINIMAL}\n[labeller]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\nprice_input_per_mtok = 0.15\n"
    );
    let err = error_of(&text);
    for key in [
        "labeller.provider",
        "labeller.model",
        "labeller.price_input_per_mtok",
    ] {
        assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
    }
    assert!(
        err.contains("labeller.kind is \"golden\" (the default): add kind = \"llm\""),
        "{err}"
    );
    // A local labeller needs its model, and may not have LLM-only settings.
    let local = format!("{MINIMAL}\n[labeller]\nkind = \"local\"\n");
    assert!(error_of(&local).contains("`labeller.model`"));
    let local_ok =
        format!("{MINIMAL}\n[labeller]\nkind = \"local\"\nmodel = \"smollm2-135m-instruct\"\n");
    parse(&local_ok).unwrap();
}

#[test]
fn provider_limits_are_checked_before_the_run() {
    let llm = |extra: &str, provider: &str| {
        format!(
            "{MINIMAL}\n[labeller]\nkind = \"llm\"\nprovider = \"{provider}\"\nmodel = \"m\"\n{extra}\n"
        )
    };
    let err = error_of(&llm("temperature = 2.5", "openai"));
    assert!(err.contains("`labeller.temperature`"), "{err}");
    assert!(err.contains("above 2"), "{err}");
    let err = error_of(&llm("temperature = 1.5", "anthropic"));
    assert!(err.contains("above 1"), "{err}");
    parse(&llm("temperature = 1.5", "openai")).unwrap();
    let err = error_of(&llm("batch_api = true", "anthropic"));
    assert!(err.contains("`labeller.batch_api`"), "{err}");
}

#[test]
fn an_invisible_character_in_a_model_name_is_refused_not_a_crash() {
    let text = format!(
        "{MINIMAL}\n[labeller]\nkind = \"llm\"\nprovider = \"openai\"\nmodel = \"gpt-4o\\u200B\"\n"
    );
    let err = error_of(&text);
    assert!(err.contains("`labeller.model`"), "{err}");
    assert!(err.contains("U+200B"), "{err}");
    // The client's own settings hold any string as data (this used to panic).
    let cfg = crate::labeller::llm::LlmLabellerConfig::new(
        crate::labeller::llm::Provider::Openai,
        "gpt\u{0}\u{200b}\"x",
    );
    assert_eq!(cfg.model, "gpt\u{0}\u{200b}\"x");
}

/// The README's block of every experiment key: each key it shows is accepted, every key the
/// schema accepts is shown, and a value not marked `e.g.` is the default.
#[test]
fn readme_documents_every_experiment_key_with_its_default() {
    use serde::de::DeserializeOwned;
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("Every key, with its default")
        .expect("README has the key reference");
    let block = readme[start..]
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a toml block follows");
    let documented: Experiment =
        toml::from_str(block).unwrap_or_else(|e| panic!("the README's key block is refused: {e}"));
    let table: toml::Table = toml::from_str(block).unwrap();

    /// The keys serde accepts for `T`, from its unknown-field error.
    fn accepted<T: DeserializeOwned>() -> Vec<String> {
        let err = toml::from_str::<T>("not_a_key_of_any_table = 1")
            .map(|_| ())
            .unwrap_err();
        let message = err.message().to_string();
        let (_, list) = message
            .split_once("expected one of ")
            .unwrap_or_else(|| panic!("{message}"));
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect()
    }
    let sub = |path: &[&str]| -> toml::Table {
        let mut t = table.clone();
        for p in path {
            t = match t.get(*p) {
                Some(toml::Value::Table(x)) => x.clone(),
                Some(toml::Value::Array(items)) => items[0].as_table().unwrap().clone(),
                _ => panic!("the README's block has no [{}]", path.join(".")),
            };
        }
        t
    };
    let tables: Vec<(&[&str], Vec<String>)> = vec![
        (&[], accepted::<Experiment>()),
        (&["data"], accepted::<DataConfig>()),
        (&["model"], accepted::<ModelConfig>()),
        (&["encoder"], accepted::<EncoderConfig>()),
        (&["lora"], accepted::<LoraConfig>()),
        (&["train"], accepted::<TrainConfig>()),
        (&["al"], accepted::<AlConfig>()),
        (&["labeller"], accepted::<LabellerConfig>()),
        (&["eval"], accepted::<EvalConfig>()),
        (&["eval", "judge"], accepted::<JudgeConfig>()),
        (&["sandbox"], accepted::<SandboxConfig>()),
        (&["strategy"], accepted::<StrategyConfig>()),
    ];
    for (path, keys) in &tables {
        let shown = sub(path);
        for key in keys {
            assert!(
                shown.contains_key(key),
                "README's key block lacks `{key}` in [{}]",
                path.join(".")
            );
        }
    }
    assert_eq!(documented.strategies.len(), 1);

    // Values not marked `e.g.` are the defaults.
    let mut defaults = toml::Table::try_from(Experiment::default()).unwrap();
    let judge = toml::Table::try_from(JudgeConfig::default()).unwrap();
    defaults
        .get_mut("eval")
        .and_then(toml::Value::as_table_mut)
        .unwrap()
        .insert("judge".into(), toml::Value::Table(judge));
    let mut header: Vec<String> = Vec::new();
    let mut checked = 0;
    for line in block.lines() {
        let code = line.split(" # ").next().unwrap().trim();
        if let Some(h) = code.strip_prefix('[') {
            header = h
                .trim_matches(['[', ']'])
                .split('.')
                .map(String::from)
                .collect();
            continue;
        }
        if code.is_empty() || line.contains("e.g.") {
            continue;
        }
        let parsed: toml::Table = toml::from_str(code).unwrap();
        let (key, value) = parsed.into_iter().next().unwrap();
        let mut want = &defaults;
        for h in &header {
            want = want[h.as_str()].as_table().unwrap();
        }
        assert_eq!(
            want.get(&key),
            Some(&value),
            "README shows [{}] {key} = {value} as the default",
            header.join(".")
        );
        checked += 1;
    }
    assert!(checked > 50, "{checked} defaults checked");
}
