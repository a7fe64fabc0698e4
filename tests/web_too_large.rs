//! Bodies over what `lab serve` reads: the launch form (1 MB) and uploads (20 MB). The server
//! answers 413 with a page in the app's style that says what was not done and what to do
//! instead (the upload script gets the same words as JSON); the pages' script stops both
//! before they are sent. Before, each got a bare text/plain "request body too large", and the
//! upload button said "upload failed: SyntaxError" after sending the whole file.
mod web_support;
use std::time::Duration;
use web_support::serve::Serve;
use web_support::webdriver::Browser;

const MB: usize = 1024 * 1024;

/// Status, content type and body of a POST of `body` to `path`, with `accept` if given.
fn post(serve: &Serve, path: &str, body: &[u8], accept: Option<&str>) -> (u16, String, String) {
    let mut request = ureq::post(&format!("{}{path}", serve.url));
    if let Some(a) = accept {
        request = request.set("Accept", a);
    }
    let r = match request.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {path} failed: {e}"),
    };
    let (status, content_type) = (r.status(), r.content_type().to_string());
    (status, content_type, r.into_string().unwrap())
}

#[test]
fn bodies_over_the_limit_get_a_page_saying_what_was_not_done_and_what_to_do() {
    let serve = Serve::loopback();
    let form = format!("name=big&dataset=data%2Faeslc&advanced={}", "x".repeat(MB));
    let (status, content_type, body) = post(&serve, "/launch", form.as_bytes(), None);
    assert_eq!(
        (status, content_type.as_str()),
        (413, "text/html"),
        "{body}"
    );
    for said in [
        "larger than 1 MB",
        "no run was started",
        "shorten the Advanced TOML box",
        "lab run FILE",
    ] {
        assert!(body.contains(said), "{said:?} missing from {body}");
    }
    assert!(!serve.experiments.join("web-big.toml").exists());
    assert!(!serve.results.join("big").exists(), "no run started");

    let file = vec![b'a'; 20 * MB + 1];
    let upload = "/upload?filename=big.csv&input_field=a&output_field=b";
    let (status, content_type, body) = post(&serve, upload, &file, None);
    assert_eq!(
        (status, content_type.as_str()),
        (413, "text/html"),
        "{body}"
    );
    for said in [
        "larger than 20 MB",
        "not uploaded",
        "nothing was stored",
        "path = &quot;/full/path/to/file.csv&quot;",
    ] {
        assert!(body.contains(said), "{said:?} missing from {body}");
    }
    // The launch form's script asks for JSON and shows the error beside the file.
    let (status, content_type, body) = post(&serve, upload, &file, Some("application/json"));
    assert_eq!(
        (status, content_type.as_str()),
        (413, "application/json"),
        "{body}"
    );
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("not uploaded") && e.contains("Advanced TOML box")),
        "{error}"
    );
    assert!(!serve.results.join("uploads/big.csv").exists());
}

/// The launch form's check keeps a form over 1 MB on the page; the upload's check refuses a
/// file over 20 MB before sending it, and the server's refusal (past the check) is shown as
/// its words, not as a JSON parse error.
#[test]
fn the_pages_stop_a_form_or_file_too_large_before_sending_it_in_chromium() {
    let serve = Serve::loopback();
    let s = Browser::open();
    let launch = format!("{}/launch", serve.url);
    s.goto(&launch).unwrap();
    s.find("#name").unwrap().set("big").unwrap();
    s.execute("document.getElementById('advanced').value = '# ' + 'x'.repeat(1100000);")
        .unwrap();
    s.find("#launch-button").unwrap().click().unwrap();
    s.wait_for("the form's notice", Duration::from_secs(10), |s| {
        s.find("#launch .too-large")
            .and_then(|n| n.text())
            .is_ok_and(|t| t.starts_with("Not launched"))
    })
    .unwrap();
    let notice = s.find("#launch .too-large").unwrap().text().unwrap();
    assert!(
        notice.contains("1.1 MB as sent, over the 1 MB") && notice.contains("still here"),
        "{notice}"
    );
    assert_eq!(s.current_url().unwrap(), launch, "the page stays");
    assert!(!serve.experiments.join("web-big.toml").exists());

    // A sparse file: 20 MB and a byte, written in no time.
    let big = serve.root.join("big.csv");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(20 * MB as u64 + 1)
        .unwrap();
    s.find("#input_field").unwrap().set("a").unwrap();
    s.find("#output_field").unwrap().set("b").unwrap();
    s.find("#upload-file")
        .unwrap()
        .send_keys(&big.display().to_string())
        .unwrap();
    let message = |s: &web_support::webdriver::Session| {
        s.find("#upload-message")
            .and_then(|m| m.text())
            .unwrap_or_default()
    };
    s.wait_for("word on choosing the file", Duration::from_secs(10), |s| {
        message(s).contains("not uploaded")
    })
    .unwrap();
    s.find("#upload-button").unwrap().click().unwrap();
    let said = message(&s);
    assert!(
        said.starts_with("big.csv is 20.1 MB.")
            && said.contains("not uploaded")
            && said.contains("Advanced TOML box"),
        "{said}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !serve.results.join("uploads").exists(),
        "nothing was sent: {said}"
    );

    // Past the check (a page from before it), the server's words are shown.
    s.execute("document.getElementById('upload-file').removeAttribute('data-max-bytes');")
        .unwrap();
    s.execute("document.getElementById('upload-message').textContent = '';")
        .unwrap();
    s.find("#upload-button").unwrap().click().unwrap();
    s.wait_for("the server's refusal", Duration::from_secs(30), |s| {
        message(s).starts_with("This file is larger than 20 MB")
    })
    .unwrap();
    assert!(!serve.results.join("uploads/big.csv").exists());
}
