//! The run-log page over HTTP: a long log shows its last lines only, says the rest is
//! omitted, and links the whole file served as plain text.
mod web_support;
use web_support::http::Client;
use web_support::serve::Serve;

#[test]
fn a_long_run_log_page_shows_its_tail_and_links_the_whole_file() {
    let serve = Serve::loopback();
    std::fs::create_dir_all(serve.results.join("big")).unwrap();
    // About 4 MB of numbered lines, as a long run writes.
    let log: String = (0..80_000)
        .map(|i| format!("iteration {i:06}: training loss 0.1234, labelled 42 items\n"))
        .collect();
    assert!(log.len() > 4_000_000);
    std::fs::write(serve.results.join("big/run.log"), &log).unwrap();
    let client = Client::default();

    let page = client.get(&format!("{}/exp/big/log", serve.url));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("iteration 079999:"),
        "the last line is shown"
    );
    assert!(
        !page.body.contains("iteration 000000:"),
        "the first line is not"
    );
    assert!(
        page.body.contains("id=\"log-omitted\"") && page.body.contains("earlier lines are omitted"),
        "the page says lines were left out"
    );
    assert!(
        page.body.len() < 100 * 1024,
        "the page stays small: {} bytes",
        page.body.len()
    );
    // The shown text starts at a whole line.
    let shown = page.body.split("<pre id=\"log\">").nth(1).unwrap();
    assert!(shown.starts_with("iteration "), "{}", &shown[..80]);
    assert!(
        page.body.contains("href=\"/exp/big/run.log\""),
        "the whole log is linked"
    );

    let raw = client.get(&format!("{}/exp/big/run.log", serve.url));
    assert_eq!(raw.status, 200);
    assert!(
        raw.content_type.starts_with("text/plain"),
        "{}",
        raw.content_type
    );
    assert!(raw.body == log, "the raw link serves the whole file");

    // A short log is shown whole, with no notice.
    std::fs::create_dir_all(serve.results.join("small")).unwrap();
    std::fs::write(serve.results.join("small/run.log"), "only line\n").unwrap();
    let small = client.get(&format!("{}/exp/small/log", serve.url));
    assert!(small.body.contains("only line"), "{}", small.body);
    assert!(!small.body.contains("log-omitted"), "{}", small.body);
}

/// The log box (at most 22em high) opened at its top, showing the oldest of the lines it
/// holds; the newest, at its end, were out of sight after every reload.
#[test]
fn the_run_log_page_opens_at_the_newest_lines_in_chromium() {
    let serve = Serve::loopback();
    std::fs::create_dir_all(serve.results.join("long")).unwrap();
    let log: String = (0..500).map(|i| format!("line {i:04}\n")).collect();
    std::fs::write(serve.results.join("long/run.log"), log).unwrap();
    let s = web_support::webdriver::Browser::open();
    s.goto(&format!("{}/exp/long/log", serve.url)).unwrap();
    s.wait_for(
        "the page script to run",
        std::time::Duration::from_secs(10),
        |s| {
            s.execute(
                "var l = document.getElementById('log'); \
             return l.scrollHeight > l.clientHeight && \
                    l.scrollTop + l.clientHeight >= l.scrollHeight - 2;",
            )
            .is_ok_and(|v| v == serde_json::Value::Bool(true))
        },
    )
    .unwrap();
}
