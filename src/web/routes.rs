//! The app's pages as one table: method, path pattern, handler. `route` answers a request
//! from the first entry that matches it, and a path some entry matches under another method
//! is answered 405 with the methods of those entries: pages and `Allow` lists come from the
//! same rows, so they cannot drift apart.
use crate::web::http::{self, Reply, Target};
use crate::web::{annotate, browse, launch, launch_form, results, run_log, upload, App};
use anyhow::Result;
use std::collections::HashMap;

/// What a handler is given besides the app.
pub(crate) struct Request<'a> {
    pub target: &'a Target,
    /// The segments the pattern's `*`s matched, in order; unused places are empty.
    pub args: [&'a str; 4],
    pub body: &'a [u8],
}

type Handler = fn(&App, &Request) -> Result<Reply>;

/// One page: the method it takes (HEAD is answered as GET), its path with `*` for any one
/// segment, and its handler. Order matters where patterns overlap: the first match wins (a
/// strategy named `file` is shadowed by the figures).
struct Route {
    method: &'static str,
    path: &'static [&'static str],
    handler: Handler,
}

const fn page(method: &'static str, path: &'static [&'static str], handler: Handler) -> Route {
    Route {
        method,
        path,
        handler,
    }
}

static ROUTES: &[Route] = &[
    page("GET", &["static", "app.js"], |_, _| {
        Ok(Reply::with_type(
            200,
            "text/javascript; charset=utf-8",
            include_str!("../../assets/web/app.js").as_bytes().to_vec(),
        ))
    }),
    page("GET", &["api", "status"], |app, _| {
        results::status_json(app)
    }),
    page("GET", &[], |app, _| results::list_page(app)),
    page("GET", &["exp", "*"], |app, r| {
        results::experiment_page(app, r.args[0])
    }),
    page("GET", &["exp", "*", "log"], |app, r| {
        run_log::log_page(app, r.args[0])
    }),
    page("GET", &["exp", "*", "run.log"], |app, r| {
        run_log::raw_log(app, r.args[0])
    }),
    page("GET", &["exp", "*", "file", "*"], |app, r| {
        results::figure_file(app, r.args[0], r.args[1])
    }),
    page("GET", &["exp", "*", "*", "*"], |app, r| {
        let [exp, strategy, seed, _] = r.args;
        let complete = r.target.query.contains_key("batch");
        browse::cell_page(app, exp, strategy, seed, complete)
    }),
    page("GET", &["exp", "*", "*", "*", "gen", "*"], |app, r| {
        let [exp, strategy, seed, t] = r.args;
        browse::generations_page(app, exp, strategy, seed, t)
    }),
    page("GET", &["exp", "*", "*", "*", "annotate"], |app, r| {
        let [exp, strategy, seed, _] = r.args;
        annotate::page(app, exp, strategy, seed, &r.target.query)
    }),
    page("POST", &["exp", "*", "*", "*", "annotate"], |app, r| {
        let [exp, strategy, seed, _] = r.args;
        with_form(r.body, |form| {
            annotate::save(app, exp, strategy, seed, form)
        })
    }),
    page("GET", &["launch"], |app, _| launch_form::form_page(app)),
    page("POST", &["launch"], |app, r| {
        with_form(r.body, |form| launch::submit(app, form))
    }),
    page("POST", &["upload"], |app, r| {
        Ok(upload::receive(app, &r.target.query, r.body))
    }),
];

/// The segments `pattern` takes from `seg` when it matches.
fn matches<'a>(pattern: &[&str], seg: &[&'a str]) -> Option<[&'a str; 4]> {
    if pattern.len() != seg.len() {
        return None;
    }
    let mut args = [""; 4];
    let mut taken = 0;
    for (&want, &got) in pattern.iter().zip(seg) {
        if want == "*" {
            *args.get_mut(taken)? = got;
            taken += 1;
        } else if want != got {
            return None;
        }
    }
    Some(args)
}

/// The methods a path answers, empty for no page at all: those of the entries matching it,
/// HEAD beside GET, in a fixed order.
pub(crate) fn methods_of(seg: &[&str]) -> Vec<&'static str> {
    let taken: Vec<&str> = ROUTES
        .iter()
        .filter(|r| matches(r.path, seg).is_some())
        .map(|r| r.method)
        .collect();
    let gets = taken.contains(&"GET");
    ["GET", "HEAD", "POST"]
        .into_iter()
        .filter(|m| taken.contains(m) || (*m == "HEAD" && gets))
        .collect()
}

/// 405 for a page that exists but not for `method`, naming the methods it takes.
fn method_not_allowed(method: &tiny_http::Method, allowed: &[&str]) -> Reply {
    let list = allowed.join(", ");
    let mut reply = Reply::error(
        405,
        &format!(
            "this page does not take {method} requests, only {list}: open it from the app's \
             links and forms"
        ),
    );
    reply.headers.push(("Allow".into(), list));
    reply
}

/// 400 for a form body that does not decode.
fn bad_form(e: &anyhow::Error) -> Reply {
    Reply::error(
        400,
        &format!(
            "the form did not decode ({e:#}): nothing was saved; reload the page and send it again"
        ),
    )
}

/// `answer` with the body's form fields. Not UTF-8 is refused, never patched with
/// replacement characters: a label would be saved with them in place of what was typed.
fn with_form(
    body: &[u8],
    answer: impl FnOnce(&HashMap<String, String>) -> Result<Reply>,
) -> Result<Reply> {
    let form = std::str::from_utf8(body)
        .map_err(|e| anyhow::anyhow!("the body is not UTF-8 text ({e})"))
        .and_then(http::parse_form);
    match form {
        Ok(form) => answer(&form),
        Err(e) => Ok(bad_form(&e)),
    }
}

pub(crate) fn route(
    app: &App,
    method: &tiny_http::Method,
    target: &Target,
    body: &[u8],
) -> Result<Reply> {
    use tiny_http::Method::{Get, Head};
    let seg: Vec<&str> = target.segments.iter().map(String::as_str).collect();
    // HEAD is answered as GET; the server sends the headers only.
    let method = if *method == Head { &Get } else { method };
    let found = ROUTES
        .iter()
        .filter(|r| r.method == method.as_str())
        .find_map(|r| matches(r.path, &seg).map(|args| (r.handler, args)));
    match found {
        Some((handler, args)) => handler(app, &Request { target, args, body }),
        None => Ok(match methods_of(&seg).as_slice() {
            [] => Reply::error(404, "no such page"),
            allowed => method_not_allowed(method, allowed),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry shadowed by an earlier one of the same method would never answer, yet its
    /// path would still be named in `Allow`.
    #[test]
    fn every_route_answers_a_path_of_its_own_pattern() {
        for (i, r) in ROUTES.iter().enumerate() {
            let seg: Vec<&str> = r
                .path
                .iter()
                .map(|s| if *s == "*" { "x" } else { s })
                .collect();
            let first = ROUTES
                .iter()
                .position(|o| o.method == r.method && matches(o.path, &seg).is_some());
            assert_eq!(first, Some(i), "{} /{}", r.method, r.path.join("/"));
        }
    }

    #[test]
    fn a_path_takes_the_methods_of_every_entry_that_matches_it() {
        assert_eq!(methods_of(&["launch"]), ["GET", "HEAD", "POST"]);
        assert_eq!(methods_of(&["upload"]), ["POST"]);
        assert_eq!(
            methods_of(&["exp", "e", "random", "seed-0"]),
            ["GET", "HEAD"]
        );
        assert!(methods_of(&["no", "such", "page"]).is_empty());
        assert_eq!(
            matches(
                &["exp", "*", "*", "*", "gen", "*"],
                &["exp", "e", "s", "seed-0", "gen", "2"]
            ),
            Some(["e", "s", "seed-0", "2"])
        );
    }
}
