//! Request bodies: read up to a limit, and the answer to one over it. Each route that takes a
//! body says, in the app's style, what was not done and what to do instead.
use crate::web::html::{escape, link, page};
use crate::web::http::{Reply, Target};
use crate::web::safety::{megabytes, MAX_FORM_BYTES, MAX_UPLOAD_BYTES};
use crate::web::{annotate, upload};
use std::io::Read;

/// The most a request to `target` may send: an upload's file, or a form.
pub fn limit_for(target: &Target) -> u64 {
    if target.segments.first().map(String::as_str) == Some("upload") {
        MAX_UPLOAD_BYTES
    } else {
        MAX_FORM_BYTES
    }
}

/// Why a request body was not read.
#[derive(Debug)]
pub enum BodyRefused {
    /// Longer than the limit (declared or sent).
    TooLarge,
    Unreadable(std::io::Error),
}

/// The request body, unless it is longer than `limit` bytes.
pub fn read_body(
    reader: &mut dyn Read,
    content_length: Option<u64>,
    limit: u64,
) -> std::result::Result<Vec<u8>, BodyRefused> {
    if content_length.is_some_and(|n| n > limit) {
        return Err(BodyRefused::TooLarge);
    }
    let mut body = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(BodyRefused::Unreadable)?;
    if body.len() as u64 > limit {
        return Err(BodyRefused::TooLarge);
    }
    Ok(body)
}

/// 413 for a body over `limit`: a page naming the limit, what was not done and what to do
/// instead. The launch form's upload script asks for JSON (`wants_json`): it shows the
/// message beside the file it chose.
pub fn too_large(
    method: &tiny_http::Method,
    target: &Target,
    limit: u64,
    wants_json: bool,
) -> Reply {
    let seg: Vec<&str> = target.segments.iter().map(String::as_str).collect();
    match (method, seg.as_slice()) {
        (tiny_http::Method::Post, ["exp", exp, strategy, seed, "annotate"]) => {
            annotate::too_large_page(exp, strategy, seed, limit)
        }
        (tiny_http::Method::Post, ["launch"]) => launch_too_large(limit),
        (tiny_http::Method::Post, ["upload"]) if wants_json => {
            Reply::json(&serde_json::json!({ "error": upload::too_large_message(limit) }))
                .status(413)
        }
        (tiny_http::Method::Post, ["upload"]) => upload_too_large(limit),
        _ => {
            let body = format!(
                "<p id=\"too-large\" class=\"notice\">This request sent more than {mb}, the \
                 most the server reads, so it was not read and <strong>nothing was \
                 done</strong>.</p><p>The pages of this app send less: go back and use them, \
                 or {home}.</p>",
                mb = escape(&megabytes(limit)),
                home = link("/", "start from the experiments"),
            );
            Reply::html(page("Request too large", &body, None)).status(413)
        }
    }
}

/// The launch form over the limit: only its Advanced TOML box can grow that large.
fn launch_too_large(limit: u64) -> Reply {
    let body = format!(
        "<p id=\"too-large\" class=\"notice\">This form is larger than {mb}, the most the \
         server reads from one form, so <strong>no run was started</strong> and no experiment \
         file was written.</p>\
         <p>What you entered is still on the page you came from: go back with your browser's \
         Back button <button id=\"go-back\" type=\"button\" hidden>← Back to the form</button> \
         and shorten the Advanced TOML box, the one field that grows this large. An experiment \
         this long is better kept in a file: write it as an experiment TOML file and run \
         <code>lab run FILE</code> from the command line (with <code>results_dir</code> set to \
         the folder this server shows, its results appear here).</p>\
         <p>{fresh} opens an empty form.</p>",
        mb = escape(&megabytes(limit)),
        fresh = link("/launch", "The launch form"),
    );
    Reply::html(page("Launch an experiment: not launched", &body, None)).status(413)
}

/// An upload over the limit, as a page (the launch form's script asks for JSON instead).
fn upload_too_large(limit: u64) -> Reply {
    let body = format!(
        "<p id=\"too-large\" class=\"notice lines\">{message}</p><p>{form}</p>",
        message = escape(&upload::too_large_message(limit)),
        form = link("/launch", "Back to the launch form"),
    );
    Reply::html(page("Upload: not uploaded", &body, None)).status(413)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::http::parse_target;

    fn html_413(target: &str, limit: u64) -> String {
        let reply = too_large(
            &tiny_http::Method::Post,
            &parse_target(target).unwrap(),
            limit,
            false,
        );
        assert_eq!(reply.status, 413, "{target}");
        assert_eq!(reply.content_type, "text/html; charset=utf-8", "{target}");
        String::from_utf8(reply.body).unwrap()
    }

    #[test]
    fn bodies_over_the_limit_are_refused() {
        let big = vec![b'x'; 2048];
        let declared = read_body(&mut &big[..], Some(2048), 1024).unwrap_err();
        assert!(matches!(declared, BodyRefused::TooLarge), "{declared:?}");
        // A body longer than it declared (or undeclared) is cut at the limit and refused.
        let undeclared = read_body(&mut &big[..], None, 1024).unwrap_err();
        assert!(
            matches!(undeclared, BodyRefused::TooLarge),
            "{undeclared:?}"
        );
        assert_eq!(
            read_body(&mut &big[..], Some(2048), 4096).unwrap().len(),
            2048
        );
        assert_eq!(
            limit_for(&parse_target("/upload?x=1").unwrap()),
            MAX_UPLOAD_BYTES
        );
        assert_eq!(limit_for(&parse_target("/launch").unwrap()), MAX_FORM_BYTES);
    }

    /// A label over the limit used to get a plain-text "request body too large" with no way
    /// back to the page, nor word of whether it was saved.
    #[test]
    fn a_label_over_the_limit_gets_a_page_saying_nothing_was_saved_and_how_to_go_back() {
        let body = html_413("/exp/my%20exp/random/seed-0/annotate", 1024 * 1024);
        for said in [
            "larger than 1 MB",
            "<strong>not saved</strong>",
            "Back button",
            "href=\"/exp/my%20exp/random/seed-0/annotate\"",
            "href=\"/exp/my%20exp/random/seed-0\"",
            "<nav>",
        ] {
            assert!(body.contains(said), "{said:?} missing from {body}");
        }
    }

    /// The launch form and uploads over their limits got a bare text/plain "request body too
    /// large: the limit is 1 MB": no word of whether a run started, nor what to do instead.
    #[test]
    fn a_launch_form_over_the_limit_says_no_run_started_and_what_to_do() {
        let body = html_413("/launch", MAX_FORM_BYTES);
        for said in [
            "larger than 1 MB",
            "<strong>no run was started</strong>",
            "no experiment file was written",
            "id=\"go-back\"",
            "shorten the Advanced TOML box",
            "<code>lab run FILE</code>",
            "href=\"/launch\"",
            "<nav>",
        ] {
            assert!(body.contains(said), "{said:?} missing from {body}");
        }
    }

    #[test]
    fn an_upload_over_the_limit_says_nothing_was_stored_and_how_to_use_the_file_anyway() {
        let body = html_413("/upload?filename=big.csv", MAX_UPLOAD_BYTES);
        for said in [
            "larger than 20 MB",
            "not uploaded",
            "nothing was stored",
            "Advanced TOML box",
            "path = &quot;/full/path/to/file.csv&quot;",
            "lab run FILE",
            "href=\"/launch\"",
            "<nav>",
        ] {
            assert!(body.contains(said), "{said:?} missing from {body}");
        }
        // The launch form's script asks for JSON, and shows the same words.
        let json = too_large(
            &tiny_http::Method::Post,
            &parse_target("/upload?filename=big.csv").unwrap(),
            MAX_UPLOAD_BYTES,
            true,
        );
        assert_eq!((json.status, json.content_type), (413, "application/json"));
        let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(
            value["error"].as_str().unwrap(),
            upload::too_large_message(MAX_UPLOAD_BYTES)
        );
    }

    #[test]
    fn any_other_body_over_the_limit_gets_a_page_too() {
        let body = html_413("/exp/x", MAX_FORM_BYTES);
        assert!(
            body.contains("more than 1 MB") && body.contains("nothing was done"),
            "{body}"
        );
    }
}
