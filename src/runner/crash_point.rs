//! Named moments around the runner's durable writes, where a process started with
//! `LAB_CRASH_AT=<point>[:<nth>]` aborts the nth time (the first by default) it passes
//! `<point>`. It exists for the crash-consistency tests (tests/runner_crash_points.rs): an
//! abort runs no destructors and flushes nothing, as a SIGKILL or a power-less machine
//! would leave the results, and the rerun must resume to what an uninterrupted run writes.
//! Unset, a point costs one check of a value read once.
//!
//! The points, in the order one run passes them:
//! - `fresh-cell-moved`: `--fresh` moved the cell folder aside, not yet deleted it.
//! - `resume-trimmed`: a resumed cell dropped what its state.json does not record.
//! - `restop-written`: changed stopping criteria re-opened or closed the cell in state.json,
//!   before config.toml records them.
//! - `config-written`: the cell's config.toml is written; no iteration has started.
//! - then per iteration:
//!   - `selection-made`: the strategy chose (the embedding cache is flushed), nothing labelled.
//!   - `labels-bought`: the labeller answered (an LLM's label cache and the cell's
//!     `llm_spend.jsonl` hold what it bought), nothing trained.
//!   - `unlabelled-spend-written`: a failed labelling's spend is recorded in state.json.
//!   - `adapter-staged`: the new adapter is in `adapters/iter-<t>.tmp`, not yet swapped in.
//!   - `adapter-saved`: `adapters/iter-<t>` is in place; state.json still names the previous.
//!   - `generations-written`, `curve-written`, `selected-written`: each file of the
//!     iteration, in that order, before state.json commits it.
//!   - `state-written`: the commit; older adapters are not yet removed.
//!   - `adapters-pruned`: only the committed adapter is left.
//! - `report-started`, `report-written`: every cell is done; the report before and after.
//!
//! Writes without a point of their own: the cell's lock file (`seed-<n>.lock`, created once,
//! never written) and the labeller's appended logs (label cache, `llm_spend.jsonl`), whose
//! torn last line the labeller repairs (tests/labeller_kill_resume.rs kills mid-request); a
//! human labeller's `annotation/labels.jsonl` is appended by `lab serve`, not the run
//! (tests/runner_crash_human.rs kills the run while a batch waits).
//!
//! And `staged:<file name>` inside every atomic write (`util::atomic_write`: state.json,
//! curve.csv, an adapter's files, a human labeller's `pending.json`, the pool-embedding cache
//! `embeddings-<key>.bin` beside the models, report.md, …), after the temporary file is
//! written and before it replaces the file.
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

struct Target {
    point: String,
    nth: usize,
    passed: AtomicUsize,
}

static TARGET: OnceLock<Option<Target>> = OnceLock::new();

fn target_from_env() -> Option<Target> {
    std::env::var("LAB_CRASH_AT")
        .ok()
        .map(|v| Target::parse(&v))
}

/// Abort here when `LAB_CRASH_AT` names `point` and this is its nth passing.
pub fn reached(point: &str) {
    if let Some(target) = TARGET.get_or_init(target_from_env) {
        target.pass(point == target.point, point);
    }
}

/// `reached("staged:<file name>")` for the atomic write of `path`, between its temporary
/// file and the rename: where a kill leaves a stray temporary beside an intact old file.
pub fn staged(path: &Path) {
    if let Some(target) = TARGET.get_or_init(target_from_env) {
        let wanted = target.point.strip_prefix("staged:");
        let here = wanted.is_some() && path.file_name().and_then(|n| n.to_str()) == wanted;
        target.pass(here, &target.point);
    }
}

impl Target {
    /// `<point>[:<nth>]`; `staged:state.json` has a colon but no count.
    fn parse(value: &str) -> Target {
        let (point, nth) = match value.rsplit_once(':') {
            Some((point, nth)) => match nth.parse() {
                Ok(nth) => (point, nth),
                Err(_) => (value, 1),
            },
            None => (value, 1),
        };
        Target {
            point: point.to_string(),
            nth,
            passed: AtomicUsize::new(0),
        }
    }

    fn pass(&self, here: bool, point: &str) {
        if here && self.passed.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            // stderr is unbuffered: the test reads this to know the crash came where it asked.
            eprintln!("LAB_CRASH_AT: aborting at {point} (passing {})", self.nth);
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_is_named_with_or_without_its_count() {
        let parsed = |v: &str| {
            let t = Target::parse(v);
            (t.point, t.nth)
        };
        assert_eq!(parsed("state-written"), ("state-written".into(), 1));
        assert_eq!(parsed("state-written:3"), ("state-written".into(), 3));
        assert_eq!(parsed("staged:state.json"), ("staged:state.json".into(), 1));
        assert_eq!(
            parsed("staged:state.json:2"),
            ("staged:state.json".into(), 2)
        );
    }
}
