//! The host checks every answer: exactly min(k, |pool|) distinct ids, all from the pool.
use anyhow::{bail, Result};
use std::collections::{HashMap, HashSet};

/// What a query step handed to the script, to check its answer against.
pub struct Expected<'a> {
    /// The pool ids, in order.
    pub pool_ids: &'a [u64],
    /// Ids already labeled (not selectable again).
    pub labeled_ids: &'a HashSet<u64>,
    pub k: usize,
}

/// Fail with the first violation found. `who` names the script: "PATH: strategy NAME".
pub fn check_selection(who: &str, ids: &[u64], expected: &Expected) -> Result<()> {
    let pool_ids = expected.pool_ids;
    let k = expected.k;
    let want = k.min(pool_ids.len());
    let pool: HashSet<u64> = pool_ids.iter().copied().collect();
    let mut first_at: HashMap<u64, usize> = HashMap::with_capacity(ids.len());
    for (pos, id) in ids.iter().enumerate() {
        if !pool.contains(id) {
            let why = if expected.labeled_ids.contains(id) {
                "which is already labeled: select from ctx.pool only (ctx.labeled holds the \
                 examples labeled so far)"
                    .to_string()
            } else if (*id as usize) < pool_ids.len() {
                format!(
                    "which is not in the pool of {} items but is a valid position in it: return \
                     ids from ctx.pool.ids(), not positions (map positions with \
                     ctx.pool.ids().take(positions))",
                    pool_ids.len()
                )
            } else {
                format!(
                    "which is neither in the pool of {} items nor labeled: return ids from \
                     ctx.pool.ids()",
                    pool_ids.len()
                )
            };
            bail!("{who} returned id {id} (position {pos} of its answer), {why}");
        }
        if let Some(first) = first_at.insert(*id, pos) {
            bail!(
                "{who} returned id {id} more than once (at positions {first} and {pos} of its \
                 answer): return each id once; when combining picks, drop the ones already \
                 chosen with `ids.except(chosen)`"
            );
        }
    }
    if ids.len() != want {
        bail!(
            "{who} returned {} ids, expected exactly {want} (k = {k}, pool = {})",
            ids.len(),
            pool_ids.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ids: &[u64], k: usize) -> String {
        let labeled: HashSet<u64> = [20, 21].into_iter().collect();
        let expected = Expected {
            pool_ids: &[10, 11, 12, 13],
            labeled_ids: &labeled,
            k,
        };
        match check_selection("s/x.rhai: strategy x", ids, &expected) {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_exact_answers_and_names_each_violation() {
        assert_eq!(check(&[12, 10], 2), "ok");
        assert_eq!(check(&[13, 12, 11, 10], 9), "ok");
        let dup = check(&[12, 12], 2);
        assert!(dup.contains("id 12 more than once"), "{dup}");
        let out = check(&[1, 12], 2);
        assert!(
            out.contains("id 1 ") && out.contains("not in the pool"),
            "{out}"
        );
        let few = check(&[12], 2);
        assert!(few.contains("returned 1 ids, expected exactly 2"), "{few}");
    }

    #[test]
    fn each_violation_names_the_script_file_and_what_to_do() {
        let dup = check(&[12, 12], 2);
        assert!(
            dup.starts_with("s/x.rhai: strategy x returned id 12"),
            "{dup}"
        );
        assert!(dup.contains("positions 0 and 1"), "{dup}");
        assert!(dup.contains("return each id once"), "{dup}");
        let few = check(&[12], 2);
        assert!(few.starts_with("s/x.rhai: "), "{few}");
    }

    #[test]
    fn a_labeled_id_is_called_labeled_not_a_position() {
        let m = check(&[20, 12], 2);
        assert!(m.contains("id 20") && m.contains("already labeled"), "{m}");
        assert!(m.contains("select from ctx.pool only"), "{m}");
        assert!(!m.contains("not positions"), "{m}");
        let m = check(&[1, 12], 2);
        assert!(m.contains("not positions"), "a small id is a position: {m}");
        let m = check(&[999, 12], 2);
        assert!(m.contains("neither in the pool"), "{m}");
        assert!(!m.contains("not positions"), "{m}");
    }
}
