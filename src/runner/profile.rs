//! `--profile`: wall-clock seconds per phase of the AL loop, per iteration and in total.
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Profile {
    totals: Mutex<BTreeMap<String, (f64, usize)>>,
}

impl Profile {
    pub fn add(&self, phase: &str, seconds: f64) {
        let mut t = self.totals.lock().expect("profile lock");
        let e = t.entry(phase.to_string()).or_insert((0.0, 0));
        e.0 += seconds;
        e.1 += 1;
    }

    /// A table: phase, total seconds, calls, mean seconds per call, share of the total.
    pub fn table(&self) -> String {
        let t = self.totals.lock().expect("profile lock");
        let all: f64 = t.values().map(|(s, _)| s).sum();
        let mut out = format!(
            "{:<12} {:>10} {:>7} {:>10} {:>7}\n",
            "phase", "seconds", "calls", "per call", "share"
        );
        for (phase, (s, n)) in t.iter() {
            out.push_str(&format!(
                "{:<12} {:>10.2} {:>7} {:>10.3} {:>6.1}%\n",
                phase,
                s,
                n,
                s / (*n).max(1) as f64,
                100.0 * s / all.max(1e-9)
            ));
        }
        out
    }
}
