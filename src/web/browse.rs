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

/// What the pages take from a cell's config.toml.
pub struct CellData {
    pub dataset: Dataset,
    /// The golden labeller: a selected example's label is its output in the data. Any other
    /// labeller's labels are in state.json, and the data's output is a reference it never saw.
    pub golden: bool,
}

/// The data a cell ran on and how it was labeled, loaded once per version of its config.toml.
pub fn cell_data(app: &App, cell_dir: &Path) -> Result<Arc<CellData>> {
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
    let data = Arc::new(CellData {
        dataset: crate::runner::experiment::load_experiment_data(&exp, &config)?,
        golden: exp.labeller.kind == crate::config::LabellerKind::Golden,
    });
    app.datasets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(config, (modified, Arc::clone(&data)));
    Ok(data)
}

/// The label column of a selected example. An id a non-golden cell's state.json does not
/// hold is not labeled yet as far as the results go (a run stopped between writing
/// selected.jsonl and state.json leaves such ids): its output in the data is a reference that
/// a person labelling by hand must not see, so it is never shown in its place.
fn label_cell(recorded: Option<&String>, example: Option<&Example>, golden: bool) -> String {
    match (recorded, example) {
        (Some(label), _) => text_cell(label),
        (None, Some(e)) if golden => text_cell(&e.output),
        (None, _) if !golden => "<div class=\"cell-text empty\">(not labeled yet)</div>".into(),
        // The data did not load: unknown stays blank.
        (None, _) => String::new(),
    }
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
        "<p>{} · state: <span id=\"cell-state\">{}</span> · <span id=\"cell-progress\">{}</span></p>",
        link(&format!("/exp/{}", url_encode(exp)), exp),
        escape(&crate::web::within_results(
            &progress.state_text(),
            &app.results
        )),
        escape(&progress.progress_text())
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
    // A file that does not read (damaged, hand-edited, from another version) is named where
    // its part of the page would be; the rest of the cell still shows.
    let unreadable = |e: anyhow::Error| {
        format!(
            "<p class=\"error\">{}</p>",
            escape(&crate::web::within_results(&format!("{e:#}"), &app.results))
        )
    };
    let selected = match read_selected(&paths) {
        Ok(selected) => Ok(selected),
        Err(e) => Err(unreadable(e)),
    };
    // The labels given, or None when state.json does not read: then they are unknown.
    let given: Option<HashMap<u64, String>> = match load_state(&paths) {
        Ok(state) => Some(
            state
                .map(|s| s.labels.iter().map(|l| (l.id, l.output.clone())).collect())
                .unwrap_or_default(),
        ),
        Err(_) => None,
    };
    let selected = match selected {
        Ok(selected) => selected,
        Err(problem) => {
            body.push_str("<h2>Selected examples</h2>");
            body.push_str(&problem);
            return Ok(Reply::html(page(
                &format!("{strategy} · {seed}"),
                &body,
                Some(&live),
            )));
        }
    };
    let data = if selected.is_empty() {
        None
    } else {
        match cell_data(app, &dir) {
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
    let golden = data.as_ref().is_some_and(|d| d.golden);
    let by_id: HashMap<u64, &Example> = data
        .as_deref()
        .map(|d| d.dataset.train.iter().map(|e| (e.id, e)).collect())
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
        // Iteration 0 trains on the initial set; the launch form's iterations come after it.
        let what = if line.iteration == 0 {
            " (initial set)"
        } else {
            ""
        };
        body.push_str(&format!(
            "<h3>Iteration {}{what}{gen_link}</h3>",
            line.iteration
        ));
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
                let example = by_id.get(id).copied();
                // Unknown (the dataset did not load) stays blank; an empty text is marked.
                let input = example.map_or(String::new(), |e| text_cell(&shorten(&e.input, 400)));
                let label = match &given {
                    Some(given) => label_cell(given.get(id), example, golden),
                    None if golden => label_cell(None, example, golden),
                    None => "<div class=\"cell-text empty\">(unknown: state.json does not \
                             read)</div>"
                        .into(),
                };
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
    let title = format!("{strategy} · {seed} · iteration {t}: test generations");
    let back = link(&cell_url(exp, strategy, seed), "back to the cell");
    let records = match read_generations(&paths, t) {
        Ok(records) => records,
        // A damaged file is the file's problem, not the server's: said on the page it would
        // fill, with the way back.
        Err(e) => {
            let body = format!(
                "<p>{back}</p><p class=\"error\" id=\"unreadable\">{}</p>",
                escape(&crate::web::within_results(&format!("{e:#}"), &app.results))
            );
            return Ok(Reply::html(page(&title, &body, None)));
        }
    };
    let data = cell_data(app, &dir).ok();
    let inputs: HashMap<u64, &str> = data
        .as_deref()
        .map(|d| {
            d.dataset
                .test
                .iter()
                .map(|e| (e.id, e.input.as_str()))
                .collect()
        })
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
    let body = format!("<p>{back}</p>{}", table("generations", &header, &rows));
    Ok(Reply::html(page(&title, &body, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cell as a run stopped between its selected.jsonl and state.json writes leaves it: the
    /// selection names examples whose labels state.json does not hold yet.
    fn cell_selected_before_its_state(results: &Path, labeller: &str) -> (PathBuf, Vec<u64>) {
        let data = results.join("mini");
        std::fs::create_dir_all(&data).unwrap();
        for split in ["train", "test"] {
            let rows: String = (0..6)
                .map(|i| {
                    format!(
                        "{{\"input\": \"{split} email {i}\", \"output\": \"GOLD {split} {i}\"}}\n"
                    )
                })
                .collect();
            std::fs::write(data.join(format!("{split}.jsonl")), rows).unwrap();
        }
        let cell = results.join("exp/random/seed-0");
        std::fs::create_dir_all(&cell).unwrap();
        std::fs::write(
            cell.join("config.toml"),
            format!(
                "name = \"exp\"\nseeds = [0]\n[data]\npath = {:?}\ninput_field = \"input\"\n\
                 output_field = \"output\"\ntest_size = 2\n[model]\nname = \"tiny-random-llama\"\n\
                 [al]\ninit_size = 2\nquery_size = 2\n[labeller]\nkind = \"{labeller}\"\n",
                data.display().to_string()
            ),
        )
        .unwrap();
        let ids = vec![1, 4];
        std::fs::write(
            cell.join("selected.jsonl"),
            "{\"iteration\": 0, \"ids\": [1, 4], \"scores\": null}\n",
        )
        .unwrap();
        (cell, ids)
    }

    fn cell_page_body(app: &App) -> String {
        let reply = cell_page(app, "exp", "random", "seed-0", false).unwrap();
        assert_eq!(reply.status, 200);
        String::from_utf8(reply.body).unwrap()
    }

    #[test]
    fn a_hand_labelled_cell_never_shows_the_data_output_as_a_label() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::new(dir.path(), dir.path(), None).unwrap();
        let (cell, ids) = cell_selected_before_its_state(&app.results, "human");
        let gold = |id: u64| text_cell(&format!("GOLD train {id}"));
        // Before state.json records the labels: nothing of the data's outputs.
        let body = cell_page_body(&app);
        assert!(body.contains(&text_cell("train email 1")), "{body}");
        for &id in &ids {
            assert!(
                !body.contains(&gold(id)),
                "the reference of {id} shown: {body}"
            );
        }
        assert_eq!(body.matches("(not labeled yet)").count(), 2, "{body}");
        // Once it does, the person's labels.
        let rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        let mut state = crate::runner::state::CellState::new("exp", "random", 0, &rng);
        state.iterations_done = 1;
        for &id in &ids {
            state.labeled_ids.push(id);
            state.labels.push(crate::labeller::Label {
                id,
                output: format!("typed {id}"),
                cost: 0.0,
                input_tokens: 0,
                output_tokens: 0,
                seconds: 1.0,
                edits: 0,
            });
        }
        crate::runner::persist::write_state(&CellPaths { dir: cell }, &state).unwrap();
        let body = cell_page_body(&app);
        assert!(body.contains(&text_cell("typed 4")), "{body}");
        // Its progress in the launch form's words, as on the experiment page.
        assert!(
            body.contains("<span id=\"cell-progress\">initial set + 0 iterations</span>"),
            "{body}"
        );
        assert!(
            !body.contains("GOLD") && !body.contains("not labeled yet"),
            "{body}"
        );
    }

    #[test]
    fn a_golden_cell_shows_the_data_output_as_its_label() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::new(dir.path(), dir.path(), None).unwrap();
        cell_selected_before_its_state(&app.results, "golden");
        let body = cell_page_body(&app);
        assert!(body.contains(&text_cell("GOLD train 4")), "{body}");
        // Iteration 0 is not one of the launch form's iterations: say what it is.
        assert!(
            body.contains("<h3>Iteration 0 (initial set)</h3>"),
            "{body}"
        );
    }

    /// A damaged state.json or selected.jsonl made the whole cell page a 500 (the curve and
    /// the selections that read hidden), and the state named the file by its absolute path.
    #[test]
    fn a_cell_with_a_damaged_file_shows_what_reads_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::new(dir.path(), dir.path(), None).unwrap();
        let (cell, _) = cell_selected_before_its_state(&app.results, "human");
        std::fs::write(
            cell.join("curve.csv"),
            "iteration,labeled,cost,tokens,seconds,rouge1\n0,2,0,0,1.5,0.25\n",
        )
        .unwrap();
        std::fs::write(cell.join("state.json"), "{\"broken").unwrap();
        let body = cell_page_body(&app);
        assert!(body.contains("<table id=\"curve\">"), "{body}");
        assert!(body.contains(&text_cell("train email 1")), "{body}");
        assert_eq!(
            body.matches("(unknown: state.json does not read)").count(),
            2,
            "{body}"
        );
        assert!(
            body.contains("unreadable: exp/random/seed-0/state.json is damaged"),
            "{body}"
        );
        let root = app.results.display().to_string();
        assert!(!body.contains(&root), "{body}");

        let mut selected = std::fs::read_to_string(cell.join("selected.jsonl")).unwrap();
        selected.push_str("{\"iteration\": 1, \"ids\": [2,");
        std::fs::write(cell.join("selected.jsonl"), selected).unwrap();
        let body = cell_page_body(&app);
        assert!(body.contains("<table id=\"curve\">"), "{body}");
        assert!(
            body.contains("<p class=\"error\">exp/random/seed-0/selected.jsonl line 2"),
            "{body}"
        );
        assert!(!body.contains(&root), "{body}");

        // A torn generations file: its page says which line, with the way back.
        let generations = CellPaths { dir: cell.clone() }.generations(0);
        std::fs::create_dir_all(generations.parent().unwrap()).unwrap();
        std::fs::write(&generations, "{\"id\": 0, \"predic").unwrap();
        let reply = generations_page(&app, "exp", "random", "seed-0", "0").unwrap();
        let body = String::from_utf8(reply.body).unwrap();
        assert_eq!(reply.status, 200, "{body}");
        assert!(
            body.contains("exp/random/seed-0/generations/iter-0.jsonl line 1")
                && body.contains("href=\"/exp/exp/random/seed-0\">back to the cell"),
            "{body}"
        );
        assert!(!body.contains(&root), "{body}");
    }

    #[test]
    fn shorten_cuts_on_characters() {
        assert_eq!(shorten("üüü", 2), "üü…");
        assert_eq!(shorten("ab", 2), "ab");
    }
}
