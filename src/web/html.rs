//! HTML building blocks: escaping every user string, the page frame, small tables.

/// Escape text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The page of one cell: `/exp/EXP/STRATEGY/SEED`, each part URL-encoded.
pub fn cell_url(exp: &str, strategy: &str, seed: &str) -> String {
    format!(
        "/exp/{}/{}/{}",
        url_encode(exp),
        url_encode(strategy),
        url_encode(seed)
    )
}

/// Percent-encode one path segment or query value for a link.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const STYLE: &str = include_str!("../../assets/web/style.css");

/// A whole page. `title` is escaped here; `body` must already be HTML. `live` is the
/// fingerprint of what the page shows: the page script reloads it when the results change.
pub fn page(title: &str, body: &str, live: Option<&str>) -> String {
    let live_attr = live
        .map(|f| format!(" data-live=\"{}\"", escape(f)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · atgen-lab</title><style>{STYLE}</style>\
         <script src=\"/static/app.js\" defer></script></head>\
         <body{live_attr}><nav><a href=\"/\">Experiments</a> <a href=\"/launch\">Launch</a></nav>\
         <main><h1>{t}</h1>\n{body}\n</main></body></html>\n",
        t = escape(title)
    )
}

/// A table from a header and rows of already-escaped cell HTML.
pub fn table(id: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table id=\"{}\"><thead><tr>", escape(id));
    for h in header {
        out.push_str(&format!("<th>{}</th>", escape(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(&format!("<td>{cell}</td>"));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A table cell's text (a dataset input, a label, a model output) as written: its newlines
/// and spaces kept, long words wrapped, and an empty text said to be empty rather than left
/// as a blank that looks like a rendering fault.
pub fn text_cell(text: &str) -> String {
    if text.is_empty() {
        "<div class=\"cell-text empty\">(empty)</div>".to_string()
    } else {
        format!("<div class=\"cell-text\">{}</div>", escape(text))
    }
}

/// A table cell's number as a reader takes it in: four significant digits, the exact text
/// kept in its tooltip. Float sums reach the CSV files as `1.1656322239999999`, noise that
/// hides the digits that matter. Text that is no number, or is already as short, is shown as
/// written.
pub fn number_cell(text: &str) -> String {
    let shown = text
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v != 0.0)
        .map(|v| {
            let magnitude = v.abs().log10().floor() as i32;
            let decimals = (3 - magnitude).clamp(0, 15) as usize;
            format!("{v:.decimals$}")
        })
        .filter(|short| short.len() < text.trim().len());
    match shown {
        Some(short) => format!("<span title=\"{}\">{}</span>", escape(text), escape(&short)),
        None => escape(text),
    }
}

/// A link whose target and text are escaped.
pub fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", escape(href), escape(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'q'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;"
        );
        assert_eq!(escape("plain ü"), "plain ü");
    }

    #[test]
    fn page_escapes_title_and_live_fingerprint() {
        let p = page("<b>x</b>", "<p>body</p>", Some("\"><script>"));
        assert!(p.contains("<h1>&lt;b&gt;x&lt;/b&gt;</h1>"));
        assert!(p.contains("data-live=\"&quot;&gt;&lt;script&gt;\""));
        assert!(!p.contains("<b>x</b>"));
    }

    #[test]
    fn text_cells_escape_and_mark_empty_texts() {
        assert_eq!(
            text_cell("a\n<b>"),
            "<div class=\"cell-text\">a\n&lt;b&gt;</div>"
        );
        assert!(text_cell("").contains("(empty)"));
    }

    #[test]
    fn long_numbers_show_four_significant_digits_and_keep_the_exact_text() {
        assert_eq!(
            number_cell("1.1656322239999999"),
            "<span title=\"1.1656322239999999\">1.166</span>"
        );
        assert!(number_cell("0.456789").contains(">0.4568<"));
        // Small costs keep their digits rather than becoming 0.0000.
        assert!(number_cell("0.0000123456").contains(">0.00001235<"));
        assert!(number_cell("1234.5678").contains(">1235<"));
        // Short numbers and text are shown as written.
        for text in ["0", "0.5", "12", "1e-5", "rouge1", "<b>"] {
            assert_eq!(number_cell(text), escape(text), "{text}");
        }
    }

    #[test]
    fn url_encoding_keeps_only_unreserved_bytes() {
        assert_eq!(url_encode("a b/../c?d"), "a%20b%2F..%2Fc%3Fd");
        assert_eq!(
            link("/x?a=\"", "<t>"),
            "<a href=\"/x?a=&quot;\">&lt;t&gt;</a>"
        );
    }
}
