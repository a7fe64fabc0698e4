//! `lab serve` over real HTTP: the token beyond loopback, paths that try to leave the results
//! directory, and the upload size limit.
mod web_support;
use web_support::serve::Serve;

fn status(resp: Result<ureq::Response, ureq::Error>) -> u16 {
    match resp {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("request failed: {e}"),
    }
}

#[test]
fn token_is_required_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), "0.0.0.0").unwrap();
    let token = serve
        .token
        .clone()
        .expect("a token is printed when not on loopback");
    assert_eq!(token.len(), 32);
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
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), "do not serve").unwrap();
    let serve = Serve::start(dir.path(), "127.0.0.1").unwrap();
    assert!(serve.token.is_none());
    let cell = serve.results.join("exp/random/seed-0");
    std::fs::create_dir_all(&cell).unwrap();
    std::fs::write(
        serve.results.join("exp/a.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    )
    .unwrap();
    let get = |path: &str| status(ureq::get(&format!("{}{path}", serve.url)).call());
    assert_eq!(get("/"), 200);
    assert_eq!(get("/exp/exp"), 200);
    assert_eq!(get("/exp/exp/file/a.svg"), 200);
    assert_eq!(get("/exp/exp/random/seed-0"), 200);
    for bad in [
        "/exp/%2e%2e/file/secret.txt",
        "/exp/..%2F..%2Fsecret.txt",
        "/exp/exp/file/..%2F..%2Fsecret.txt",
        "/exp/%2E%2E%2F%2E%2E/random/seed-0",
        "/exp/exp/..%5C..%5Csecret.txt/seed-0",
        "/exp/exp/file/%2e%2e%2f%2e%2e%2fsecret.svg",
    ] {
        let code = get(bad);
        assert!(code == 404 || code == 400, "{bad} answered {code}");
    }
    // A page that rebound its own name to 127.0.0.1 can neither read nor post.
    let rebound = ureq::get(&format!("{}/", serve.url))
        .set("Host", "evil.example:7878")
        .call();
    assert_eq!(status(rebound), 403);
    let localhost = ureq::get(&format!("{}/", serve.url))
        .set("Host", "localhost:7878")
        .call();
    assert_eq!(status(localhost), 200);
    // A form on another site cannot launch runs on this one.
    let forged = ureq::post(&format!("{}/launch", serve.url))
        .set("Origin", "https://evil.example")
        .send_string("name=x");
    assert_eq!(status(forged), 403);
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
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), "127.0.0.1").unwrap();
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
