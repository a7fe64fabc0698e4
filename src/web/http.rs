//! Requests and replies as the pages see them: decoded path segments, query and form fields,
//! and a reply with status, type, body and headers.
use crate::web::safety::percent_decode;
use anyhow::Result;
use std::collections::HashMap;

/// The parts of a request URL the routes use.
#[derive(Debug, PartialEq)]
pub struct Target {
    /// Decoded, non-empty path segments.
    pub segments: Vec<String>,
    pub query: HashMap<String, String>,
}

/// Split `/a/b%20c?x=1&y=z` into decoded segments and query fields.
pub fn parse_target(url: &str) -> Result<Target> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect::<Result<Vec<_>>>()?;
    Ok(Target {
        segments,
        query: parse_form(query)?,
    })
}

/// Decode `application/x-www-form-urlencoded` text; a repeated key keeps its last value.
pub fn parse_form(text: &str) -> Result<HashMap<String, String>> {
    let mut fields = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        fields.insert(percent_decode(k, true)?, percent_decode(v, true)?);
    }
    Ok(fields)
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn html(body: String) -> Self {
        Reply::with_type(200, "text/html; charset=utf-8", body.into_bytes())
    }
    pub fn json(value: &serde_json::Value) -> Self {
        Reply::with_type(200, "application/json", value.to_string().into_bytes())
    }
    pub fn with_type(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Reply {
            status,
            content_type,
            body,
            headers: Vec::new(),
        }
    }
    /// An error page in the app's style: the message (escaped, its lines kept) under a title
    /// for the status, with the app's links to go on from.
    pub fn error(status: u16, message: &str) -> Self {
        let title = match status {
            400 => "Bad request",
            403 => "Not allowed",
            404 => "Not found",
            405 => "Method not allowed",
            409 => "Conflict",
            413 => "Too large",
            500 => "Server error",
            _ => "Error",
        };
        let body = format!(
            "<p class=\"error\" id=\"error\">{}</p>",
            crate::web::html::escape(message)
        );
        Reply::with_type(
            status,
            "text/html; charset=utf-8",
            crate::web::html::page(title, &body, None).into_bytes(),
        )
    }
    /// 303 See Other: after a POST, the browser loads `location` with GET.
    pub fn redirect(location: &str) -> Self {
        let mut r = Reply::with_type(303, "text/plain; charset=utf-8", Vec::new());
        r.headers.push(("Location".into(), location.into()));
        r
    }
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_decode_segments_and_query() {
        let t = parse_target("/exp/my%20exp/seed-0?i=2&note=a+b%26c").unwrap();
        assert_eq!(t.segments, ["exp", "my exp", "seed-0"]);
        assert_eq!(t.query["i"], "2");
        assert_eq!(t.query["note"], "a b&c");
        assert!(parse_target("/%zz").is_err());
        assert_eq!(parse_target("/").unwrap().segments, Vec::<String>::new());
    }

    /// Error pages were bare text/plain: no way on from a cell that was removed but the
    /// browser's Back button, and a stack of lines unlike every other page.
    #[test]
    fn errors_are_pages_in_the_app_style_with_the_message_escaped() {
        let reply = Reply::error(404, "no such cell <b>x</b>\n(second line)");
        assert_eq!(reply.status, 404);
        assert_eq!(reply.content_type, "text/html; charset=utf-8");
        let body = String::from_utf8(reply.body).unwrap();
        assert!(body.contains("<h1>Not found</h1>"), "{body}");
        assert!(
            body.contains("<nav><a href=\"/\">Experiments</a>"),
            "{body}"
        );
        assert!(
            body.contains(
                "<p class=\"error\" id=\"error\">no such cell &lt;b&gt;x&lt;/b&gt;\n(second line)</p>"
            ),
            "{body}"
        );
    }
}
