//! Progress bars for long work. Hidden when stderr is not a terminal or `LAB_QUIET` is set,
//! so tests and CI logs stay quiet.
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar with counts, rate and ETA: `prefix [=====>   ] 12/40 (3.1/s, ETA 9s) message`.
pub fn bar(len: u64, prefix: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if std::env::var_os("LAB_QUIET").is_some() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{bar:30.cyan/blue}] {pos}/{len} ({per_sec}, ETA {eta}) {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    pb.set_prefix(prefix.to_string());
    pb
}
