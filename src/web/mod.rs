//! `lab serve`: a small web app to launch and monitor experiments, browse their results and
//! label queried examples by hand. Server-rendered pages over `tiny_http`; a little vanilla JS
//! polls for live updates. Everything it shows is read from the results directory, so it
//! can be started and stopped at any time without touching a run.
pub mod annotate;
pub mod body;
pub mod browse;
pub mod cell_progress;
pub mod chart;
pub mod html;
pub mod http;
pub mod launch;
pub mod launch_form;
pub mod launch_keys;
pub mod relaunch;
pub mod results;
pub mod routes;
pub mod run_log;
pub mod run_process;
pub mod safety;
pub mod upload;

use anyhow::{Context, Result};
use body::BodyRefused;
use clap::Args;
use http::{parse_target, Reply};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Results directory to show (and where launched runs write).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Address to listen on. The default, loopback, is reachable from this machine only.
    /// Any other address (e.g. 0.0.0.0:7878, every interface) lets other machines in, each
    /// request carrying the access token printed at start; the token grants everything the
    /// pages do (launch runs, label). It is plain HTTP: use it on a network you trust, or
    /// keep the default and reach it through an SSH tunnel (ssh -L 7878:127.0.0.1:7878).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub bind: SocketAddr,
    /// Where the launch form writes experiment files (`web-<name>.toml`).
    #[arg(long, default_value = "experiments")]
    pub experiments: PathBuf,
    /// Request-handling threads.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
}

/// What every request handler shares.
pub struct App {
    /// The results directory, canonical.
    pub results: PathBuf,
    pub experiments: PathBuf,
    /// Required on every request when bound beyond loopback.
    pub token: Option<String>,
    /// Runs started from the launch form, by experiment name.
    pub runs: Mutex<HashMap<String, Child>>,
    /// Cell data loaded for the browse pages, by cell config path and its modification time.
    pub datasets: Mutex<HashMap<PathBuf, (SystemTime, Arc<browse::CellData>)>>,
}

impl App {
    pub fn new(results: &Path, experiments: &Path, token: Option<String>) -> Result<Self> {
        std::fs::create_dir_all(results)
            .with_context(|| format!("cannot create results directory {}", results.display()))?;
        let results = results
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", results.display()))?;
        Ok(App {
            results,
            experiments: experiments.to_path_buf(),
            token,
            runs: Mutex::new(HashMap::new()),
            datasets: Mutex::new(HashMap::new()),
        })
    }
}

/// Why `bind` could not be listened on; a port already taken (often by another `lab serve`)
/// is answered with a free port beside it to pass instead.
fn cannot_listen(bind: SocketAddr, error: &(dyn std::error::Error + 'static)) -> anyhow::Error {
    let in_use = error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::AddrInUse);
    if !in_use {
        return anyhow::anyhow!("cannot listen on {bind}: {error}");
    }
    let mut other = bind;
    other.set_port(free_port_after(bind).unwrap_or(bind.port().wrapping_add(1).max(1024)));
    anyhow::anyhow!(
        "cannot listen on {bind}: port {} is already in use (another lab serve, or another \
         program); stop that one, or pass a free port, e.g. --bind {other}",
        bind.port()
    )
}

/// The first of the next few ports on `bind`'s address that nothing listens on now.
fn free_port_after(bind: SocketAddr) -> Option<u16> {
    (1..=20)
        .filter_map(|step| bind.port().checked_add(step))
        .find(|&port| std::net::TcpListener::bind(SocketAddr::new(bind.ip(), port)).is_ok())
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let token = (!safety::is_loopback(&args.bind)).then(safety::new_token);
    let app = Arc::new(App::new(&args.results, &args.experiments, token.clone())?);
    let server =
        tiny_http::Server::http(args.bind).map_err(|e| cannot_listen(args.bind, e.as_ref()))?;
    let server = Arc::new(server);
    let shown = match server.server_addr() {
        tiny_http::ListenAddr::IP(addr) => addr.to_string(),
        #[allow(unreachable_patterns)]
        _ => args.bind.to_string(),
    };
    // Nobody may be reading stdout (a closed pipe): the server runs on regardless.
    let mut out = std::io::stdout();
    let _ = match &token {
        Some(t) => writeln!(
            out,
            "lab serve: http://{shown}/?token={t}\n(bound beyond loopback: every request needs this token)"
        ),
        None => writeln!(out, "lab serve: http://{shown}/"),
    };
    if token.is_some() {
        let every = args.bind.ip().is_unspecified();
        let _ = writeln!(
            out,
            "{}plain HTTP: the token and everything shown travel unencrypted; use a network \
             you trust, or an SSH tunnel to the loopback default",
            if every {
                "listening on every interface: from another machine, put this machine's \
                 address in place of the one above. "
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out, "results: {}", app.results.display());
    let _ = out.flush();
    let workers: Vec<_> = (0..args.threads.max(1))
        .map(|_| {
            let (server, app) = (Arc::clone(&server), Arc::clone(&app));
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    respond(&app, request);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

/// Answer one request; failures become error pages, never a dead worker.
fn respond(app: &App, mut request: tiny_http::Request) {
    let header = |name: &str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().to_string())
    };
    let cookie = header("Cookie");
    let content_length: Option<u64> = header("Content-Length").and_then(|v| v.parse().ok());
    let method = request.method().clone();
    let url = request.url().to_string();
    let mut set_cookie = None;
    let reply = match parse_target(&url) {
        Err(e) => Reply::error(400, &format!("bad request URL: {e:#}")),
        Ok(target) => {
            let allowed = match &app.token {
                None => true,
                Some(t) => {
                    let from_query = target.query.get("token").map(String::as_str);
                    let ok = safety::token_ok(t, from_query, cookie.as_deref());
                    if ok && from_query.is_some() {
                        set_cookie = Some(format!(
                            "{}={t}; Path=/; HttpOnly; SameSite=Strict",
                            safety::TOKEN_COOKIE
                        ));
                    }
                    ok
                }
            };
            let forged = method == tiny_http::Method::Post
                && !safety::same_origin(header("Origin").as_deref(), header("Host").as_deref());
            let rebound = app.token.is_none() && !safety::host_is_local(header("Host").as_deref());
            if rebound {
                // The port the browser used is this server's, whatever name it was reached by.
                let host = header("Host").unwrap_or_default();
                let port = host
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .unwrap_or(80);
                Reply::error(
                    403,
                    &format!(
                        "this server listens on loopback and answers only requests addressed to \
                         localhost or 127.0.0.1 (another name here means a page used DNS \
                         rebinding); open http://127.0.0.1:{port}/ instead, or bind beyond \
                         loopback to use a token"
                    ),
                )
            } else if forged {
                Reply::error(403, "a form on another site cannot post to this server")
            } else if !allowed {
                Reply::error(
                    403,
                    "this server needs its access token: open the URL `lab serve` printed \
                     (it ends in ?token=...)",
                )
            } else {
                let limit = body::limit_for(&target);
                let wants_json = header("Accept").is_some_and(|a| a.contains("application/json"));
                match body::read_body(request.as_reader(), content_length, limit) {
                    Err(BodyRefused::TooLarge) => {
                        body::too_large(&method, &target, limit, wants_json)
                    }
                    Err(BodyRefused::Unreadable(e)) => {
                        Reply::error(400, &format!("cannot read the request body: {e}"))
                    }
                    Ok(body) => {
                        answer_or_500(|| routes::route(app, &method, &target, &body), &app.results)
                    }
                }
            }
        }
    };
    let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    let mut headers = vec![
        ("Content-Type".to_string(), reply.content_type.to_string()),
        ("X-Content-Type-Options".into(), "nosniff".into()),
        ("Cache-Control".into(), "no-store".into()),
        (
            "Content-Security-Policy".into(),
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:".into(),
        ),
    ];
    headers.extend(reply.headers);
    if let Some(c) = set_cookie {
        headers.push(("Set-Cookie".into(), c));
    }
    for (k, v) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            response.add_header(h);
        }
    }
    // The client may have gone away; there is nobody left to tell.
    let _ = request.respond(response);
}

/// The handler's reply; its error, or a panic inside it, as a 500 page. A panic must not end
/// the worker thread: the server has a few, and each lost one would leave requests unanswered.
fn answer_or_500(handler: impl FnOnce() -> Result<Reply>, results: &Path) -> Reply {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(handler)) {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            let message = within_results(&format!("{e:#}"), results);
            Reply::error(500, &format!("error: {message}"))
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Reply::error(
                500,
                &format!(
                    "internal error (a bug in lab serve: {}); the server goes on: go back, or \
                     report it with the page's address",
                    within_results(&what, results)
                ),
            )
        }
    }
}

/// `message` with the results folder's absolute path left out: paths read from inside it
/// (`exp/random/seed-0/...`), and the page shows nothing about the machine beyond it.
pub(crate) fn within_results(message: &str, results: &Path) -> String {
    let root = results.display().to_string();
    if root.is_empty() || !message.contains(&root) {
        return message.to_string();
    }
    let relative = message.replace(&format!("{root}/"), "").replace(&root, ".");
    format!("{relative}\n(paths are inside the results folder)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_becomes_a_500_page_and_the_worker_goes_on() {
        let results = Path::new("/srv/results");
        let reply = answer_or_500(
            || -> Result<Reply> { panic!("index out of range in /srv/results/x/state.json") },
            results,
        );
        assert_eq!(reply.status, 500);
        let body = String::from_utf8_lossy(&reply.body);
        assert!(
            body.contains("internal error (a bug in lab serve: index out of range in x/state.json")
                && !body.contains("/srv/results"),
            "{body}"
        );
        // The same thread answers the next request.
        let next = answer_or_500(|| Ok(Reply::error(404, "no such page")), results);
        assert_eq!(next.status, 404);
    }

    #[test]
    fn error_pages_show_paths_inside_the_results_folder_only() {
        let results = Path::new("/home/someone/lab/results");
        let shown = within_results(
            "/home/someone/lab/results/exp/random/seed-0/annotation/labels.jsonl line 2: bad \
             (in /home/someone/lab/results)",
            results,
        );
        assert!(!shown.contains("/home/someone"), "{shown}");
        assert!(
            shown.starts_with("exp/random/seed-0/annotation/labels.jsonl line 2"),
            "{shown}"
        );
        assert_eq!(within_results("no path here", results), "no path here");
    }
}
