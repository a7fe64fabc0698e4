//! The host checks every answer: exactly min(k, |pool|) distinct ids, all from the pool.
use anyhow::{bail, Result};
use std::collections::HashSet;

/// Fail with the script's name and the first violation found.
pub fn check_selection(script: &str, ids: &[u64], pool_ids: &[u64], k: usize) -> Result<()> {
    let want = k.min(pool_ids.len());
    let pool: HashSet<u64> = pool_ids.iter().copied().collect();
    let mut seen = HashSet::with_capacity(ids.len());
    for (pos, id) in ids.iter().enumerate() {
        if !pool.contains(id) {
            bail!(
                "strategy {script} returned id {id} (position {pos}), which is not in the pool \
                 of {} items: return ids from ctx.pool.ids(), not positions",
                pool_ids.len()
            );
        }
        if !seen.insert(*id) {
            bail!("strategy {script} returned id {id} more than once (again at position {pos})");
        }
    }
    if ids.len() != want {
        bail!(
            "strategy {script} returned {} ids, expected exactly {want} (k = {k}, pool = {})",
            ids.len(),
            pool_ids.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exact_answers_and_names_each_violation() {
        let pool = [10, 11, 12, 13];
        check_selection("x", &[12, 10], &pool, 2).unwrap();
        check_selection("x", &[13, 12, 11, 10], &pool, 9).unwrap();
        let dup = check_selection("x", &[12, 12], &pool, 2)
            .unwrap_err()
            .to_string();
        assert!(dup.contains("id 12 more than once"), "{dup}");
        let out = check_selection("x", &[1, 12], &pool, 2)
            .unwrap_err()
            .to_string();
        assert!(
            out.contains("id 1 ") && out.contains("not in the pool"),
            "{out}"
        );
        let few = check_selection("x", &[12], &pool, 2)
            .unwrap_err()
            .to_string();
        assert!(few.contains("returned 1 ids, expected exactly 2"), "{few}");
    }
}
