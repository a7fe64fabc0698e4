//! Browse one cell: its curve, the examples each iteration selected (with the strategy's
//! scores and the labels used), and the test-set generations next to their references.
use crate::data::{Dataset, Example};
use crate::runner::persist::{load_state, read_generations, read_selected, CellPaths};
use crate::web::html::{cell_url, escape, link, page, table, text_cell, url_encode};
use crate::web::http::Reply;
use crate::web::results::{csv_table, fingerprint, CellProgress};
use crate::web::safety::safe_join;
use crate::web::App;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The cell folder a request names, or a 404 reply.
pub fn cell_dir(app: &App, exp: &str, strategy: &str, seed: &str) -> Result<PathBuf, Reply> {
    if crate::report::load::parse_seed_dir(seed).is_none() {
        return Err(Reply::error(404, "a cell is named seed-<n>"));
    }
    safe_join(&app.results, &[exp, strategy, seed]).map_err(|_| Reply::error(404, "no such cell"))
}

/// The dataset a cell ran on, loaded once per version of its config.toml.
pub fn cell_dataset(app: &App, cell_dir: &Path) -> Result<Arc<Dataset>> {
    let config = cell_dir.join("config.toml");
    let modified = std::fs::metadata(&config)
        .and_then(|m| m.modified())
        .with_context(|| format!("cannot read {}", config.display()))?;
    if let Some((t, d)) = app
        .datasets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&config)
    {
        if *t == modified {
            return Ok(Arc::clone(d));
        }
    }
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let exp = crate::config::parse_experiment(&text, &config)?;
    let dataset = Arc::new(crate::runner::experiment::load_experiment_data(
        &exp, &config,
    )?);
    app.datasets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(config, (modified, Arc::clone(&dataset)));
    Ok(dataset)
}

/// The first `max` characters of `text`, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

pub fn cell_page(
    app: &App,
    exp: &str,
    strategy: &str,
    seed: &str,
    complete: bool,
) -> Result<Reply> {
    // First, before the page's contents are read (see `fingerprint`).
    let live = fingerprint(app)?;
    let dir = match cell_dir(app, exp, strategy, seed) {
        Ok(d) => d,
        Err(reply) => return Ok(reply),
    };
    let paths = CellPaths { dir: dir.clone() };
    let seed_number = crate::report::load::parse_seed_dir(seed).unwrap_or_default();
    let progress = CellProgress::read(&dir, strategy, seed_number);
    let base = cell_url(exp, strategy, seed);
    let mut body = format!(
        "<p>{} · state: <span id=\"cell-state\">{}</span></p>",
        link(&format!("/exp/{}", url_encode(exp)), exp),
        escape(&progress.state_text())
    );
    if complete && progress.waiting.is_none() && !progress.finished {
        body.push_str(
            "<p class=\"notice\" id=\"batch-complete\">Batch complete: the run continues.</p>",
        );
    }
    if progress.waiting.is_some() {
        body.push_str(&format!(
            "<p class=\"notice\">A batch is waiting for labels: {}</p>",
            link(&format!("{base}/annotate"), "Annotate")
        ));
    }
    body.push_str("<h2>Curve</h2>");
    match std::fs::read_to_string(paths.curve()) {
        Ok(text) => {
            if let Ok(curve) = crate::runner::curve::Curve::parse(&text, &paths.curve()) {
                body.push_str("<div class=\"figures\">");
                for metric in &curve.metrics {
                    body.push_str(&crate::web::chart::curve_svg(&curve, metric));
                }
                body.push_str("</div>");
            }
            body.push_str(&csv_table("curve", &text));
        }
        Err(_) => body.push_str("<p>No finished iteration yet.</p>"),
    }
    let selected = read_selected(&paths)?;
    let state = load_state(&paths)?;
    let given: HashMap<u64, String> = state
        .as_ref()
        .map(|s| s.labels.iter().map(|l| (l.id, l.output.clone())).collect())
        .unwrap_or_default();
    let dataset = if selected.is_empty() {
        None
    } else {
        match cell_dataset(app, &dir) {
            Ok(d) => Some(d),
            Err(e) => {
                body.push_str(&format!(
                    "<p class=\"error\">cannot load the dataset to show inputs: {}</p>",
                    escape(&format!("{e:#}"))
                ));
                None
            }
        }
    };
    let by_id: HashMap<u64, &Example> = dataset
        .as_deref()
        .map(|d| d.train.iter().map(|e| (e.id, e)).collect())
        .unwrap_or_default();
    body.push_str("<h2>Selected examples</h2>");
    for line in &selected {
        let gen_link = if paths.generations(line.iteration).exists() {
            format!(
                " · {}",
                link(
                    &format!("{base}/gen/{}", line.iteration),
                    "test generations"
                )
            )
        } else {
            String::new()
        };
        body.push_str(&format!("<h3>Iteration {}{gen_link}</h3>", line.iteration));
        let rows: Vec<Vec<String>> = line
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let score = line
                    .scores
                    .as_ref()
                    .and_then(|s| s.get(i).copied().flatten())
                    .map_or("–".to_string(), |v| format!("{v:.4}"));
                let example = by_id.get(id);
                // Unknown (the dataset did not load) stays blank; an empty text is marked.
                let input = example.map_or(String::new(), |e| text_cell(&shorten(&e.input, 400)));
                let label = given
                    .get(id)
                    .cloned()
                    .or_else(|| example.map(|e| e.output.clone()))
                    .map_or(String::new(), |l| text_cell(&l));
                vec![id.to_string(), score, input, label]
            })
            .collect();
        body.push_str(&table(
            &format!("selected-{}", line.iteration),
            &["id", "score", "input", "label"],
            &rows,
        ));
    }
    if selected.is_empty() {
        body.push_str("<p>Nothing selected yet.</p>");
    }
    Ok(Reply::html(page(
        &format!("{strategy} · {seed}"),
        &body,
        Some(&live),
    )))
}

pub fn generations_page(
    app: &App,
    exp: &str,
    strategy: &str,
    seed: &str,
    iteration: &str,
) -> Result<Reply> {
    let dir = match cell_dir(app, exp, strategy, seed) {
        Ok(d) => d,
        Err(reply) => return Ok(reply),
    };
    let Ok(t) = iteration.parse::<usize>() else {
        return Ok(Reply::error(404, "an iteration is a number"));
    };
    let paths = CellPaths { dir: dir.clone() };
    if !paths.generations(t).exists() {
        return Ok(Reply::error(404, "no generations for this iteration"));
    }
    let records = read_generations(&paths, t)?;
    let dataset = cell_dataset(app, &dir).ok();
    let inputs: HashMap<u64, &str> = dataset
        .as_deref()
        .map(|d| d.test.iter().map(|e| (e.id, e.input.as_str())).collect())
        .unwrap_or_default();
    let metric_names: Vec<String> = records
        .first()
        .map(|r| r.metrics.keys().cloned().collect())
        .unwrap_or_default();
    let mut header = vec!["id", "input", "prediction", "references"];
    header.extend(metric_names.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let mut row = vec![
                r.id.to_string(),
                inputs
                    .get(&r.id)
                    .map_or(String::new(), |input| text_cell(&shorten(input, 300))),
                text_cell(&r.prediction),
                r.references
                    .iter()
                    .map(|s| text_cell(s))
                    .collect::<Vec<_>>()
                    .join("<hr>"),
            ];
            row.extend(metric_names.iter().map(|m| match r.metrics.get(m) {
                Some(serde_json::Value::Number(n)) => {
                    n.as_f64().map_or(String::new(), |v| format!("{v:.4}"))
                }
                _ => "–".to_string(),
            }));
            row
        })
        .collect();
    let back = cell_url(exp, strategy, seed);
    let body = format!(
        "<p>{}</p>{}",
        link(&back, "back to the cell"),
        table("generations", &header, &rows)
    );
    Ok(Reply::html(page(
        &format!("{strategy} · {seed} · iteration {t}: test generations"),
        &body,
        None,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_on_characters() {
        assert_eq!(shorten("üüü", 2), "üü…");
        assert_eq!(shorten("ab", 2), "ab");
    }
}
