//! The annotation page: one item of the waiting batch at a time (input, system prompt, the
//! model's guess or the saved label as a starting point), saved on every submit, with skip
//! and back, and the batch's progress.
use crate::labeller::human::{
    label_version, read_labels, read_pending, save_label, ItemLabel, SaveOutcome, SavedLabel,
};
use crate::web::browse::cell_dir;
use crate::web::html::{cell_url, escape, link};
use crate::web::http::Reply;
use crate::web::safety::{megabytes, MAX_FORM_BYTES};
use crate::web::App;
use anyhow::Result;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The most time one save may count. A page open longer was left, not worked on; a
/// `shown_ms` further back was not written by the page (0 would count 56 years).
const MAX_LABEL_SECONDS: u128 = 24 * 60 * 60;

/// Seconds from when the page was shown (its `shown_ms`, from this server's clock) to
/// `now`; or why that time is no labelling time, to tell the person instead of recording it.
fn labelling_seconds(shown: Option<&str>, now: u128) -> std::result::Result<f64, String> {
    let Some(text) = shown else {
        return Err(
            "The form has no `shown_ms` field (when the page was shown), so the time \
                    spent on this label is unknown."
                .into(),
        );
    };
    let Ok(shown) = text.trim().parse::<u128>() else {
        return Err(format!(
            "The form has `shown_ms` = {text:?}, not when the page was shown (milliseconds \
             since 1970, a whole number)."
        ));
    };
    let Some(ms) = now.checked_sub(shown) else {
        return Err(format!(
            "The form has `shown_ms` = {shown}, a time later than now ({now}): the page was \
             not shown then."
        ));
    };
    if ms > MAX_LABEL_SECONDS * 1000 {
        return Err(format!(
            "The page was shown {} hours ago, longer than one label can take (24 hours): \
             that time would be recorded as spent labelling this item.",
            ms / 3_600_000
        ));
    }
    Ok(ms as f64 / 1000.0)
}

/// A text box holding `text` exactly: HTML drops one newline right after `<textarea>`, so one
/// is written there and a label that starts with a newline keeps it.
fn textarea(id: &str, name: Option<&str>, text: &str) -> String {
    let attrs = match name {
        Some(n) => format!("name=\"{}\" rows=\"4\"", escape(n)),
        None => "rows=\"4\" readonly".to_string(),
    };
    format!(
        "<textarea id=\"{}\" {attrs}>\n{}</textarea>",
        escape(id),
        escape(text)
    )
}

pub fn page_html(
    title: &str,
    base: &str,
    cell_link: &str,
    batch: &crate::labeller::human::PendingBatch,
    saved: &HashMap<u64, ItemLabel>,
    index: usize,
    message: Option<&str>,
) -> String {
    let n = batch.items.len();
    let item = &batch.items[index];
    let done = batch.labelled_count(saved);
    let prefill = saved
        .get(&item.id)
        .map_or(item.guess.as_str(), |l| l.output.as_str());
    let nav = |i: usize, text: &str, id: &str| {
        format!(
            "<a id=\"{id}\" href=\"{}\">{}</a>",
            escape(&format!("{base}/annotate?i={i}")),
            escape(text)
        )
    };
    let back = if index > 0 {
        nav(index - 1, "← Back", "back")
    } else {
        String::new()
    };
    let skip = if index + 1 < n {
        nav(index + 1, "Skip →", "skip")
    } else {
        nav(0, "Skip → (first)", "skip")
    };
    let system = if item.system_prompt.is_empty() {
        String::new()
    } else {
        format!(
            "<h3>System prompt</h3><div class=\"text\" id=\"system-prompt\">{}</div>",
            escape(&item.system_prompt)
        )
    };
    let status = if saved.contains_key(&item.id) {
        "<span class=\"ok\">saved</span>"
    } else {
        "not labeled yet"
    };
    let body = format!(
        "<p>{cell_link}</p>\
         <p id=\"progress\">{done} / {n} labeled</p>\
         {msg}\
         <p>Item {pos} of {n} (example id {id}) · {status}</p>\
         {system}\
         <h3>Input</h3><div class=\"text\" id=\"input\">{input}</div>\
         <form method=\"post\" action=\"{action}\" data-max-bytes=\"{MAX_FORM_BYTES}\">\
         <input type=\"hidden\" name=\"i\" value=\"{index}\">\
         <input type=\"hidden\" name=\"id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"shown_ms\" value=\"{shown}\">\
         <input type=\"hidden\" name=\"version\" value=\"{version}\">\
         <h3>Output</h3>{textarea}{too_large}\
         <p><button id=\"save\" type=\"submit\">Save</button> {back} {skip}</p></form>",
        msg = message
            .map(|m| format!("<p class=\"notice\">{}</p>", escape(m)))
            .unwrap_or_default(),
        pos = index + 1,
        id = item.id,
        input = escape(&item.input),
        action = escape(&format!("{base}/annotate")),
        shown = now_ms(),
        version = escape(&label_version(saved.get(&item.id))),
        textarea = textarea("output", Some("output"), prefill),
        too_large = too_large_notice(),
    );
    crate::web::html::page(title, &body, None)
}

pub fn page(
    app: &App,
    exp: &str,
    strategy: &str,
    seed: &str,
    query: &HashMap<String, String>,
) -> Result<Reply> {
    // First, before the page's contents are read (see `fingerprint`).
    let live = crate::web::results::fingerprint(app)?;
    let dir = match cell_dir(app, exp, strategy, seed) {
        Ok(d) => d,
        Err(reply) => return Ok(reply),
    };
    let base = cell_url(exp, strategy, seed);
    let cell_link = link(&base, &format!("{exp} · {strategy} · {seed}"));
    let title = format!("Annotate {strategy} · {seed}");
    let Some(batch) = read_pending(&dir)? else {
        let seed_number = crate::report::load::parse_seed_dir(seed).unwrap_or_default();
        let progress = crate::web::results::CellProgress::read(&dir, strategy, seed_number);
        // "The run continues" misled on a cell that is done, or that no run works on.
        let why = if progress.finished {
            format!(
                "This cell is finished ({}): it asks for no more labels.",
                progress.state_text()
            )
        } else if progress.stopped {
            format!(
                "No run works on this cell ({}); it asks for labels again once resumed. This \
                 page refreshes by itself.",
                progress.state_text()
            )
        } else {
            "No batch is waiting for labels: the run continues (or has not asked yet). This \
             page refreshes by itself."
                .to_string()
        };
        let body = format!(
            "<p>{cell_link}</p><p id=\"no-batch\" class=\"notice\">{}</p>",
            escape(&why)
        );
        return Ok(Reply::html(crate::web::html::page(
            &title,
            &body,
            Some(&live),
        )));
    };
    if batch.items.is_empty() {
        return Ok(Reply::error(500, "the waiting batch has no items"));
    }
    let saved = read_labels(&dir)?;
    let index = query
        .get("i")
        .and_then(|i| i.parse::<usize>().ok())
        .unwrap_or_else(|| first_unlabeled(&batch, &saved, 0).unwrap_or(0))
        .min(batch.items.len() - 1);
    let already = query.contains_key("already").then_some(
        "That label was saved already, and the run took the batch it belonged to. This is \
         the batch waiting now.",
    );
    let state = if run_is_stopped_at(&dir) {
        Some(
            "The run is not running: labels saved here are kept, and read when it is resumed \
             (lab run on the same experiment file, without --fresh).",
        )
    } else {
        query.get("saved").map(|_| "Saved.")
    };
    let message = [already, state]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let message = (!message.is_empty()).then_some(message.as_str());
    Ok(Reply::html(page_html(
        &title, &base, &cell_link, &batch, &saved, index, message,
    )))
}

/// True when no `lab run` works on the cell: the batch is left from a run that stopped.
/// Unknown (a file system without locks) counts as running.
fn run_is_stopped_at(cell_dir: &std::path::Path) -> bool {
    crate::runner::persist::run_holds_cell(cell_dir) == Some(false)
}

/// The first item at or after `from` (wrapping) without a label.
fn first_unlabeled(
    batch: &crate::labeller::human::PendingBatch,
    saved: &HashMap<u64, ItemLabel>,
    from: usize,
) -> Option<usize> {
    let n = batch.items.len();
    // `from` comes from the form: reduce it first so no sum can overflow.
    let start = from.checked_rem(n).unwrap_or(0);
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| saved.get(&batch.items[i].id).is_none_or(|l| !l.has_text()))
}

/// Whether `output` is the label saved for example `id`: a form sent again (a double click
/// on Save, a reload that resends it) after the run took the batch it completed is no loss.
fn already_saved(cell_dir: &std::path::Path, id: u64, output: &str) -> bool {
    read_labels(cell_dir)
        .ok()
        .and_then(|saved| saved.get(&id).map(|l| l.output == output))
        .unwrap_or(false)
}

/// The hidden notice the page script fills when a label is over [`MAX_FORM_BYTES`]: it stops
/// the save there, with the text still in the box.
fn too_large_notice() -> &'static str {
    "<p class=\"notice too-large\" hidden data-message=\"Not saved: this label is {size} as \
     sent, over the {limit} one save may send. Your text is still in the box: shorten it and \
     save again.\"></p>"
}

/// 413: a save larger than [`MAX_FORM_BYTES`] (the page script, when it runs, stops those
/// before they are sent). The server does not read such a body, so the text cannot be shown
/// here: the page it came from still holds it.
pub fn too_large_page(exp: &str, strategy: &str, seed: &str, limit: u64) -> Reply {
    let base = cell_url(exp, strategy, seed);
    let body = format!(
        "<p>{cell}</p><p id=\"too-large\" class=\"notice\">This label is larger than {mb}, \
         the most one save may send, so it was <strong>not saved</strong>, and nothing else \
         was either.</p>\
         <p>Your text is still on the page you came from: go back with your browser's Back \
         button <button id=\"go-back\" type=\"button\" hidden>← Back to my text</button>, \
         copy the text somewhere safe, shorten it and save again.</p>\
         <p>{fresh} opens the batch again, without your text.</p>",
        cell = link(&base, &format!("{exp} · {strategy} · {seed}")),
        mb = escape(&megabytes(limit)),
        fresh = link(&format!("{base}/annotate"), "The annotation page"),
    );
    Reply::html(crate::web::html::page(
        &format!("Annotate {strategy} · {seed}: not saved"),
        &body,
        None,
    ))
    .status(413)
}

/// 400 for a form the annotation page did not send.
fn bad_form(what: &str) -> Reply {
    Reply::error(
        400,
        &format!(
            "the annotation form {what}: nothing was saved; reload the annotation page and \
             save again"
        ),
    )
}

/// 409: the label was not saved because no batch is waiting (or not this item); the typed
/// text is shown so it can be copied.
fn not_saved_page(title: &str, cell_link: &str, why: &str, id: u64, output: &str) -> Reply {
    let body = format!(
        "<p>{cell_link}</p><p id=\"not-saved\" class=\"notice\">{why} This change was \
         <strong>not saved</strong>. Your text for example {id} is below, to copy.</p>\
         <h3>Your text (not saved)</h3>{}",
        textarea("unsaved", None, output),
        why = escape(why),
    );
    Reply::html(crate::web::html::page(title, &body, None)).status(409)
}

pub fn save(
    app: &App,
    exp: &str,
    strategy: &str,
    seed: &str,
    form: &HashMap<String, String>,
) -> Result<Reply> {
    let dir = match cell_dir(app, exp, strategy, seed) {
        Ok(d) => d,
        Err(reply) => return Ok(reply),
    };
    let base = cell_url(exp, strategy, seed);
    let cell_link = link(&base, &format!("{exp} · {strategy} · {seed}"));
    let title = format!("Annotate {strategy} · {seed}");
    let (Some(id), Some(index), Some(output)) = (form.get("id"), form.get("i"), form.get("output"))
    else {
        let missing: Vec<&str> = ["id", "i", "output"]
            .into_iter()
            .filter(|k| !form.contains_key(*k))
            .collect();
        return Ok(bad_form(&format!(
            "has no `{}` field",
            missing.join("`, `")
        )));
    };
    let Ok(id) = id.trim().parse::<u64>() else {
        return Ok(bad_form(&format!(
            "has `id` = {id:?}, not an example id (a whole number)"
        )));
    };
    let Ok(index) = index.trim().parse::<usize>() else {
        return Ok(bad_form(&format!(
            "has `i` = {index:?}, not an item position (a whole number)"
        )));
    };
    let output = output.replace("\r\n", "\n");
    let gone = "The run already took this batch (it is no longer waiting for labels), or the \
                cell was reset.";
    let Some(batch) = read_pending(&dir)? else {
        if already_saved(&dir, id, &output) {
            return Ok(Reply::redirect(&format!("{base}?batch=complete")));
        }
        return Ok(not_saved_page(&title, &cell_link, gone, id, &output));
    };
    if !batch.items.iter().any(|i| i.id == id) {
        if already_saved(&dir, id, &output) {
            return Ok(Reply::redirect(&format!("{base}/annotate?already=1")));
        }
        return Ok(not_saved_page(
            &title,
            &cell_link,
            "This example is not in the waiting batch (the run took the batch it was in).",
            id,
            &output,
        ));
    }
    let index = index.min(batch.items.len() - 1);
    if output.trim().is_empty() {
        let saved = read_labels(&dir)?;
        return Ok(Reply::html(page_html(
            &title,
            &base,
            &cell_link,
            &batch,
            &saved,
            index,
            Some("An empty output is not a label: write one, or skip this item."),
        ))
        .status(422));
    }
    let seconds = match labelling_seconds(form.get("shown_ms").map(String::as_str), now_ms()) {
        Ok(seconds) => seconds,
        Err(why) => {
            let why = format!("{why} Reload the annotation page and save again.");
            return Ok(not_saved_page(&title, &cell_link, &why, id, &output).status(400));
        }
    };
    let label = SavedLabel {
        id,
        output,
        seconds,
    };
    // A form from before versions were sent (an old tab) saves as before.
    let expected = form.get("version").map(String::as_str);
    match save_label(&dir, &label, expected)? {
        SaveOutcome::Saved => {}
        SaveOutcome::BatchGone if already_saved(&dir, id, &label.output) => {
            return Ok(Reply::redirect(&format!("{base}?batch=complete")))
        }
        SaveOutcome::BatchGone => {
            return Ok(not_saved_page(&title, &cell_link, gone, id, &label.output))
        }
        SaveOutcome::Changed(now) => {
            return Ok(changed_page(&title, &base, &cell_link, index, &label, now))
        }
    }
    // Saved: whatever happens now, the person is told so (the page shows any trouble).
    let next = match read_labels(&dir) {
        Ok(saved) => first_unlabeled(&batch, &saved, index.saturating_add(1)),
        Err(_) => Some(index),
    };
    Ok(match next {
        Some(i) => Reply::redirect(&format!("{base}/annotate?i={i}&saved=1")),
        // The batch is complete: the run picks it up within its poll interval.
        None => Reply::redirect(&format!("{base}?batch=complete")),
    })
}

/// 409: another tab saved a different label for this item after this one was shown. Both
/// texts are shown; saving again from here replaces the other.
fn changed_page(
    title: &str,
    base: &str,
    cell_link: &str,
    index: usize,
    mine: &SavedLabel,
    now: Option<ItemLabel>,
) -> Reply {
    let saved_now = now.as_ref().map_or("(no label)", |l| l.output.as_str());
    let body = format!(
        "<p>{cell_link}</p><p id=\"changed\" class=\"notice\">Another tab saved a different \
         label for example {id} after this page was shown. Yours was <strong>not \
         saved</strong>: compare the two, then save yours to replace the other, or \
         {reload}.</p>\
         <h3>Saved now</h3>{saved}\
         <form method=\"post\" action=\"{action}\" data-max-bytes=\"{MAX_FORM_BYTES}\">\
         <input type=\"hidden\" name=\"i\" value=\"{index}\">\
         <input type=\"hidden\" name=\"id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"shown_ms\" value=\"{shown}\">\
         <input type=\"hidden\" name=\"version\" value=\"{version}\">\
         <h3>Yours (not saved)</h3>{mine}{too_large}\
         <p><button id=\"save\" type=\"submit\">Save mine instead</button></p></form>",
        id = mine.id,
        reload = link(
            &format!("{base}/annotate?i={index}"),
            "keep the saved one and go back"
        ),
        saved = textarea("saved-now", None, saved_now),
        action = escape(&format!("{base}/annotate")),
        shown = now_ms().saturating_sub((mine.seconds * 1000.0) as u128),
        version = escape(&label_version(now.as_ref())),
        mine = textarea("output", Some("output"), &mine.output),
        too_large = too_large_notice(),
    );
    Reply::html(crate::web::html::page(title, &body, None)).status(409)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labeller::human::{PendingBatch, PendingItem};

    /// An old link to a finished cell's annotation page said "the run continues".
    #[test]
    fn a_finished_cell_says_it_asks_for_no_more_labels() {
        use crate::runner::persist::{write_state, CellPaths};
        use rand::SeedableRng;
        let dir = tempfile::tempdir().unwrap();
        let app = App::new(dir.path(), dir.path(), None).unwrap();
        let paths = CellPaths::new(&app.results, "exp", "random", 0);
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut state = crate::runner::state::CellState::new("exp", "random", 0, &rng);
        std::fs::create_dir_all(&paths.dir).unwrap();
        let shown = |state: &crate::runner::state::CellState| {
            write_state(&paths, state).unwrap();
            let reply = page(&app, "exp", "random", "seed-0", &HashMap::new()).unwrap();
            String::from_utf8(reply.body).unwrap()
        };
        // Unfinished, and no run holds it: stopped.
        state.iterations_done = 1;
        let body = shown(&state);
        assert!(
            body.contains("No run works on this cell") && !body.contains("the run continues"),
            "{body}"
        );
        state.finished = true;
        let body = shown(&state);
        assert!(
            body.contains("This cell is finished") && !body.contains("the run continues"),
            "{body}"
        );
    }

    /// `shown_ms = 0` recorded 56 years of labelling; a missing, negative or future one
    /// recorded 0 seconds.
    #[test]
    fn only_a_plausible_shown_time_gives_a_labelling_time() {
        let now = 1_800_000_000_000;
        assert_eq!(labelling_seconds(Some("1799999995500"), now), Ok(4.5));
        assert_eq!(labelling_seconds(Some(&now.to_string()), now), Ok(0.0));
        let day_ms = MAX_LABEL_SECONDS * 1000;
        assert_eq!(
            labelling_seconds(Some(&(now - day_ms).to_string()), now),
            Ok(86_400.0)
        );
        for (shown, says) in [
            (None, "no `shown_ms` field"),
            (Some("-5"), "not when the page was shown"),
            (Some("soon"), "not when the page was shown"),
            (Some("1800000060000"), "later than now"),
            (Some("0"), "shown 500000 hours ago"),
        ] {
            let why = labelling_seconds(shown, now).expect_err(says);
            assert!(why.contains(says), "{shown:?}: {why}");
        }
        let just_over = (now - day_ms - 1).to_string();
        assert!(labelling_seconds(Some(&just_over), now).is_err());
    }

    #[test]
    fn the_next_item_wraps_around_and_survives_any_index_from_the_form() {
        let item = |id| PendingItem {
            id,
            input: format!("input {id}"),
            system_prompt: String::new(),
            guess: String::new(),
        };
        let batch = PendingBatch {
            items: vec![item(1), item(2), item(3)],
        };
        let mut saved = HashMap::new();
        saved.insert(
            2,
            ItemLabel {
                id: 2,
                output: "done".into(),
                seconds: 1.0,
                edits: 0,
            },
        );
        assert_eq!(first_unlabeled(&batch, &saved, 1), Some(2));
        assert_eq!(first_unlabeled(&batch, &saved, 3), Some(0));
        // A crafted `i` used to overflow `from + k` (a panic in debug builds).
        // usize::MAX = 2^64 − 1 is a multiple of 3: the search starts at item 0.
        assert_eq!(first_unlabeled(&batch, &saved, usize::MAX), Some(0));
        assert_eq!(
            first_unlabeled(&PendingBatch { items: vec![] }, &saved, usize::MAX),
            None
        );
    }
}
