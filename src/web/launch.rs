//! The launch form: build an experiment file from a few fields (plus an advanced TOML box),
//! validate it the way `lab check` does, show problems next to their fields, then write
//! `<experiments>/web-<name>.toml` and start `lab run` on it in the background.
use crate::web::html::{escape, page};
use crate::web::http::Reply;
use crate::web::launch_form::form_html;
use crate::web::safety::check_name;
use crate::web::App;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The shipped datasets: folder, input field, output field, reference fields.
pub(crate) const SHIPPED: [(&str, &str, &str, &[&str]); 2] = [
    (
        "data/aeslc",
        "email",
        "subject",
        &["subject", "annotations"],
    ),
    ("data/gsm8k", "question", "answer", &[]),
];

/// The form field a validation key belongs to; other keys go to the advanced box.
fn field_of_key(key: &str) -> &'static str {
    let map: [(&str, &'static str); 16] = [
        ("name", "name"),
        ("data.path", "dataset"),
        ("data.input_field", "input_field"),
        ("data.output_field", "output_field"),
        ("data.pool_size", "pool_size"),
        ("data.test_size", "test_size"),
        ("model", "model"),
        ("strategy", "strategy"),
        ("seeds", "seeds"),
        ("al.init_size", "init_size"),
        ("al.query_size", "query_size"),
        ("al.iterations", "iterations"),
        ("train.epochs", "epochs"),
        ("al.money_budget", "money_budget"),
        ("al.label_budget", "label_budget"),
        ("labeller", "labeller"),
    ];
    map.iter()
        .find(|(prefix, _)| {
            key == *prefix
                || key.starts_with(&format!("{prefix}."))
                || key.starts_with(&format!("{prefix}["))
        })
        .map_or("advanced", |(_, f)| f)
}

/// Problems per form field.
pub type FieldErrors = BTreeMap<&'static str, Vec<String>>;

/// Split validation output (one "`key` in file:line: message" per line) by form field.
pub fn errors_by_field(message: &str) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for line in message.lines().filter(|l| !l.trim().is_empty()) {
        let field = line
            .strip_prefix('`')
            .and_then(|rest| rest.split_once('`'))
            .map_or("advanced", |(key, _)| field_of_key(key));
        errors.entry(field).or_default().push(line.to_string());
    }
    errors
}

fn number(
    form: &HashMap<String, String>,
    key: &'static str,
    errors: &mut FieldErrors,
) -> Option<toml::Value> {
    let text = form.get(key).map(|s| s.trim()).unwrap_or("");
    if text.is_empty() {
        return None;
    }
    if let Ok(i) = text.parse::<i64>() {
        return Some(toml::Value::Integer(i));
    }
    if let Ok(f) = text.parse::<f64>() {
        return Some(toml::Value::Float(f));
    }
    errors
        .entry(key)
        .or_default()
        .push(format!("{text:?} is not a number"));
    None
}

/// Overlay `extra` onto `base`, merging tables key by key (the advanced box wins).
fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (k, v) in extra {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The experiment TOML the form describes, or the problems found while building it.
pub fn build_toml(
    form: &HashMap<String, String>,
    results: &Path,
) -> std::result::Result<String, FieldErrors> {
    use toml::Value;
    let mut errors = FieldErrors::new();
    let get = |k: &str| {
        form.get(k)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let name = get("name");
    if let Err(e) = check_name(&name, "experiment name") {
        errors.entry("name").or_default().push(e.to_string());
    }
    let advanced = form
        .get("advanced")
        .map(String::as_str)
        .unwrap_or("")
        .parse::<toml::Table>();
    // A data path in the advanced box (a file on this machine, too large to upload) replaces
    // the dataset chosen above, and so do its defaults: a shipped dataset's fields, email
    // template and prompt are not that file's.
    let dataset = advanced
        .as_ref()
        .ok()
        .and_then(|t| t.get("data")?.get("path")?.as_str().map(str::to_string))
        .unwrap_or_else(|| get("dataset"));
    let shipped = SHIPPED.iter().find(|(p, ..)| *p == dataset);
    let (default_in, default_out, refs) =
        shipped.map_or(("input", "output", &[][..]), |(_, i, o, r)| (*i, *o, *r));
    let or_default = |v: String, d: &str| if v.is_empty() { d.to_string() } else { v };
    let mut data = toml::Table::new();
    data.insert("path".into(), Value::String(dataset.clone()));
    data.insert(
        "input_field".into(),
        Value::String(or_default(get("input_field"), default_in)),
    );
    data.insert(
        "output_field".into(),
        Value::String(or_default(get("output_field"), default_out)),
    );
    if !refs.is_empty() && get("input_field").is_empty() {
        data.insert(
            "reference_fields".into(),
            Value::Array(refs.iter().map(|r| Value::String(r.to_string())).collect()),
        );
    }
    // A single file (an upload) has no test split to read: one is cut from it. A folder may
    // have its own, which a ratio would be refused beside.
    if shipped.is_none() && Path::new(&dataset).is_file() {
        data.insert("test_ratio".into(), Value::Float(0.2));
    }
    if dataset == "data/aeslc" {
        data.insert(
            "input_template".into(),
            Value::String("Write a subject line for this email:\n{input}".into()),
        );
        data.insert(
            "system_prompt".into(),
            Value::String("You write short, specific subject lines for emails.".into()),
        );
    }
    for key in ["pool_size", "test_size"] {
        if let Some(v) = number(form, key, &mut errors) {
            data.insert(key.into(), v);
        }
    }
    let mut root = toml::Table::new();
    root.insert("name".into(), Value::String(name));
    root.insert(
        "results_dir".into(),
        Value::String(results.display().to_string()),
    );
    let seeds: std::result::Result<Vec<Value>, _> = get("seeds")
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<i64>().map(Value::Integer))
        .collect();
    match seeds {
        Ok(s) if !s.is_empty() => {
            root.insert("seeds".into(), Value::Array(s));
        }
        _ => errors
            .entry("seeds")
            .or_default()
            .push("write seeds as numbers separated by commas, e.g. 0, 1".into()),
    }
    root.insert("data".into(), Value::Table(data));
    let mut model = toml::Table::new();
    model.insert("name".into(), Value::String(get("model")));
    root.insert("model".into(), Value::Table(model));
    let mut al = toml::Table::new();
    for key in [
        "init_size",
        "query_size",
        "iterations",
        "money_budget",
        "label_budget",
    ] {
        if let Some(v) = number(form, key, &mut errors) {
            al.insert(key.into(), v);
        }
    }
    root.insert("al".into(), Value::Table(al));
    if let Some(v) = number(form, "epochs", &mut errors) {
        let mut train = toml::Table::new();
        train.insert("epochs".into(), v);
        root.insert("train".into(), Value::Table(train));
    }
    let mut labeller = toml::Table::new();
    labeller.insert("kind".into(), Value::String(get("labeller")));
    if get("labeller") == "llm" && !get("llm_model").is_empty() {
        labeller.insert("provider".into(), Value::String("openai".into()));
        labeller.insert("model".into(), Value::String(get("llm_model")));
    }
    root.insert("labeller".into(), Value::Table(labeller));
    let mut strategy = toml::Table::new();
    strategy.insert("name".into(), Value::String(get("strategy")));
    root.insert(
        "strategy".into(),
        Value::Array(vec![Value::Table(strategy)]),
    );
    match advanced {
        Ok(extra) => merge(&mut root, extra),
        Err(e) => errors
            .entry("advanced")
            .or_default()
            .push(format!("advanced TOML: {e}")),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    toml::to_string(&root).map_err(|e| {
        let mut errors = FieldErrors::new();
        errors.insert(
            "advanced",
            vec![format!("cannot write the experiment as TOML: {e}")],
        );
        errors
    })
}

/// Validate the experiment text like `lab check`, then load its data and find its strategy.
pub fn check_experiment(
    text: &str,
    file: &Path,
) -> std::result::Result<crate::config::Experiment, FieldErrors> {
    let exp = crate::config::parse_experiment(text, file)
        .map_err(|e| errors_by_field(&format!("{e:#}")))?;
    crate::config::validate_with(&exp, crate::metrics::names())
        .map_err(|e| errors_by_field(&format!("{e:#}")))?;
    let mut errors = FieldErrors::new();
    if let Err(e) = crate::runner::experiment::load_experiment_data(&exp, file) {
        errors.entry("dataset").or_default().push(format!("{e:#}"));
    }
    let scripts =
        crate::strategy::experiment_scripts::check_experiment_scripts(&exp, file, Path::new("."));
    if let Err(e) = scripts {
        errors.entry("strategy").or_default().push(format!("{e:#}"));
    }
    for (field, problem) in crate::web::launch_keys::missing_api_keys(&exp) {
        errors.entry(field).or_default().push(problem);
    }
    if errors.is_empty() {
        Ok(exp)
    } else {
        Err(errors)
    }
}

/// The checks name the experiment file, which is written only once they pass: a problem names
/// the experiment shown under the form instead, by the line numbers shown there.
fn about_shown_text(errors: FieldErrors, file: &Path) -> FieldErrors {
    let named = file.display().to_string();
    errors
        .into_iter()
        .map(|(field, messages)| {
            let messages = messages
                .into_iter()
                .map(|m| {
                    m.replace(&format!("in {named} line"), "in the experiment below, line")
                        .replace(&named, "the experiment below")
                })
                .collect();
            (field, messages)
        })
        .collect()
}

/// `text` with its line numbers, as the problems found in it name them.
fn numbered(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, line)| format!("{:>3}  {line}\n", i + 1))
        .collect()
}

pub fn submit(app: &App, form: &HashMap<String, String>) -> Result<Reply> {
    let invalid = |errors: FieldErrors, text: Option<&str>| {
        let shown = text.map_or(String::new(), |t| {
            format!(
                "<details id=\"experiment-text\" open><summary>The experiment this form \
                 describes (not written: it has problems)</summary><pre>{}</pre></details>",
                escape(&numbered(t))
            )
        });
        let body = format!(
            "<p class=\"error\" id=\"form-problems\">The experiment has problems; see the fields below.</p>{}{shown}",
            form_html(app, form, &errors)
        );
        Ok(Reply::html(page("Launch an experiment", &body, None)).status(422))
    };
    let text = match build_toml(form, &app.results) {
        Ok(t) => t,
        Err(errors) => return invalid(errors, None),
    };
    let name = form
        .get("name")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let file = app.experiments.join(format!("web-{name}.toml"));
    let exp = match check_experiment(&text, &file) {
        Ok(exp) => exp,
        Err(errors) => return invalid(about_shown_text(errors, &file), Some(&text)),
    };
    let running_already = || {
        let mut errors = FieldErrors::new();
        errors.insert(
            "name",
            vec![format!("experiment `{}` is running already", exp.name)],
        );
        invalid(errors, None)
    };
    // A run of it on disk (also one started outside this server) refuses before the file is
    // written; `start_run` checks its own runs again under its lock, against a double click.
    if crate::web::run_process::run_state(app, &exp.name).is_some_and(|s| s.starts_with("running"))
    {
        return running_already();
    }
    if let Some(errors) = crate::web::relaunch::refuse_mixing(app, form, &exp, &file) {
        return invalid(errors, None).map(|r| r.status(409));
    }
    std::fs::create_dir_all(&app.experiments)
        .with_context(|| format!("cannot create {}", app.experiments.display()))?;
    let header = "# Written by the launch form of `lab serve`.\n";
    crate::util::atomic_write_string(&file, &format!("{header}{text}"))?;
    if !crate::web::run_process::start_run(app, &exp.name, &file)? {
        // Another request (a double click on Launch) started it since the check above.
        return running_already();
    }
    Ok(Reply::redirect(&format!(
        "/exp/{}",
        crate::web::html::url_encode(&exp.name)
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(crate) fn valid_form() -> HashMap<String, String> {
        form(&[
            ("name", "t1"),
            ("dataset", "data/aeslc"),
            ("pool_size", "20"),
            ("test_size", "4"),
            ("model", "tiny-random-llama"),
            ("strategy", "random"),
            ("seeds", "0, 1"),
            ("init_size", "2"),
            ("query_size", "2"),
            ("iterations", "1"),
            ("labeller", "human"),
            ("epochs", "1"),
            ("advanced", "[eval]\nmetrics = [\"rouge1\"]\n"),
        ])
    }

    #[test]
    fn form_becomes_a_valid_experiment_with_advanced_keys_merged() {
        let text = build_toml(&valid_form(), Path::new("/tmp/results")).unwrap();
        let exp = check_experiment(&text, Path::new("experiments/web-t1.toml")).unwrap();
        assert_eq!(exp.name, "t1");
        assert_eq!(exp.seeds, [0, 1]);
        assert_eq!(exp.data.input_field, "email");
        assert_eq!(exp.data.pool_size, Some(20));
        assert_eq!(exp.labeller.kind, crate::config::LabellerKind::Human);
        assert_eq!(exp.eval.metrics, ["rouge1"]);
        assert_eq!(exp.train.epochs, 1);
        assert_eq!(exp.results_dir, std::path::PathBuf::from("/tmp/results"));
    }

    /// A file too large to upload is named by its path in the advanced box (the 413 page says
    /// so). With the dataset select left at AESLC, the run used to get AESLC's email template,
    /// system prompt and reference fields over that file's rows, and no test split from it.
    #[test]
    fn a_data_path_in_the_advanced_box_replaces_the_chosen_dataset_and_its_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.csv");
        let rows: String = (0..40).map(|i| format!("q{i},a{i}\n")).collect();
        std::fs::write(&file, format!("question,answer\n{rows}")).unwrap();
        let mut f = valid_form();
        f.insert("input_field".into(), "question".into());
        f.insert("output_field".into(), "answer".into());
        f.insert(
            "advanced".into(),
            format!("[data]\npath = {:?}\n", file.display().to_string()),
        );
        assert_eq!(f["dataset"], "data/aeslc");
        let text = build_toml(&f, Path::new("/tmp/results")).unwrap();
        let exp = check_experiment(&text, Path::new("experiments/web-t1.toml"))
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        assert_eq!(exp.data.path, file);
        assert_eq!(exp.data.test_ratio, Some(0.2), "{text}");
        assert!(
            !text.contains("subject line") && !text.contains("reference_fields"),
            "AESLC's defaults over another file: {text}"
        );
        // A folder with its own test split gets no ratio, which it would refuse.
        let folder = dir.path().join("split");
        std::fs::create_dir_all(&folder).unwrap();
        for split in ["train", "test"] {
            std::fs::write(
                folder.join(format!("{split}.csv")),
                format!("question,answer\n{rows}"),
            )
            .unwrap();
        }
        f.insert(
            "advanced".into(),
            format!("[data]\npath = {:?}\n", folder.display().to_string()),
        );
        let text = build_toml(&f, Path::new("/tmp/results")).unwrap();
        let exp = check_experiment(&text, Path::new("experiments/web-t1.toml"))
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        assert_eq!(exp.data.test_ratio, None, "{text}");
    }

    /// The problems named `experiments/web-<name>.toml` and its line numbers, a file that is
    /// not written while the experiment has problems: nothing to open and look at.
    #[test]
    fn problems_name_lines_of_the_experiment_shown_under_the_form() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::new(
            &dir.path().join("results"),
            &dir.path().join("experiments"),
            None,
        )
        .unwrap();
        let mut f = valid_form();
        f.insert("query_size".into(), "0".into());
        let reply = submit(&app, &f).unwrap();
        assert_eq!(reply.status, 422);
        let body = String::from_utf8(reply.body).unwrap();
        assert!(!body.contains("web-t1.toml"), "{body}");
        let line = body
            .split("`al.query_size` in the experiment below, line ")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .unwrap_or_else(|| panic!("no line named: {body}"));
        let shown = body
            .split("<pre>")
            .nth(1)
            .and_then(|rest| rest.split("</pre>").next())
            .unwrap_or_else(|| panic!("no experiment shown: {body}"));
        assert!(
            shown.contains(&format!("{line:>3}  query_size = 0\n")),
            "line {line} of {shown}"
        );
        assert!(!app.experiments.join("web-t1.toml").exists());
    }

    #[test]
    fn problems_land_next_to_their_fields() {
        let mut f = valid_form();
        f.insert("query_size".into(), "0".into());
        f.insert("advanced".into(), "[eval]\nmetrics = [\"rouge9\"]\n".into());
        let text = build_toml(&f, Path::new("/tmp/r")).unwrap();
        let errors = check_experiment(&text, Path::new("web-t1.toml")).unwrap_err();
        assert!(
            errors["query_size"][0].contains("al.query_size"),
            "{errors:?}"
        );
        assert!(errors["advanced"][0].contains("rouge9"), "{errors:?}");

        let mut f = valid_form();
        f.insert("name".into(), "../evil".into());
        f.insert("pool_size".into(), "many".into());
        f.insert("advanced".into(), "[al\n".into());
        let errors = build_toml(&f, Path::new("/tmp/r")).unwrap_err();
        assert!(errors.contains_key("name") && errors.contains_key("pool_size"));
        assert!(errors["advanced"][0].starts_with("advanced TOML"));

        let mut f = valid_form();
        f.insert("input_field".into(), "body".into());
        let text = build_toml(&f, Path::new("/tmp/r")).unwrap();
        let errors = check_experiment(&text, Path::new("web-t1.toml")).unwrap_err();
        assert!(errors["dataset"][0].contains("body"), "{errors:?}");
    }
}
