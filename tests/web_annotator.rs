//! What a person labelling in a browser sees and saves, in headless Chromium: dataset texts
//! with markup, Unicode, tabs, runs of spaces and newlines are shown as written (never as
//! markup), a label typed with newlines and non-ASCII letters is saved exactly, a very long
//! word does not push the page sideways, and model outputs keep their lines and say when
//! they are empty. No run is started: the cell's files are written as a run leaves them.
mod web_support;
use std::time::Duration;
use web_support::cell::{pending_item, waiting_cell, write_pending};
use web_support::serve::Serve;
use web_support::webdriver::{Browser, Session};

/// Markup a page must show as text; `window.pwned` is set if any of it ever runs.
const HOSTILE: &str = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\"></textarea><b>bold?</b> & &amp;";

#[test]
fn texts_show_and_save_as_written_in_chromium() {
    let serve = Serve::loopback();
    let cell = serve.results.join("exp/random/seed-0");
    std::fs::create_dir_all(cell.join("generations")).unwrap();
    let input = format!("Dear Ünïcødé 中文 team,\n\n  indented\tand  two spaces\n{HOSTILE}\nBest");
    let system = format!("Be brief {HOSTILE}\nsecond rule");
    let long_word = "x".repeat(6000);
    let long_input = format!("start {long_word} end");
    write_pending(
        &cell,
        &[
            pending_item(7, &input, &system),
            pending_item(8, &long_input, ""),
        ],
    );
    let generation = |id: u64, prediction: &str| {
        serde_json::json!({"id": id, "prediction": prediction,
            "references": [format!("ref {id}\nline two {HOSTILE}")], "metrics": {"rouge1": 0.25}})
        .to_string()
    };
    let prediction = format!("first line\n  second {HOSTILE}");
    std::fs::write(
        cell.join("generations/iter-0.jsonl"),
        [
            generation(1, &prediction),
            generation(2, ""),
            generation(3, &long_word),
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();

    let s = Browser::open();
    let no_markup_ran = |s: &Session, page: &str| {
        let v = s
            .execute(
                "return [typeof window.pwned, document.querySelectorAll('main b, main img, \
                 main script').length, document.querySelectorAll('script').length];",
            )
            .unwrap();
        assert_eq!(v, serde_json::json!(["undefined", 0, 1]), "{page}");
    };
    let fits_the_window = |s: &Session, page: &str| {
        let v = s
            .execute("return document.documentElement.scrollWidth <= window.innerWidth;")
            .unwrap();
        assert_eq!(
            v,
            serde_json::json!(true),
            "{page} is wider than the window"
        );
    };

    let annotate = serve.annotate_url("exp/random/seed-0");
    s.goto(&format!("{annotate}?i=0")).unwrap();
    // (WebDriver reports a shown tab as a space.)
    assert_eq!(
        s.find("#input").unwrap().text().unwrap(),
        input.replace('\t', " ")
    );
    assert_eq!(s.find("#system-prompt").unwrap().text().unwrap(), system);
    no_markup_ran(&s, "the annotation page");

    // Typed with a newline and letters beyond ASCII, saved exactly (the browser sends CRLF).
    let typed = "Überschrift: 中文 — ok\nzweite Zeile  mit Leerzeichen";
    s.find("#output").unwrap().set(typed).unwrap();
    s.find("#save").unwrap().click().unwrap();
    s.wait_for("the next item", Duration::from_secs(10), |s| {
        s.find("#progress")
            .and_then(|p| p.text())
            .is_ok_and(|t| t == "1 / 2 labeled")
    })
    .unwrap();
    let saved = std::fs::read_to_string(cell.join("annotation/labels.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(saved.trim()).unwrap();
    assert_eq!(line["output"], typed, "{saved}");
    // The long item wraps inside its box rather than widening the page.
    assert_eq!(
        s.find("#input").unwrap().text().unwrap().len(),
        long_input.len()
    );
    fits_the_window(&s, "the annotation page with a 6,000-character word");
    // Back: the saved label is shown as saved, newline and all.
    s.find("#back").unwrap().click().unwrap();
    s.wait_for("the first item again", Duration::from_secs(10), |s| {
        s.find("#output")
            .and_then(|o| o.property("value"))
            .is_ok_and(|v| v == typed)
    })
    .unwrap();

    // Test generations: lines kept, markup shown as text, an empty output said to be empty.
    s.goto(&format!("{}/gen/0", serve.cell_url("exp/random/seed-0")))
        .unwrap();
    let cell_text = |row: usize, col: usize| {
        s.find(&format!(
            "#generations tbody tr:nth-child({row}) td:nth-child({col})"
        ))
        .unwrap()
        .text()
        .unwrap()
    };
    assert_eq!(cell_text(1, 3), prediction);
    assert_eq!(cell_text(1, 4), format!("ref 1\nline two {HOSTILE}"));
    assert_eq!(cell_text(2, 3), "(empty)");
    assert_eq!(cell_text(1, 5), "0.2500");
    no_markup_ran(&s, "the generations page");
    fits_the_window(&s, "the generations page with a 6,000-character output");
}

/// A label larger than one save may send is stopped by the page, with the text still in the
/// box. Sent anyway (a page without that check), the server's answer says nothing was saved
/// and leads back to the text; before, it was a bare "request body too large".
#[test]
fn a_label_too_large_to_save_keeps_its_text_in_chromium() {
    let serve = Serve::loopback();
    let cell = waiting_cell(&serve.results);
    let labels = cell.join("annotation/labels.jsonl");
    let s = Browser::open();
    let page = format!("{}?i=0", serve.annotate_url("exp/random/seed-0"));
    s.goto(&page).unwrap();
    // Typing 1.1 million characters would take minutes: the text is put in the box directly.
    s.execute("document.getElementById('output').value = 'x'.repeat(1100000) + ' end';")
        .unwrap();
    let kept = |s: &Session| {
        s.execute("return document.getElementById('output').value.length;")
            .is_ok_and(|v| v == serde_json::json!(1_100_004))
    };
    s.find("#save").unwrap().click().unwrap();
    s.wait_for("the page's notice", Duration::from_secs(10), |s| {
        s.find(".too-large")
            .and_then(|n| n.text())
            .is_ok_and(|t| t.starts_with("Not saved"))
    })
    .unwrap();
    let notice = s.find(".too-large").unwrap().text().unwrap();
    assert!(
        notice.contains("over the 1 MB") && notice.contains("still in the box"),
        "{notice}"
    );
    assert_eq!(s.current_url().unwrap(), page, "the page stays");
    assert!(kept(&s), "the text stays in the box");
    assert!(!labels.exists(), "nothing saved");

    // form.submit() skips the page's check, as a page from before it would.
    s.execute("document.querySelector('form[data-max-bytes]').submit();")
        .unwrap();
    s.wait_for("the server's page", Duration::from_secs(20), |s| {
        s.find("#too-large").is_ok()
    })
    .unwrap();
    let said = s.body_text().unwrap();
    assert!(
        said.contains("larger than 1 MB") && said.contains("not saved"),
        "{said}"
    );
    assert!(!labels.exists(), "nothing saved");
    s.find("#go-back").unwrap().click().unwrap();
    s.wait_for("the text back in its box", Duration::from_secs(10), kept)
        .unwrap();
}
