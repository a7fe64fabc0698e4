//! End to end in a real browser: launch a tiny experiment with the human labeller from the
//! form, label both batches on the annotation page (with back and skip), and watch the run
//! finish and the cell page update by itself. Screenshots of each page go to
//! `target/web-screenshots/`.
mod web_support;
use std::path::PathBuf;
use std::time::Duration;
use web_support::launch::TINY_FORM;
use web_support::serve::Serve;
use web_support::webdriver::{Browser, Session};

fn screenshots_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("web-screenshots")
}

fn run_log(serve: &Serve) -> String {
    std::fs::read_to_string(serve.results.join("e2e/run.log")).unwrap_or_default()
}

/// Label every item of the waiting batch through the page, returning the labels typed.
fn annotate_batch(s: &Session, batch: usize, shots: &std::path::Path) -> Vec<String> {
    s.find("a.annotate").unwrap().click().unwrap();
    s.wait_for("the annotation page", Duration::from_secs(10), |s| {
        s.find("#output").is_ok()
    })
    .unwrap();
    let progress = s.find("#progress").unwrap().text().unwrap();
    assert_eq!(progress, "0 / 2 labeled", "a fresh batch of query size 2");
    assert!(!s.find("#input").unwrap().text().unwrap().trim().is_empty());
    assert!(s
        .find("#input")
        .unwrap()
        .text()
        .unwrap()
        .starts_with("Write a subject line for this email:"));
    assert_eq!(
        s.find("#system-prompt").unwrap().text().unwrap(),
        "You write short, specific subject lines for emails."
    );
    s.screenshot(&shots.join(format!("annotate-batch{batch}.png")))
        .unwrap();
    let first = format!("Batch {batch} first label");
    s.find("#output").unwrap().set(&first).unwrap();
    s.find("#save").unwrap().click().unwrap();
    s.wait_for("progress after one save", Duration::from_secs(10), |s| {
        s.find("#progress")
            .and_then(|p| p.text())
            .is_ok_and(|t| t == "1 / 2 labeled")
    })
    .unwrap();
    // Back shows the saved label; skip returns to the unlabeled item.
    s.find("#back").unwrap().click().unwrap();
    s.wait_for("the first item again", Duration::from_secs(10), |s| {
        s.find("#output")
            .and_then(|o| o.property("value"))
            .is_ok_and(|v| v == first)
    })
    .unwrap();
    s.find("#skip").unwrap().click().unwrap();
    s.wait_for("the second item", Duration::from_secs(10), |s| {
        s.find("#output")
            .and_then(|o| o.property("value"))
            .is_ok_and(|v| v != first)
    })
    .unwrap();
    let second = format!("Batch {batch} second label");
    s.find("#output").unwrap().set(&second).unwrap();
    s.find("#save").unwrap().click().unwrap();
    s.wait_for(
        "the cell page after the batch",
        Duration::from_secs(10),
        |s| s.current_url().is_ok_and(|u| u.contains("batch=complete")),
    )
    .unwrap();
    if batch == 0 {
        // (After the last batch the run may finish at once, and the notice goes with it.)
        assert!(s.find("#batch-complete").is_ok());
    }
    vec![first, second]
}

#[test]
fn launch_annotate_and_watch_a_run_in_chromium() {
    let s = Browser::open();
    let serve = Serve::loopback();
    let shots = screenshots_dir();
    let long = Duration::from_secs(240);

    s.goto(&format!("{}/launch", serve.url)).unwrap();
    s.find("#name").unwrap().set("e2e").unwrap();
    for (field, value) in TINY_FORM {
        s.find(&format!("#{field}")).unwrap().set(value).unwrap();
    }
    s.find("#strategy option[value=random]")
        .unwrap()
        .click()
        .unwrap();
    s.find("#labeller option[value=human]")
        .unwrap()
        .click()
        .unwrap();
    s.find("#advanced")
        .unwrap()
        .send_keys("[eval]\nmetrics = [\"rouge1\", \"rougeL\"]\n")
        .unwrap();
    s.screenshot(&shots.join("launch.png")).unwrap();

    // An invalid query size first: the problem is shown next to its field.
    s.find("#query_size").unwrap().set("0").unwrap();
    s.find("#launch-button").unwrap().click().unwrap();
    s.wait_for("the query size error", Duration::from_secs(10), |s| {
        s.find("#error-query_size").is_ok()
    })
    .unwrap();
    assert!(s
        .find("#error-query_size")
        .unwrap()
        .text()
        .unwrap()
        .contains("al.query_size"));
    s.screenshot(&shots.join("launch-error.png")).unwrap();
    s.find("#query_size").unwrap().set("2").unwrap();
    s.find("#launch-button").unwrap().click().unwrap();
    s.wait_for("the experiment page", Duration::from_secs(10), |s| {
        s.current_url().is_ok_and(|u| u.ends_with("/exp/e2e"))
    })
    .unwrap();
    assert!(serve.experiments.join("web-e2e.toml").is_file());

    let mut typed = Vec::new();
    for batch in 0..2 {
        // The page reloads itself when the run asks for labels.
        s.wait_for(&format!("batch {batch} to wait for labels"), long, |s| {
            let failed = s
                .find("#run-state")
                .and_then(|e| e.text())
                .is_ok_and(|t| t.contains("failed"));
            assert!(!failed, "the run failed:\n{}", run_log(&serve));
            s.find("a.annotate").is_ok()
        })
        .unwrap();
        s.screenshot(&shots.join(format!("experiment-waiting{batch}.png")))
            .unwrap();
        typed.extend(annotate_batch(&s, batch, &shots));
        if batch == 0 {
            s.goto(&format!("{}/exp/e2e", serve.url)).unwrap();
        }
    }

    // Left open, the cell page updates by itself as the run finishes.
    s.wait_for("the run to finish", long, |s| {
        s.find("#cell-state")
            .and_then(|e| e.text())
            .is_ok_and(|t| t.starts_with("finished"))
    })
    .unwrap_or_else(|e| {
        let cell = serve.results.join("e2e/random/seed-0");
        let state = std::fs::read_to_string(cell.join("state.json")).unwrap_or_default();
        panic!("{e:#}\nrun log:\n{}\nstate.json:\n{state}", run_log(&serve))
    });
    let curve_rows = s.find_all("#curve tbody tr").unwrap();
    assert_eq!(curve_rows.len(), 2, "iterations 0 and 1 are on the curve");
    assert_eq!(
        s.find_all("svg.live-curve circle").unwrap().len(),
        4,
        "2 metrics × 2 points"
    );
    let labels: Vec<String> = s
        .find_all("#selected-1 tbody tr td:nth-child(4)")
        .unwrap()
        .iter()
        .map(|e| e.text().unwrap())
        .collect();
    assert_eq!(labels.len(), 2);
    assert!(
        labels.iter().all(|l| typed.contains(l)),
        "{labels:?} vs {typed:?}"
    );
    s.screenshot(&shots.join("cell.png")).unwrap();

    s.goto(&format!("{}/gen/1", serve.cell_url("e2e/random/seed-0")))
        .unwrap();
    assert_eq!(s.find_all("#generations tbody tr").unwrap().len(), 4);
    s.screenshot(&shots.join("generations.png")).unwrap();

    s.goto(&format!("{}/exp/e2e", serve.url)).unwrap();
    s.wait_for("the report's figures", long, |s| {
        s.find("img.curve").is_ok()
    })
    .unwrap();
    assert!(s.find("#summary").is_ok(), "the summary table is shown");
    s.screenshot(&shots.join("experiment.png")).unwrap();

    // What the person typed is what the run trained on, with annotation time recorded.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(serve.results.join("e2e/random/seed-0/state.json")).unwrap(),
    )
    .unwrap();
    let mut outputs: Vec<&str> = state["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["output"].as_str().unwrap())
        .collect();
    outputs.sort_unstable();
    let mut typed: Vec<&str> = typed.iter().map(String::as_str).collect();
    typed.sort_unstable();
    assert_eq!(
        outputs, typed,
        "every typed label, each once, and nothing else"
    );
    // The time between showing an item and saving it: a person (here the driver) takes some.
    for l in state["labels"].as_array().unwrap() {
        let seconds = l["seconds"].as_f64().unwrap();
        assert!(seconds > 0.0 && seconds < 3600.0, "{l}");
    }
}
