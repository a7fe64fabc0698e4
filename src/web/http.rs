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
    /// A plain-text error page; the message is escaped by being plain text.
    pub fn error(status: u16, message: &str) -> Self {
        Reply::with_type(
            status,
            "text/plain; charset=utf-8",
            message.as_bytes().to_vec(),
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
}
