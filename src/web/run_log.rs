//! An experiment's run log: the page shows its last lines only (it reloads while the run
//! writes, and a long run's log reaches many megabytes), and the whole file is served raw.
use crate::web::html::{escape, link, page, url_encode};
use crate::web::http::Reply;
use crate::web::results::fingerprint;
use crate::web::safety::{megabytes, safe_join};
use crate::web::App;
use anyhow::{Context, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The most of a log's end the page shows.
pub const TAIL_BYTES: u64 = 64 * 1024;

/// The end of a log file, read without reading the rest.
#[derive(Debug, PartialEq)]
pub struct LogTail {
    /// Whole lines from the end, at most `TAIL_BYTES` of them.
    pub text: String,
    /// The file's size when read.
    pub size: u64,
    /// Whether lines before `text` were left out.
    pub omitted: bool,
}

/// The last `max` bytes of `path`, cut to start at a whole line: only that much is read.
pub fn read_tail(path: &Path, max: u64) -> Result<LogTail> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let size = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let start = size.saturating_sub(max);
    file.seek(SeekFrom::Start(start))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    // The run may append meanwhile: what is read past `size` is only `max` more at worst.
    file.by_ref()
        .take(max)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut from = 0;
    if start > 0 {
        // The first line read is a fragment of a longer one, unless the byte before it ended
        // a line; a tail with no newline at all is one long line, shown from where it was cut.
        let mut before = [0u8];
        let after_newline = file
            .seek(SeekFrom::Start(start - 1))
            .and_then(|_| file.read_exact(&mut before))
            .is_ok_and(|_| before[0] == b'\n');
        if !after_newline {
            if let Some(i) = bytes.iter().position(|&b| b == b'\n') {
                from = i + 1;
            }
        }
    }
    Ok(LogTail {
        text: String::from_utf8_lossy(&bytes[from..]).into_owned(),
        size,
        omitted: start > 0 || from > 0,
    })
}

pub fn log_page(app: &App, exp: &str) -> Result<Reply> {
    // First, before the page's contents are read (see `fingerprint`).
    let live = fingerprint(app)?;
    let Ok(path) = safe_join(&app.results, &[exp, "run.log"]) else {
        return Ok(Reply::error(404, "this experiment has no run log"));
    };
    let tail = read_tail(&path, TAIL_BYTES)?;
    let raw = format!("/exp/{}/run.log", url_encode(exp));
    let mut body = String::new();
    if tail.omitted {
        body.push_str(&format!(
            "<p id=\"log-omitted\">The log is {}: only its last lines are shown here, earlier \
             lines are omitted. {}</p>",
            megabytes(tail.size),
            link(&raw, "The whole log (plain text)")
        ));
    } else {
        body.push_str(&format!("<p>{}</p>", link(&raw, "Plain text")));
    }
    body.push_str(&format!("<pre id=\"log\">{}</pre>", escape(&tail.text)));
    Ok(Reply::html(page(
        &format!("{exp}: run log"),
        &body,
        Some(&live),
    )))
}

/// The whole run log as plain text, for reading or saving all of it.
pub fn raw_log(app: &App, exp: &str) -> Result<Reply> {
    let Ok(path) = safe_join(&app.results, &[exp, "run.log"]) else {
        return Ok(Reply::error(404, "this experiment has no run log"));
    };
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Reply::with_type(200, "text/plain; charset=utf-8", bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_starts_at_a_whole_line_and_says_what_was_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.log");
        std::fs::write(&path, "first line\nsecond\nthird\n").unwrap();
        let whole = read_tail(&path, 1000).unwrap();
        assert_eq!(whole.text, "first line\nsecond\nthird\n");
        assert!(!whole.omitted);
        // The last 12 bytes start inside "second": the fragment "econd" is dropped.
        let cut = read_tail(&path, 12).unwrap();
        assert_eq!(cut.text, "third\n");
        assert!(cut.omitted);
        assert_eq!(cut.size, 24);
        // A cut just after a newline keeps the line that starts there.
        let at_line = read_tail(&path, 13).unwrap();
        assert_eq!(at_line.text, "second\nthird\n");
        assert!(at_line.omitted);
    }

    #[test]
    fn a_tail_cut_inside_a_character_is_still_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.log");
        std::fs::write(&path, "ééééé").unwrap();
        let tail = read_tail(&path, 3).unwrap();
        assert!(tail.omitted);
        assert!(tail.text.ends_with('é'), "{:?}", tail.text);
    }
}
