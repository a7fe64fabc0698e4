use super::Mat;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

type Key = (usize, usize, usize, char, char, bool);
static ON: OnceLock<bool> = OnceLock::new();
static TABLE: Mutex<Option<HashMap<Key, (u64, Duration)>>> = Mutex::new(None);

pub fn enabled() -> bool {
    *ON.get_or_init(|| std::env::var_os("LAB_GEMM_TRACE").is_some())
}

fn order(m: &Mat) -> char {
    if m.col_stride == 1 {
        'R'
    } else if m.row_stride == 1 {
        'C'
    } else {
        'S'
    }
}

pub(super) fn record(m: usize, n: usize, k: usize, a: &Mat, b: &Mat, acc: bool, d: Duration) {
    add((m, n, k, order(a), order(b), acc), d);
}

/// A product whose `b` was read as prepacked panels (shown as `P`).
pub fn record_panels(m: usize, n: usize, k: usize, acc: bool, d: Duration) {
    add((m, n, k, 'R', 'P', acc), d);
}

fn add(key: Key, d: Duration) {
    if let Ok(mut t) = TABLE.lock() {
        let e = t.get_or_insert_with(HashMap::new).entry(key).or_default();
        e.0 += 1;
        e.1 += d;
    }
}

/// Forget the products timed so far.
pub fn clear() {
    if let Ok(mut t) = TABLE.lock() {
        *t = None;
    }
}

/// The table so far, slowest total first, then cleared.
pub fn report() -> String {
    let Ok(mut t) = TABLE.lock() else {
        return String::new();
    };
    let mut rows: Vec<_> = t.take().unwrap_or_default().into_iter().collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1 .1));
    let total: f64 = rows.iter().map(|r| r.1 .1.as_secs_f64()).sum();
    let mut out = format!("gemm trace: {total:.3} s in products\n     m      n      k  a b acc  calls   seconds  GFLOP/s\n");
    for ((m, n, k, a, b, acc), (calls, d)) in rows {
        let s = d.as_secs_f64();
        let gf = 2.0 * (m * n * k) as f64 * calls as f64 / s / 1e9;
        out += &format!(
            "{m:>6} {n:>6} {k:>6}  {a} {b} {:>3} {calls:>6} {s:>9.3} {gf:>8.1}\n",
            if acc { "+=" } else { "" }
        );
    }
    out
}
