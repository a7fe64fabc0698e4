//! `[data]`, `[model]` and `[encoder]`: where the examples and the models come from.
use super::Problems;
use crate::config::Experiment;

pub(super) fn check_data(exp: &Experiment, p: &mut Problems) {
    let d = &exp.data;
    if d.path.as_os_str().is_empty() {
        p.add(
            "data.path",
            "is required: a dataset folder, a data file or a Hugging Face hub snapshot folder",
        );
    }
    for (key, v) in [
        ("data.input_field", &d.input_field),
        ("data.output_field", &d.output_field),
    ] {
        if v.trim().is_empty() {
            p.add(key, "must name a field of the data rows");
        }
    }
    if d.reference_fields.iter().any(|f| f.trim().is_empty()) {
        p.add("data.reference_fields", "contains an empty field name");
    }
    if let Some(r) = d.test_ratio {
        p.fraction("data.test_ratio", r, false, false);
        if d.test.is_some() {
            p.add(
                "data.test_ratio",
                "set either data.test (a file) or data.test_ratio (split from train), not both",
            );
        }
    }
    if let Some(r) = d.dev_ratio {
        p.fraction("data.dev_ratio", r, false, false);
        if d.dev.is_some() {
            p.add(
                "data.dev_ratio",
                "set either data.dev (a file) or data.dev_ratio (split from train), not both",
            );
        }
    }
    // Their sum matters only when each is a fraction on its own (one out of range is
    // reported above, under its own key).
    let in_range = |r: Option<f64>| r.is_none_or(|r| r > 0.0 && r < 1.0);
    if in_range(d.test_ratio)
        && in_range(d.dev_ratio)
        && d.test_ratio.unwrap_or(0.0) + d.dev_ratio.unwrap_or(0.0) >= 1.0
    {
        p.add(
            "data.dev_ratio",
            "data.test_ratio + data.dev_ratio must leave some rows for training (sum < 1)",
        );
    }
    if let Some(n) = d.test_size {
        p.positive("data.test_size", n);
    }
    if let Some(n) = d.pool_size {
        p.positive("data.pool_size", n);
    }
    if let Some(n) = d.max_input_chars {
        p.positive("data.max_input_chars", n);
    }
    if !d.input_template.contains("{input}") {
        p.add(
            "data.input_template",
            "must contain `{input}` where the example's input goes",
        );
    }
    // Only `{input}` is filled in (braces are not escaped: `{{` stays `{{`); any other
    // `{name}` would reach the model as written.
    let placeholder = regex::Regex::new(r"\{([A-Za-z_][A-Za-z0-9_]*)\}").expect("a valid regex");
    let mut others: Vec<&str> = placeholder
        .captures_iter(&d.input_template)
        .filter_map(|c| c.get(1).map(|m| m.as_str()))
        .filter(|name| *name != "input")
        .collect();
    others.dedup();
    if !others.is_empty() {
        p.add(
            "data.input_template",
            format!(
                "has placeholder(s) {} but only `{{input}}` is filled in; the others would be sent to the model as written: remove them or write the text itself",
                others
                    .iter()
                    .map(|n| format!("`{{{n}}}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
}

pub(super) fn check_model(exp: &Experiment, p: &mut Problems) {
    let m = &exp.model;
    if m.path.is_some() && m.hub_id.is_some() {
        p.add(
            "model.path",
            "set either model.path (local) or model.hub_id (Hugging Face hub), not both",
        );
    }
    if m.path.is_none() && m.hub_id.is_none() && m.name.trim().is_empty() {
        p.add(
            "model.name",
            "is empty: name a cached model, or set model.path or model.hub_id",
        );
    }
    if m.gguf_file.is_some() && m.hub_id.is_none() && m.path.is_none() {
        p.add(
            "model.gguf_file",
            "needs model.hub_id or model.path (a folder) to find the file in",
        );
    }
    p.positive("model.max_input_tokens", m.max_input_tokens);
    p.positive("model.max_new_tokens", m.max_new_tokens);
    p.positive("model.batch_size", m.batch_size);
    let e = &exp.encoder;
    if e.path.is_some() && e.hub_id.is_some() {
        p.add(
            "encoder.path",
            "set either encoder.path or encoder.hub_id, not both",
        );
    }
    p.positive("encoder.batch_size", e.batch_size);
}
