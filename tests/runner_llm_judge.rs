//! `llm_judge` as an evaluation metric of `lab run`: every test prediction is sent to the judge
//! LLM (the mock OpenAI-compatible server), the 1–5 reply becomes the per-example value and the
//! mean goes into curve.csv; a reply that is not a bare score is asked again once; a repeated
//! evaluation comes from the label cache without new requests.
mod support;

use std::sync::Arc;
use support::mock_openai::{last_user, MockServer, Options, Turn};
use support::tiny_run::{lab_with, TinyExperiment};

/// The candidate output the judge prompt carries.
fn candidate(prompt: &str) -> String {
    let start = prompt.find("Candidate output:\n").expect("a judge prompt") + 18;
    let end = prompt
        .find("\n\nAnswer with the score only")
        .expect("a judge prompt");
    prompt[start..end].to_string()
}

/// The score the mock judge gives a prediction: depends on its length, so it differs per item.
fn score_of(prediction: &str) -> u32 {
    prediction.chars().count() as u32 % 5 + 1
}

#[test]
fn llm_judge_scores_each_prediction_and_reaches_the_curve() {
    let responder = Arc::new(|turns: &[Turn]| {
        let first = &turns.iter().find(|(r, _)| r == "user").unwrap().1;
        let s = score_of(&candidate(first));
        if last_user(turns).contains("not a score") {
            format!("{s}")
        } else if s.is_multiple_of(2) {
            // Not a bare score: the judge must ask again.
            format!("Score: {s}")
        } else {
            format!("<think>compare with the references</think>\n{s}\n")
        }
    });
    let server = MockServer::start(Options {
        responder,
        ..Options::default()
    });
    let key = Options::default().api_key;
    let dir = tempfile::tempdir().unwrap();
    let judge = format!(
        "[eval.judge]\nprovider = \"custom\"\nbase_url = \"{}\"\nmodel = \"mock-model\"\n\
         api_key_env = \"LAB_TEST_JUDGE_KEY\"\nprice_input_per_mtok = 1.0\n\
         price_output_per_mtok = 2.0",
        server.base_url()
    );
    let exp = TinyExperiment {
        name: "judge",
        pool_size: 12,
        max_input_chars: 200,
        max_input_tokens: 48,
        query_size: 4,
        metrics: &["rouge1", "llm_judge"],
        tables: &judge,
        ..TinyExperiment::default()
    }
    .write(dir.path());
    let run = |extra: &[&str]| {
        let mut args = vec!["run", exp.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = lab_with(
            &args,
            &[
                ("LAB_TEST_JUDGE_KEY", key.clone().into()),
                (
                    "LAB_LABEL_CACHE",
                    dir.path().join("label-cache").into_os_string(),
                ),
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "lab run failed:\n{stdout}\n{stderr}");
        assert!(!stdout.contains(&key) && !stderr.contains(&key));
    };
    run(&[]);

    let cell = dir.path().join("results/judge/random/seed-0");
    let curve = std::fs::read_to_string(cell.join("curve.csv")).unwrap();
    let header: Vec<&str> = curve.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "llm_judge")
        .expect("an llm_judge column");
    let mut requests_expected = 0;
    for iteration in 0..2 {
        let text =
            std::fs::read_to_string(cell.join(format!("generations/iter-{iteration}.jsonl")))
                .unwrap();
        let mut values = Vec::new();
        for line in text.lines() {
            let rec: serde_json::Value = serde_json::from_str(line).unwrap();
            let prediction = rec["prediction"].as_str().unwrap();
            let want = score_of(prediction);
            assert_eq!(
                rec["metrics"]["llm_judge"].as_f64(),
                Some(want as f64),
                "{rec}"
            );
            values.push(want as f64);
            requests_expected += if want.is_multiple_of(2) { 2 } else { 1 };
        }
        assert_eq!(values.len(), 4);
        let row: Vec<&str> = curve
            .lines()
            .nth(1 + iteration)
            .unwrap()
            .split(',')
            .collect();
        let corpus: f64 = row[col].parse().unwrap();
        let mean = values.iter().sum::<f64>() / 4.0;
        assert!(
            (corpus - mean).abs() < 1e-12,
            "curve {corpus} vs mean {mean}"
        );
    }
    // One request per prediction, two for replies that were not a bare score (identical
    // predictions at both iterations come from the cache, so at most this many).
    let served = server.served().len();
    assert!(
        served > 0 && served <= requests_expected,
        "{served} requests, at most {requests_expected}"
    );

    // A fresh run evaluates the same predictions again: all from the label cache.
    run(&["--fresh"]);
    assert_eq!(
        server.served().len(),
        served,
        "re-judging identical predictions paid again"
    );
    for (path, text) in support::all_file_text(dir.path()) {
        assert!(!text.contains(&key), "the key leaked into {path}");
    }
}
