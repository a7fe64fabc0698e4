//! What a valid file resolves to: the documented defaults, strategy names, the written config,
//! the shipped experiments, and the README's block of every key.
use super::*;
use std::path::PathBuf;

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
