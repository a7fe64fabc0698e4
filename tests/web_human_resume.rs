//! A run with the human labeller killed while a batch waits: the labels saved before and
//! after the kill are kept, the resumed run asks for nothing twice, and every label reaches
//! the run exactly once, as typed (newlines included).
mod web_support;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use web_support::http::Client;
use web_support::serve::Serve;

fn lab_run(exp: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_lab"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("run")
        .arg(exp)
        .env("LAB_QUIET", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The ids of the batch waiting in `cell` once it is not `previous`.
fn wait_for_batch(cell: &Path, previous: &[u64], log: &Path) -> Vec<u64> {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(cell.join("annotation/pending.json")) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                let ids: Vec<u64> = v["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].as_u64().unwrap())
                    .collect();
                if ids != previous {
                    return ids;
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "no new batch; run log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn state_labels(cell: &Path) -> Vec<(u64, String)> {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell.join("state.json")).unwrap()).unwrap();
    let mut labels: Vec<(u64, String)> = state["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["id"].as_u64().unwrap(),
                l["output"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    labels.sort();
    labels
}

#[test]
fn a_run_killed_while_labels_wait_resumes_with_every_label_once() {
    let serve = Serve::loopback();
    let exp = serve.root.join("hand.toml");
    std::fs::write(
        &exp,
        format!(
            "name = \"hand\"\nseeds = [0]\nresults_dir = {:?}\n\
             [data]\npath = \"data/aeslc\"\ninput_field = \"email\"\noutput_field = \"subject\"\n\
             test_size = 4\npool_size = 20\n\
             [model]\nname = \"tiny-random-llama\"\nmax_input_tokens = 32\nmax_new_tokens = 4\n\
             [train]\nepochs = 1\n[al]\ninit_size = 2\nquery_size = 2\niterations = 1\n\
             [labeller]\nkind = \"human\"\n[eval]\nmetrics = [\"rouge1\"]\n\
             [[strategy]]\nname = \"random\"\n",
            serve.results.display().to_string()
        ),
    )
    .unwrap();
    let cell = serve.results.join("hand/random/seed-0");
    let log = serve.root.join("run.log");
    let url = serve.annotate_url("hand/random/seed-0");
    let client = Client::default();
    let save = |i: usize, id: u64, output: &str| {
        let (i, id_text) = (i.to_string(), id.to_string());
        // When the page was shown, as it writes in its form: just now.
        let shown = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .to_string();
        let fields = [
            ("i", i.as_str()),
            ("id", id_text.as_str()),
            ("shown_ms", shown.as_str()),
            ("output", output),
        ];
        let answer = client.post_fields(&url, &fields);
        assert_eq!(answer.status, 303, "{id}: {output}: {}", answer.body);
    };
    let typed = |id: u64| format!("label {id}\nsecond line é");

    let mut run = lab_run(&exp, &log);
    let first = wait_for_batch(&cell, &[], &log);
    save(0, first[0], &typed(first[0]));
    // Killed with one label saved and one missing.
    run.kill().unwrap();
    run.wait().unwrap();
    let page = client.get(&url).body;
    assert!(page.contains("The run is not running"), "{page}");
    save(1, first[1], &typed(first[1]));

    // Resumed: it takes the batch labelled meanwhile and asks for the next one.
    let mut run = lab_run(&exp, &log);
    let second = wait_for_batch(&cell, &first, &log);
    assert!(
        second.iter().all(|id| !first.contains(id)),
        "{first:?} then {second:?}"
    );
    let mut want: Vec<(u64, String)> = first.iter().map(|&id| (id, typed(id))).collect();
    want.sort();
    assert_eq!(
        state_labels(&cell),
        want,
        "the first batch, each label once"
    );
    for (i, &id) in second.iter().enumerate() {
        save(i, id, &typed(id));
    }
    let status = run.wait().unwrap();
    assert!(
        status.success(),
        "run log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    want.extend(second.iter().map(|&id| (id, typed(id))));
    want.sort();
    assert_eq!(state_labels(&cell), want, "every label once, as typed");
    assert!(!cell.join("annotation/pending.json").exists());
}
