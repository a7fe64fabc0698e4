//! The experiments list, one experiment's page (cells, figures, summary table, run log) and
//! the status endpoint the pages poll for live updates.
use crate::labeller::human;
use crate::report::load::parse_seed_dir;
pub use crate::web::cell_progress::CellProgress;
use crate::web::html::{escape, link, number_cell, page, table, url_encode};
use crate::web::http::Reply;
use crate::web::run_process::run_state;
use crate::web::safety::{check_segment, safe_join};
use crate::web::App;
use anyhow::{Context, Result};
use std::hash::{Hash, Hasher};
use std::path::Path;

/// Experiment folders under the results directory, sorted (uploads live beside them).
pub fn experiment_names(results: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries =
        std::fs::read_dir(results).with_context(|| format!("cannot list {}", results.display()))?;
    for entry in entries.flatten() {
        // A name that is not UTF-8 cannot be named in a URL (its link would 404), and no
        // experiment file names one: such a folder is not lab's.
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // Hidden folders are no experiment's: one a start-over is deleting, for one.
        if entry.path().is_dir()
            && !name.starts_with('.')
            && name != crate::web::upload::UPLOAD_DIR
            && check_segment(&name).is_ok()
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Every cell folder of an experiment folder, sorted by strategy then seed.
pub fn cells_of(exp_dir: &Path) -> Vec<CellProgress> {
    let mut cells = Vec::new();
    let Ok(strategies) = std::fs::read_dir(exp_dir) else {
        return cells;
    };
    for s in strategies.flatten().filter(|e| e.path().is_dir()) {
        // As for experiment names: a strategy label is UTF-8, and only such a name has a URL.
        let Ok(strategy) = s.file_name().into_string() else {
            continue;
        };
        let Ok(seeds) = std::fs::read_dir(s.path()) else {
            continue;
        };
        for d in seeds.flatten() {
            if let Some(seed) = d.file_name().to_str().and_then(parse_seed_dir) {
                cells.push(CellProgress::read(&d.path(), &strategy, seed));
            }
        }
    }
    cells.sort_by(|a, b| (&a.strategy, a.seed).cmp(&(&b.strategy, b.seed)));
    cells
}

/// A summary of everything the pages show, so a page reloads only when it would change.
/// A page takes it before reading what it shows: a change while it renders then still
/// differs from the page's fingerprint, so the page reloads instead of keeping a stale view.
pub fn fingerprint(app: &App) -> Result<String> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for name in experiment_names(&app.results)? {
        name.hash(&mut h);
        let dir = app.results.join(&name);
        for f in ["summary.csv", "run.log"] {
            file_stamp(&dir.join(f)).hash(&mut h);
        }
        for cell in cells_of(&dir) {
            cell.dir.hash(&mut h);
            for f in [
                cell.dir.join("state.json"),
                human::pending_path(&cell.dir),
                human::labels_path(&cell.dir),
            ] {
                file_stamp(&f).hash(&mut h);
            }
        }
        run_state(app, &name).hash(&mut h);
    }
    Ok(format!("{:016x}", h.finish()))
}

fn file_stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

pub fn status_json(app: &App) -> Result<Reply> {
    let mut experiments = Vec::new();
    for name in experiment_names(&app.results)? {
        let cells: Vec<serde_json::Value> = cells_of(&app.results.join(&name))
            .iter()
            .map(|c| {
                serde_json::json!({
                    "strategy": c.strategy, "seed": c.seed,
                    "iterations_done": c.iterations_done, "planned": c.planned,
                    "progress": c.progress_text(),
                    "labeled": c.labeled, "finished": c.finished,
                    "state": crate::web::within_results(&c.state_text(), &app.results),
                })
            })
            .collect();
        experiments.push(serde_json::json!({
            "name": name, "run": run_state(app, &name), "cells": cells,
        }));
    }
    Ok(Reply::json(&serde_json::json!({
        "fingerprint": fingerprint(app)?,
        "experiments": experiments,
    })))
}

/// The cell's page, by its folder's own name: `seed-07` and `seed-+7` read as seed 7, but
/// only their own names find them.
fn cell_href(exp: &str, c: &CellProgress) -> String {
    let folder = c
        .dir
        .file_name()
        .and_then(|n| n.to_str())
        .map_or_else(|| format!("seed-{}", c.seed), str::to_string);
    crate::web::html::cell_url(exp, &c.strategy, &folder)
}

/// Table rows for the cells of `exp`, with links to browse and annotate.
fn cell_rows(results: &Path, exp: &str, cells: &[CellProgress]) -> Vec<Vec<String>> {
    cells
        .iter()
        .map(|c| {
            let href = cell_href(exp, c);
            let metrics = c
                .last_metrics
                .iter()
                .map(|(m, v)| format!("{m}={v:.4}"))
                .collect::<Vec<_>>()
                .join(" ");
            let mut state = escape(&crate::web::within_results(&c.state_text(), results));
            if c.waiting.is_some() {
                state.push_str(&format!(
                    " <a class=\"annotate\" href=\"{}/annotate\">Annotate</a>",
                    escape(&href)
                ));
            }
            vec![
                link(&href, &c.strategy),
                c.seed.to_string(),
                // The bar counts evaluations (the initial set's, then one per iteration).
                format!(
                    "<progress max=\"{}\" value=\"{}\"></progress> {}",
                    c.planned.unwrap_or(c.iterations_done + 1),
                    c.iterations_done,
                    escape(&c.progress_text())
                ),
                c.labeled.to_string(),
                escape(&metrics),
                state,
            ]
        })
        .collect()
}

const CELL_HEADER: [&str; 6] = [
    "strategy",
    "seed",
    "progress",
    "labeled",
    "last metrics",
    "state",
];

pub fn list_page(app: &App) -> Result<Reply> {
    // First, before the page's contents are read (see `fingerprint`).
    let live = fingerprint(app)?;
    let names = experiment_names(&app.results)?;
    let mut body = String::new();
    if names.is_empty() {
        body.push_str(&format!(
            "<p>No experiments in {} yet. {}</p>",
            escape(&app.results.display().to_string()),
            link("/launch", "Launch one")
        ));
    }
    for name in &names {
        let cells = cells_of(&app.results.join(name));
        body.push_str(&format!(
            "<section class=\"experiment\"><h2>{}</h2>",
            link(&format!("/exp/{}", url_encode(name)), name)
        ));
        if let Some(run) = run_state(app, name) {
            body.push_str(&format!("<p>run: {}</p>", escape(&run)));
        }
        body.push_str(&table(
            &format!("cells-{name}"),
            &CELL_HEADER,
            &cell_rows(&app.results, name, &cells),
        ));
        body.push_str("</section>");
    }
    Ok(Reply::html(page("Experiments", &body, Some(&live))))
}

pub fn experiment_page(app: &App, exp: &str) -> Result<Reply> {
    // First, before the page's contents are read (see `fingerprint`).
    let live = fingerprint(app)?;
    // The uploads folder sits beside the experiments, but is none.
    let dir = match safe_join(&app.results, &[exp]) {
        Ok(dir) if exp != crate::web::upload::UPLOAD_DIR => dir,
        _ => return Ok(Reply::error(404, "no such experiment")),
    };
    let cells = cells_of(&dir);
    let mut body = String::new();
    if let Some(run) = run_state(app, exp) {
        body.push_str(&format!("<p id=\"run-state\">run: {}</p>", escape(&run)));
    }
    if dir.join("run.log").exists() {
        body.push_str(&format!(
            "<p>{}</p>",
            link(&format!("/exp/{}/log", url_encode(exp)), "Run log")
        ));
    }
    body.push_str("<h2>Cells</h2>");
    body.push_str(&table(
        "cells",
        &CELL_HEADER,
        &cell_rows(&app.results, exp, &cells),
    ));
    let figures = figure_names(&dir);
    if !figures.is_empty() {
        body.push_str("<h2>Curves</h2><div class=\"figures\">");
        for f in &figures {
            body.push_str(&format!(
                "<img class=\"curve\" alt=\"{0}\" src=\"/exp/{1}/file/{2}\">",
                escape(f),
                escape(&url_encode(exp)),
                escape(&url_encode(f))
            ));
        }
        body.push_str("</div>");
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("summary.csv")) {
        body.push_str("<h2>Summary</h2>");
        body.push_str(&csv_table("summary", &text));
    }
    Ok(Reply::html(page(exp, &body, Some(&live))))
}

/// The report's figures (SVG) in an experiment folder.
fn figure_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".svg"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A CSV text as an HTML table, every cell escaped; unreadable CSV is shown as text.
pub fn csv_table(id: &str, text: &str) -> String {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(_) => return format!("<pre>{}</pre>", escape(text)),
    };
    let rows: Vec<Vec<String>> = reader
        .records()
        .flatten()
        .map(|r| r.iter().map(number_cell).collect())
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    table(id, &header, &rows)
}

/// A figure of the report (SVG or PNG), only from the experiment folder itself.
pub fn figure_file(app: &App, exp: &str, name: &str) -> Result<Reply> {
    let content_type = if name.ends_with(".svg") {
        "image/svg+xml"
    } else if name.ends_with(".png") {
        "image/png"
    } else {
        return Ok(Reply::error(
            404,
            "only the report's .svg and .png figures are served",
        ));
    };
    let Ok(path) = safe_join(&app.results, &[exp, name]) else {
        return Ok(Reply::error(404, "no such figure"));
    };
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Reply::with_type(200, content_type, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_escaped() {
        let t = csv_table("s", "strategy,mean\n<img src=x>,0.5\n");
        assert!(t.contains("<td>&lt;img src=x&gt;</td>"), "{t}");
        assert!(t.contains("<th>mean</th>"));
    }

    /// The curve table showed `seconds` as curve.csv holds it, `1.1656322239999999`.
    #[test]
    fn csv_numbers_show_four_significant_digits() {
        let t = csv_table(
            "curve",
            "iteration,seconds,rouge1
2,1.1656322239999999,0.5
",
        );
        assert!(
            t.contains(
                "<td>2</td><td><span title=\"1.1656322239999999\">1.166</span></td><td>0.5</td>"
            ),
            "{t}"
        );
    }

    /// Folders whose names are not UTF-8 were listed under a lossy name whose link 404s.
    #[cfg(unix)]
    #[test]
    fn folders_named_in_bytes_that_are_not_utf8_are_not_listed() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let odd = std::ffi::OsStr::from_bytes(b"bad\xffname");
        std::fs::create_dir_all(dir.path().join(odd).join("random/seed-0")).unwrap();
        std::fs::create_dir_all(dir.path().join("exp").join(odd).join("seed-0")).unwrap();
        std::fs::create_dir_all(dir.path().join("exp/random/seed-0")).unwrap();
        assert_eq!(experiment_names(dir.path()).unwrap(), ["exp"]);
        let cells = cells_of(&dir.path().join("exp"));
        let strategies: Vec<&str> = cells.iter().map(|c| c.strategy.as_str()).collect();
        assert_eq!(strategies, ["random"]);
    }

    /// A seed folder named other than `seed-<n>` as lab writes it was linked as `seed-<n>`,
    /// which 404s.
    #[test]
    fn a_cell_is_linked_by_its_folder_name() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::new(dir.path(), dir.path(), None).unwrap();
        std::fs::create_dir_all(app.results.join("exp/random/seed-07")).unwrap();
        let reply = experiment_page(&app, "exp").unwrap();
        let body = String::from_utf8(reply.body).unwrap();
        assert!(
            body.contains("<a href=\"/exp/exp/random/seed-07\">random</a>"),
            "{body}"
        );
        let page = crate::web::browse::cell_page(&app, "exp", "random", "seed-07", false);
        assert_eq!(page.unwrap().status, 200);
    }

    /// The uploads folder, listed nowhere, showed as an empty experiment at /exp/uploads.
    #[test]
    fn the_uploads_folder_is_no_experiment() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::new(dir.path(), dir.path(), None).unwrap();
        std::fs::create_dir_all(app.results.join(crate::web::upload::UPLOAD_DIR)).unwrap();
        std::fs::create_dir_all(app.results.join("exp")).unwrap();
        assert_eq!(experiment_page(&app, "exp").unwrap().status, 200);
        assert_eq!(experiment_page(&app, "uploads").unwrap().status, 404);
    }

    /// A finished run of `iterations = 1` (as the launch form names it) showed `2/2` under
    /// "iterations", on the list and experiment pages alike.
    #[test]
    fn the_pages_count_iterations_as_the_launch_form_does() {
        use crate::runner::persist::write_state;
        use rand::SeedableRng;
        let dir = tempfile::tempdir().unwrap();
        let app = App::new(dir.path(), dir.path(), None).unwrap();
        let paths = crate::runner::persist::CellPaths::new(&app.results, "exp", "random", 0);
        std::fs::create_dir_all(&paths.dir).unwrap();
        std::fs::write(paths.config(), "name = \"exp\"\n[al]\niterations = 1\n").unwrap();
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut state = crate::runner::state::CellState::new("exp", "random", 0, &rng);
        state.iterations_done = 2;
        state.finished = true;
        write_state(&paths, &state).unwrap();
        let shown = "<progress max=\"2\" value=\"2\"></progress> initial set + 1 of 1 iteration";
        for reply in [list_page(&app), experiment_page(&app, "exp")] {
            let body = String::from_utf8(reply.unwrap().body).unwrap();
            assert!(body.contains(shown) && !body.contains("2/2"), "{body}");
            assert!(body.contains("<th>progress</th>"), "{body}");
        }
        let status = String::from_utf8(status_json(&app).unwrap().body).unwrap();
        assert!(
            status.contains("\"progress\":\"initial set + 1 of 1 iteration\""),
            "{status}"
        );
    }
}
