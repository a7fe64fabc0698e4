//! The time a hand label took, over HTTP: a save whose `shown_ms` is no time the page was
//! shown is refused with the typed text kept to copy, and nothing is recorded.
mod web_support;
use web_support::cell::waiting_cell;
use web_support::http::Client;
use web_support::serve::Serve;

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[test]
fn a_save_whose_shown_time_is_not_plausible_records_no_labelling_time() {
    let serve = Serve::loopback();
    let cell = waiting_cell(&serve.results);
    let labels = cell.join("annotation/labels.jsonl");
    let url = serve.annotate_url("exp/random/seed-0");
    let client = Client::default();
    let in_an_hour = (now_ms() + 3_600_000).to_string();
    for (shown, says) in [
        ("&shown_ms=0", "longer than one label can take"),
        ("", "no `shown_ms` field"),
        ("&shown_ms=-5", "not when the page was shown"),
        (&format!("&shown_ms={in_an_hour}"), "later than now"),
    ] {
        let form = format!("i=0&id=7&version=none&output=typed+by+hand{shown}");
        let answer = client.post_form(&url, &form);
        assert_eq!(answer.status, 400, "{form}: {}", answer.body);
        assert!(
            answer.body.contains(says)
                && answer.body.contains("not saved")
                && answer.body.contains("typed by hand"),
            "{form}: {}",
            answer.body
        );
        let recorded = std::fs::read_to_string(&labels).unwrap_or_default();
        assert!(recorded.is_empty(), "{form} recorded {recorded}");
    }
    // The page's own time is recorded as it was.
    let shown = now_ms() - 2_000;
    let form = format!("i=0&id=7&version=none&output=typed+by+hand&shown_ms={shown}");
    assert_eq!(client.post_form(&url, &form).status, 303);
    let recorded = std::fs::read_to_string(&labels).unwrap();
    let line: serde_json::Value = serde_json::from_str(recorded.trim()).unwrap();
    let seconds = line["seconds"].as_f64().unwrap();
    assert!((2.0..600.0).contains(&seconds), "{recorded}");
}
