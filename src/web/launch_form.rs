//! The launch form as a page: its fields with their values and problems, the dataset choices
//! (shipped and uploaded), the upload control and the size check the page script makes.
use crate::web::html::{escape, page};
use crate::web::http::Reply;
use crate::web::launch::{FieldErrors, SHIPPED};
use crate::web::safety::{megabytes, MAX_FORM_BYTES, MAX_UPLOAD_BYTES};
use crate::web::App;
use anyhow::Result;
use std::collections::HashMap;
use std::path::Path;

const MODELS: [&str; 4] = [
    "smollm2-135m-instruct",
    "tiny-random-llama",
    "tiny-random-qwen3",
    "tiny-random-gemma3",
];

/// Form fields, their labels and defaults, in display order.
const FIELDS: [(&str, &str, &str); 17] = [
    ("name", "Experiment name", ""),
    ("dataset", "Dataset", "data/aeslc"),
    ("input_field", "Input field", ""),
    ("output_field", "Output field", ""),
    ("pool_size", "Pool size", "200"),
    ("test_size", "Test size", "20"),
    ("model", "Model", "smollm2-135m-instruct"),
    ("strategy", "Strategy", "random"),
    ("seeds", "Seeds", "0"),
    ("init_size", "Initial set (labels)", "10"),
    ("query_size", "Query size", "10"),
    (
        "iterations",
        "Iterations (queries after the initial set)",
        "3",
    ),
    ("epochs", "Training epochs", ""),
    ("labeller", "Labeller", "golden"),
    ("llm_model", "LLM model (llm labeller)", ""),
    ("money_budget", "Money budget ($)", ""),
    ("label_budget", "Label budget", ""),
];

fn select(id: &str, options: &[String], current: &str) -> String {
    let mut out = format!("<select id=\"{0}\" name=\"{0}\">", escape(id));
    for o in options {
        let sel = if o == current { " selected" } else { "" };
        out.push_str(&format!(
            "<option value=\"{0}\"{sel}>{0}</option>",
            escape(o)
        ));
    }
    out.push_str("</select>");
    out
}

fn strategy_names() -> Vec<String> {
    crate::strategy::registry::list(Path::new("strategies"))
        .map(|l| {
            l.into_iter()
                .filter(|s| s.problem.is_none())
                .map(|s| s.name)
                .collect()
        })
        .unwrap_or_else(|_| vec!["random".to_string()])
}

pub fn form_html(app: &App, form: &HashMap<String, String>, errors: &FieldErrors) -> String {
    let value =
        |k: &str, default: &str| form.get(k).cloned().unwrap_or_else(|| default.to_string());
    let mut datasets: Vec<String> = SHIPPED.iter().map(|(p, ..)| p.to_string()).collect();
    datasets.extend(
        crate::web::upload::uploaded_files(&app.results)
            .iter()
            .map(|p| p.display().to_string()),
    );
    let mut body = format!(
        "<form id=\"launch\" method=\"post\" action=\"/launch\" data-max-bytes=\"{MAX_FORM_BYTES}\">"
    );
    for (key, label, default) in FIELDS {
        let v = value(key, default);
        let input = match key {
            "dataset" => select(key, &datasets, &v),
            "strategy" => select(key, &strategy_names(), &v),
            "labeller" => select(key, &["golden".into(), "llm".into(), "human".into()], &v),
            "model" => {
                let opts: String = MODELS
                    .iter()
                    .map(|m| format!("<option value=\"{m}\">"))
                    .collect();
                format!("<input type=\"text\" id=\"model\" name=\"model\" list=\"models\" value=\"{}\"><datalist id=\"models\">{opts}</datalist>", escape(&v))
            }
            _ => format!(
                "<input type=\"text\" id=\"{key}\" name=\"{key}\" value=\"{}\">",
                escape(&v)
            ),
        };
        body.push_str(&format!(
            "<div class=\"field\"><label for=\"{key}\">{}</label>{input}",
            escape(label)
        ));
        for e in errors.get(key).into_iter().flatten() {
            body.push_str(&format!(
                "<div class=\"error\" id=\"error-{key}\">{}</div>",
                escape(e)
            ));
        }
        body.push_str("</div>");
        if key == "name" {
            body.push_str(&start_over_box(form, errors));
        }
        if key == "output_field" {
            // The script refuses a file over the limit before sending it, with the same
            // advice the server's refusal gives.
            body.push_str(&format!(
                "<div class=\"field\"><label for=\"upload-file\">Or upload CSV/JSONL</label>\
                 <input type=\"file\" id=\"upload-file\" accept=\".csv,.jsonl,.json\" \
                 data-max-bytes=\"{MAX_UPLOAD_BYTES}\" data-too-large=\"{advice}\"> \
                 <button type=\"button\" id=\"upload-button\">Upload</button> \
                 <span id=\"upload-message\"></span> (name its input and output fields above \
                 first; at most {mb})</div>",
                advice = escape(&crate::web::upload::too_large_message(MAX_UPLOAD_BYTES)),
                mb = megabytes(MAX_UPLOAD_BYTES),
            ));
        }
    }
    body.push_str(&format!(
        "<div class=\"field\"><label for=\"advanced\">Advanced TOML</label>\
         <p>Any experiment keys, merged over the fields above, e.g. <code>[al]\nrequired_performance = {{ rouge1 = 0.3 }}</code></p>\
         <textarea id=\"advanced\" name=\"advanced\" rows=\"6\">\n{}</textarea>",
        escape(&value("advanced", ""))
    ));
    for e in errors.get("advanced").into_iter().flatten() {
        body.push_str(&format!(
            "<div class=\"error\" id=\"error-advanced\">{}</div>",
            escape(e)
        ));
    }
    body.push_str(
        "</div><p class=\"notice too-large\" hidden data-message=\"Not launched: this form is \
         {size} as sent, over the {limit} the server reads from one form. Everything you \
         entered is still here: shorten the Advanced TOML box, or write the experiment to a \
         file and run lab run FILE from the command line.\"></p>\
         <p><button id=\"launch-button\" type=\"submit\">Launch</button></p></form>",
    );
    body
}

/// The start-over choice, offered once a launch was refused for results made with other
/// settings (its problems list them), and kept while the form comes back ticked.
fn start_over_box(form: &HashMap<String, String>, errors: &FieldErrors) -> String {
    let ticked = form.get("start_over").is_some_and(|v| !v.is_empty());
    let problems = errors.get("start_over").cloned().unwrap_or_default();
    if problems.is_empty() && !ticked {
        return String::new();
    }
    let mut out = String::from("<div class=\"field\" id=\"start-over\">");
    if !problems.is_empty() {
        out.push_str("<ul class=\"error\" id=\"error-start_over\">");
        for p in &problems {
            out.push_str(&format!("<li>{}</li>", escape(p)));
        }
        out.push_str("</ul>");
    }
    let deletes = errors
        .get(crate::web::relaunch::START_OVER_DELETES)
        .and_then(|d| d.first())
        .map_or(String::new(), |d| format!(" ({})", escape(d)));
    out.push_str(&format!(
        "<label><input type=\"checkbox\" id=\"start_over\" name=\"start_over\" \
         value=\"yes\"{}> Start over: delete this experiment's earlier results{deletes} and \
         launch with the settings below</label></div>",
        if ticked { " checked" } else { "" }
    ));
    out
}

pub fn form_page(app: &App) -> Result<Reply> {
    Ok(Reply::html(page(
        "Launch an experiment",
        &form_html(app, &HashMap::new(), &FieldErrors::new()),
        None,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::launch::tests::form;

    #[test]
    fn rendered_form_escapes_values_and_shows_errors() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::new(dir.path(), dir.path(), None).unwrap();
        let mut errors = FieldErrors::new();
        errors.insert("name", vec!["bad <name>".into()]);
        let html = form_html(&app, &form(&[("name", "\"><script>x</script>")]), &errors);
        assert!(!html.contains("<script>x"));
        assert!(html.contains("value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
        assert!(html.contains("<div class=\"error\" id=\"error-name\">bad &lt;name&gt;</div>"));
        // HTML drops one newline after <textarea>: the one written there keeps the text's own.
        let html = form_html(&app, &form(&[("advanced", "\n[al]\n")]), &errors);
        assert!(html.contains("rows=\"6\">\n\n[al]\n</textarea>"), "{html}");
    }
}
