//! Methods over HTTP: a page asked with a method it does not take answers 405 with an
//! `Allow` header and the app's error page; a path that is no page stays 404.
mod web_support;
use web_support::serve::Serve;

/// Status, `Allow` header (empty when absent) and body of `method url`.
fn ask(method: &str, url: &str) -> (u16, String, String) {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let response = match agent.request(method, url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url} failed: {e}"),
    };
    let allow = response.header("Allow").unwrap_or_default().to_string();
    (response.status(), allow, response.into_string().unwrap())
}

#[test]
fn other_methods_on_a_page_get_405_with_allow_and_unknown_paths_404() {
    let serve = Serve::loopback();
    std::fs::create_dir_all(serve.results.join("exp/random/seed-0")).unwrap();
    std::fs::write(serve.results.join("exp/run.log"), "a line\n").unwrap();
    let url = |path: &str| format!("{}{path}", serve.url);
    for method in ["PUT", "DELETE", "PATCH"] {
        for (path, allowed) in [
            ("/", "GET, HEAD"),
            ("/exp/exp", "GET, HEAD"),
            ("/exp/exp/log", "GET, HEAD"),
            ("/exp/exp/random/seed-0", "GET, HEAD"),
            ("/launch", "GET, HEAD, POST"),
            ("/exp/exp/random/seed-0/annotate", "GET, HEAD, POST"),
            ("/upload", "POST"),
        ] {
            let (status, allow, body) = ask(method, &url(path));
            assert_eq!(status, 405, "{method} {path}: {body}");
            assert_eq!(allow, allowed, "{method} {path}");
            assert!(
                body.contains("<h1>Method not allowed</h1>")
                    && body.contains("<nav><a href=\"/\">Experiments</a>")
                    && body.contains(&format!("does not take {method} requests")),
                "{method} {path}: {body}"
            );
        }
        let (status, allow, _) = ask(method, &url("/no/such/page"));
        assert_eq!(status, 404, "{method} on an unknown path");
        assert_eq!(allow, "");
    }
    // GET on the upload endpoint, which only takes files.
    let (status, allow, _) = ask("GET", &url("/upload"));
    assert_eq!((status, allow.as_str()), (405, "POST"));
    // HEAD is answered like GET.
    assert_eq!(ask("HEAD", &url("/")).0, 200);
    assert_eq!(ask("HEAD", &url("/exp/exp/log")).0, 200);
}
