//! `lab serve` over real HTTP: the token beyond loopback, paths that try to leave the results
//! directory, and the upload size limit.
mod web_support;
use web_support::cell::{pending_item, waiting_cell, write_pending};
use web_support::http::{answer, status, Client};
use web_support::launch::TINY_FORM;
use web_support::serve::Serve;

#[test]
fn token_is_required_beyond_loopback() {
    let serve = Serve::every_interface();
    let token = serve
        .token
        .clone()
        .expect("a token is printed when not on loopback");
    assert_eq!(token.len(), 32);
    // What binding every interface means is said at start.
    let started = std::time::Instant::now();
    while !serve.printed().join("\n").contains("plain HTTP") && started.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let printed = serve.printed().join("\n");
    assert!(
        printed.contains("every interface") && printed.contains("plain HTTP"),
        "{printed}"
    );
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    assert_eq!(status(agent.get(&format!("{}/", serve.url)).call()), 403);
    assert_eq!(
        status(agent.get(&format!("{}/api/status", serve.url)).call()),
        403
    );
    assert_eq!(
        status(agent.get(&format!("{}/?token=wrong", serve.url)).call()),
        403
    );
    let ok = agent
        .get(&format!("{}/?token={token}", serve.url))
        .call()
        .unwrap();
    let cookie = ok
        .header("Set-Cookie")
        .expect("the token is kept in a cookie")
        .to_string();
    assert!(
        cookie.starts_with(&format!("lab_token={token}")),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly"));
    let with_cookie = agent
        .get(&format!("{}/launch", serve.url))
        .set("Cookie", &format!("lab_token={token}"))
        .call();
    assert_eq!(status(with_cookie), 200);
}

#[test]
fn loopback_needs_no_token_and_paths_stay_inside_results() {
    let serve = Serve::loopback();
    // Files beyond the results folder that a path check must keep out of reach: each
    // would be served (a figure, a run log) if a URL could climb out.
    let secret = "SECRET-OUTSIDE-RESULTS";
    std::fs::write(
        serve.root.join("secret.svg"),
        format!("<svg xmlns=\"http://www.w3.org/2000/svg\"><!--{secret}--></svg>"),
    )
    .unwrap();
    std::fs::write(serve.root.join("run.log"), secret).unwrap();
    assert!(serve.token.is_none());
    let printed = serve.printed().join("\n");
    assert!(
        !printed.contains("plain HTTP"),
        "no warning on loopback: {printed}"
    );
    let cell = serve.results.join("exp/random/seed-0");
    std::fs::create_dir_all(&cell).unwrap();
    std::fs::write(
        serve.results.join("exp/a.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    )
    .unwrap();
    // A link inside the results folder pointing out of it.
    std::os::unix::fs::symlink(&serve.root, serve.results.join("out")).unwrap();
    let get = |path: &str| answer(ureq::get(&format!("{}{path}", serve.url)).call());
    assert_eq!(get("/").0, 200);
    assert_eq!(get("/exp/exp").0, 200);
    assert_eq!(get("/exp/exp/file/a.svg").0, 200);
    assert_eq!(get("/exp/exp/random/seed-0").0, 200);
    // ureq (WHATWG URL rules) turns `%2e%2e` into `..` and drops it: send those raw.
    let raw = |path: &str| {
        use std::io::{Read, Write};
        let addr = serve.url.trim_start_matches("http://");
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        write!(tcp, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut reply = String::new();
        tcp.read_to_string(&mut reply).unwrap();
        let code: u16 = reply.split(' ').nth(1).unwrap().parse().unwrap();
        (code, reply)
    };
    assert_eq!(raw("/exp/exp/file/a.svg").0, 200, "raw requests work");
    for bad in [
        "/exp/%2e%2e/file/secret.svg",
        "/exp/%2E%2E/log",
        "/exp/exp/file/%2e%2e%2fsecret.svg",
    ] {
        let (code, reply) = raw(bad);
        assert!(code == 404 || code == 400, "{bad} answered {code}");
        assert!(!reply.contains(secret), "{bad} served the secret");
    }
    for bad in [
        "/exp/%2e%2e/file/secret.svg",
        "/exp/%2E%2E/file/secret.svg",
        "/exp/%2e%2e/log",
        "/exp/exp/file/..%2Fsecret.svg",
        "/exp/exp/file/..%2F..%2Fsecret.svg",
        "/exp/exp/file/%2e%2e%2f%2e%2e%2fsecret.svg",
        "/exp/..%2F/file/secret.svg",
        "/exp/out/file/secret.svg",
        "/exp/out/log",
        "/exp/%2E%2E%2F%2E%2E/random/seed-0",
        "/exp/exp/..%5C..%5Csecret.txt/seed-0",
    ] {
        let (code, body) = get(bad);
        assert!(code == 404 || code == 400, "{bad} answered {code}");
        assert!(!body.contains(secret), "{bad} served the secret");
    }
    // A page that rebound its own name to 127.0.0.1 can neither read nor post.
    let rebound = ureq::get(&format!("{}/", serve.url))
        .set("Host", "evil.example:7878")
        .call();
    match rebound {
        Err(ureq::Error::Status(403, r)) => {
            let body = r.into_string().unwrap();
            assert!(
                body.contains("open http://127.0.0.1:7878/ instead"),
                "{body}"
            );
        }
        other => panic!(
            "a rebound Host must get 403, got {:?}",
            other.map(|r| r.status())
        ),
    }
    let rebound_post = ureq::post(&format!("{}/launch", serve.url))
        .set("Host", "evil.example:7878")
        .set("Origin", "http://evil.example:7878")
        .send_string("name=x");
    assert_eq!(status(rebound_post), 403);
    let localhost = ureq::get(&format!("{}/", serve.url))
        .set("Host", "localhost:7878")
        .call();
    assert_eq!(status(localhost), 200);
    // A form on another site cannot launch runs on this one.
    let forged = ureq::post(&format!("{}/launch", serve.url))
        .set("Origin", "https://evil.example")
        .send_string("name=x");
    assert_eq!(status(forged), 403);
    assert!(!serve.experiments.join("web-x.toml").exists());
    // A body over the upload limit is refused before it is read.
    let big = vec![b'a'; 20 * 1024 * 1024 + 1];
    let resp = ureq::post(&format!(
        "{}/upload?filename=x.csv&input_field=a&output_field=b",
        serve.url
    ))
    .send_bytes(&big);
    assert_eq!(status(resp), 413);
    assert!(!serve.results.join("uploads/x.csv").exists());
}

#[test]
fn uploads_are_checked_by_the_loaders_and_offered_in_the_launch_form() {
    let serve = Serve::loopback();
    let csv: String = std::iter::once("prompt,target\n".to_string())
        .chain((0..25).map(|i| format!("\"text, {i}\",out {i}\n")))
        .collect();
    let upload = |query: &str| match ureq::post(&format!("{}/upload?{query}", serve.url))
        .send_string(&csv)
    {
        Ok(r) => (200, r.into_json::<serde_json::Value>().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("{e}"),
    };
    let (code, bad) = upload("filename=mine.csv&input_field=question&output_field=target");
    assert_eq!(code, 400);
    assert!(bad["error"].as_str().unwrap().contains("question"), "{bad}");
    let (code, ok) = upload("filename=mine.csv&input_field=prompt&output_field=target");
    assert_eq!(code, 200, "{ok}");
    assert_eq!(ok["rows"], 25);
    let path = ok["path"].as_str().unwrap().to_string();
    assert!(path.ends_with("uploads/mine.csv"), "{path}");
    let form = ureq::get(&format!("{}/launch", serve.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        form.contains(&format!("<option value=\"{path}\"")),
        "the upload is a dataset choice"
    );
}

#[test]
fn annotation_posts_are_checked_and_never_lose_what_was_typed() {
    let serve = Serve::loopback();
    let cell = waiting_cell(&serve.results);
    let labels = cell.join("annotation/labels.jsonl");
    let url = serve.annotate_url("exp/random/seed-0");
    let client = Client::default();
    let post = |form: &str| {
        let a = client.post_form(&url, form);
        (a.status, a.body)
    };
    let get = |url: &str| {
        let a = client.get(url);
        (a.status, a.body)
    };
    let results_abs = serve.results.canonicalize().unwrap();
    let results_abs = results_abs.to_str().unwrap();
    // When the page was shown, as it writes in its form: just now.
    let shown = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();

    // The page carries the version it shows; a label starting with a newline keeps it.
    let (code, page) = get(&format!("{url}?i=0"));
    assert_eq!(code, 200);
    assert!(page.contains("name=\"version\" value=\"none\""), "{page}");
    let (code, _) = post(&format!(
        "i=0&id=7&shown_ms={shown}&version=none&output=%0Afirst+line"
    ));
    assert_eq!(code, 303);
    let (_, page) = get(&format!("{url}?i=0"));
    assert!(
        page.contains("rows=\"4\">\n\nfirst line</textarea>"),
        "the textarea must keep the leading newline: {page}"
    );

    // A second tab that still shows "none" is refused, with both texts shown.
    let (code, body) = post(&format!(
        "i=0&id=7&shown_ms={shown}&version=none&output=second+tab"
    ));
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("first line") && body.contains("second tab"),
        "{body}"
    );
    assert!(std::fs::read_to_string(&labels)
        .unwrap()
        .contains("first line"));
    assert!(!std::fs::read_to_string(&labels)
        .unwrap()
        .contains("second tab"));

    // Blank → 422; cross-site → 403; an id not in the batch → 409 with the text shown.
    assert_eq!(
        post(&format!(
            "i=1&id=8&shown_ms={shown}&version=none&output=+++"
        ))
        .0,
        422
    );
    let forged = ureq::post(&url)
        .set("Origin", "https://evil.example")
        .send_string("i=1&id=8&version=none&output=forged");
    assert_eq!(status(forged), 403);
    let (code, body) = post("i=0&id=999&version=none&output=stale+text");
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("stale text") && body.contains("not saved"),
        "{body}"
    );

    // Forms the page did not send: 400 with a reason, never 500.
    for bad in [
        "i=0&id=abc&output=x",
        "i=0&id=7",
        "i=0&output=x",
        "i=0&id=7&output=%zz",
        "i=99999999999999999999999999&id=7&output=x",
        "i=-1&id=7&output=x",
    ] {
        let (code, body) = post(bad);
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body.contains("reload"), "{bad}: {body}");
    }
    assert!(!std::fs::read_to_string(&labels).unwrap().contains("forged"));
    // A label over what one save may send: a page that says nothing was saved, never the
    // bare "request body too large" it was.
    let huge = "x".repeat(1024 * 1024);
    let too_large = client.post_form(&url, &format!("i=1&id=8&version=none&output={huge}"));
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.content_type, "text/html", "{}", too_large.body);
    assert!(
        too_large.body.contains("<strong>not saved</strong>")
            && too_large.body.contains("Back button"),
        "{}",
        too_large.body
    );
    assert!(!std::fs::read_to_string(&labels).unwrap().contains("xxx"));
    // Raw bytes that are not UTF-8 are refused, not saved with replacement characters.
    let latin1 = ureq::post(&url)
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_bytes(b"i=1&id=8&version=none&output=caf\xe9");
    let (code, body) = answer(latin1);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("UTF-8") && body.contains("nothing was saved"),
        "{body}"
    );
    assert!(!std::fs::read_to_string(&labels)
        .unwrap()
        .contains("caf\u{fffd}"));

    // A torn last line (a crash mid-append) neither breaks the page nor the next save.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&labels)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"id\":8,\"output\":\"caf\xc3").unwrap();
    drop(f);
    assert_eq!(get(&url).0, 200);
    assert_eq!(
        post(&format!(
            "i=1&id=8&shown_ms={shown}&version=none&output=caf%C3%A9"
        ))
        .0,
        303
    );

    // A hand edit gone wrong is named by its path inside the results folder only.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&labels)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"id\": \"x\"}\n").unwrap();
    drop(f);
    let (code, body) = get(&url);
    assert_eq!(code, 500);
    assert!(
        body.contains("exp/random/seed-0/annotation/labels.jsonl line 3"),
        "{body}"
    );
    assert!(!body.contains(results_abs), "{body}");
    let fixed: String = std::fs::read_to_string(&labels)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"x\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&labels, fixed).unwrap();

    // The run took the batch: the save is refused with 409 and the text shown to copy.
    std::fs::remove_file(cell.join("annotation/pending.json")).unwrap();
    let before = std::fs::read(&labels).unwrap();
    let (code, body) = post(&format!("i=0&id=7&shown_ms={shown}&output=typed+too+late"));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("typed too late"), "{body}");
    assert!(body.contains("already took this batch"), "{body}");
    assert_eq!(std::fs::read(&labels).unwrap(), before);

    // `--fresh` removed the annotation folder: a late save does not bring it back.
    std::fs::remove_dir_all(cell.join("annotation")).unwrap();
    assert_eq!(post("i=0&id=7&output=after+reset").0, 409);
    assert!(!cell.join("annotation").exists());
}

#[test]
fn a_batch_left_by_a_stopped_run_says_so() {
    let serve = Serve::loopback();
    let cell = waiting_cell(&serve.results);
    let url = serve.annotate_url("exp/random/seed-0");
    let page = || answer(ureq::get(&url).call());
    let (code, body) = page();
    assert_eq!(code, 200);
    assert!(body.contains("The run is not running"), "{body}");
    // A run holds the cell's lock while it works on the cell (as lab run does).
    let lock = std::fs::File::create(cell.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    let (code, body) = page();
    assert_eq!(code, 200);
    assert!(!body.contains("The run is not running"), "{body}");
    lock.unlock().unwrap();
    assert!(page().1.contains("The run is not running"));
}

/// A form sent twice (a double click on Save, a second tab typing the same text, a reload
/// that resends it, also after the run took the batch) is saved once and never reported as
/// lost or as a conflict; a different text for a taken batch still is refused.
#[test]
fn a_form_sent_again_is_saved_once_and_never_reported_lost() {
    let serve = Serve::loopback();
    let cell = waiting_cell(&serve.results);
    let labels = cell.join("annotation/labels.jsonl");
    let url = serve.annotate_url("exp/random/seed-0");
    let client = Client::default();
    let post = |form: &str| {
        let a = client.post_form(&url, form);
        (a.status, a.location, a.body)
    };
    let shown = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let first = &format!("i=0&id=7&shown_ms={shown}&version=none&output=same+text%0Asecond+line");
    let (code, location, _) = post(first);
    assert_eq!(
        (code, location.as_str()),
        (303, "/exp/exp/random/seed-0/annotate?i=1&saved=1")
    );
    // The same form again: the page it came from still carries version "none".
    let (code, location, body) = post(first);
    assert_eq!(code, 303, "a resent form is no conflict: {body}");
    assert!(location.ends_with("saved=1"), "{location}");
    let lines = std::fs::read_to_string(&labels).unwrap();
    assert_eq!(lines.lines().count(), 1, "saved once: {lines}");
    assert!(lines.contains("same text\\nsecond line"), "{lines}");

    // The last item completes the batch; the run takes it (removes pending.json); the form
    // arrives again: it was saved, and the person is told so.
    let last = &format!("i=1&id=8&shown_ms={shown}&version=none&output=last");
    assert_eq!(post(last).1, "/exp/exp/random/seed-0?batch=complete");
    std::fs::remove_file(cell.join("annotation/pending.json")).unwrap();
    let (code, location, body) = post(last);
    assert_eq!(code, 303, "{body}");
    assert_eq!(location, "/exp/exp/random/seed-0?batch=complete");
    // Another text for the taken batch is not saved, and says so.
    let (code, _, body) = post(&format!(
        "i=1&id=8&shown_ms={shown}&version=none&output=changed+late"
    ));
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("not saved") && body.contains("changed late"),
        "{body}"
    );

    // The run moved on to the next batch: a resent form of the old one is no loss either.
    write_pending(
        &cell,
        &[pending_item(9, "in 9", ""), pending_item(10, "in 10", "")],
    );
    let (code, location, body) = post(first);
    assert_eq!(code, 303, "{body}");
    assert_eq!(location, "/exp/exp/random/seed-0/annotate?already=1");
    let page = client.get(&format!("{}{location}", serve.url));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("saved already"), "{}", page.body);
    assert!(page.body.contains("example id 9"), "{}", page.body);
    let (code, _, body) = post(&format!(
        "i=0&id=7&shown_ms={shown}&version=none&output=other"
    ));
    assert_eq!(code, 409, "{body}");
    let saved = std::fs::read_to_string(&labels).unwrap();
    assert_eq!(
        saved.lines().count(),
        2,
        "nothing added by resent forms: {saved}"
    );
    assert!(
        !saved.contains("changed late") && !saved.contains("other"),
        "{saved}"
    );
}

/// Two launches of one experiment at once (a double click on Launch) start one run: the
/// other is told it is running already. Before, both started; the second failed on the
/// first one's cells and the pages showed the experiment as failed while it ran.
#[test]
fn a_double_click_on_launch_starts_one_run() {
    let serve = Serve::loopback();
    let mut form = vec![
        ("name", "twice"),
        ("dataset", "data/aeslc"),
        ("strategy", "random"),
        ("labeller", "golden"),
        ("advanced", "[eval]\nmetrics = [\"rouge1\"]\n"),
    ];
    form.extend(TINY_FORM);
    let client = Client::default();
    let barrier = std::sync::Barrier::new(2);
    let mut codes: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (client, barrier, form) = (&client, &barrier, &form);
                let url = format!("{}/launch", serve.url);
                s.spawn(move || {
                    barrier.wait();
                    let answer = client.post_fields(&url, form);
                    if answer.status == 422 {
                        assert!(answer.body.contains("running already"), "{}", answer.body);
                    }
                    answer.status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    codes.sort_unstable();
    assert_eq!(codes, [303, 422], "one launch starts, the other is refused");
    let log = std::fs::read_to_string(serve.results.join("twice/run.log")).unwrap();
    assert_eq!(log.matches("== lab run").count(), 1, "{log}");
    // When it started reads as a date, not seconds since 1970.
    let header = log.lines().next().unwrap_or_default();
    let date = header
        .split_once("(started ")
        .map(|(_, d)| d.trim_end_matches(" UTC)"));
    assert!(
        date.is_some_and(|d| d.len() == 19 && d.as_bytes()[4] == b'-' && d.as_bytes()[13] == b':'),
        "{header}"
    );
    // The run that started is the one the pages follow, and it finishes.
    let started = std::time::Instant::now();
    loop {
        let status: serde_json::Value = ureq::get(&format!("{}/api/status", serve.url))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        let run = status["experiments"][0]["run"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            !run.starts_with("failed"),
            "{run}\n{}",
            std::fs::read_to_string(serve.results.join("twice/run.log")).unwrap()
        );
        if run == "finished" {
            break;
        }
        assert!(started.elapsed().as_secs() < 240, "still {run}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
