//! `--shard I/N`: spread the (experiment, strategy, seed) cells of a batch over N machines.
//! Cells are ranked by a stable hash of their names and dealt round-robin, so the split does
//! not depend on the order files or strategies are listed in, every shard gets within one
//! cell of the same count, and together the N shards cover every cell exactly once.
use anyhow::{bail, Result};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count`, 1-based as written on the command line (`--shard 2/4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole batch.
    pub const ALL: Shard = Shard { index: 1, count: 1 };
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    /// Messages leave out the flag: clap (and `lab bench`) put `--shard` and the value first.
    fn from_str(s: &str) -> Result<Shard> {
        let advice = "write --shard I/N with 1 ≤ I ≤ N, e.g. --shard 2/4";
        if s.starts_with("--") || (s.starts_with('-') && !s.contains('/')) {
            // `allow_hyphen_values` lets a flag typed where the value belongs land here.
            bail!("is a flag, not a shard: --shard needs its value right after it; {advice}");
        }
        let Some((i, n)) = s.split_once('/') else {
            bail!("has no `/`: {advice}");
        };
        let part = |text: &str, what: &str| -> Result<usize> {
            let text = text.trim();
            if text.starts_with('-') {
                bail!("{what} `{text}` is negative: shards count from 1; {advice}");
            }
            text.parse()
                .map_err(|_| anyhow::anyhow!("{what} `{text}` is not a whole number; {advice}"))
        };
        let index = part(i, "the shard number")?;
        let count = part(n, "the number of shards")?;
        if count == 0 {
            bail!("asks for 0 shards: {advice}");
        }
        if index == 0 {
            bail!("shard 0 does not exist: shards count from 1; {advice}");
        }
        if index > count {
            bail!("shard {index} of {count} does not exist; {advice}");
        }
        Ok(Shard { index, count })
    }
}

/// `--shard`'s value parser: clap shows "invalid value 'V' for '--shard <I/N>': " and this.
pub fn parse_shard_flag(s: &str) -> std::result::Result<Shard, String> {
    s.parse::<Shard>().map_err(|e| format!("{e:#}"))
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One unit of work of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    pub experiment: String,
    pub strategy: String,
    pub seed: u64,
}

impl Cell {
    pub fn new(experiment: &str, strategy: &str, seed: u64) -> Self {
        Cell {
            experiment: experiment.to_string(),
            strategy: strategy.to_string(),
            seed,
        }
    }

    /// A hash that is the same on every machine, platform and release (SHA-256 of the names).
    pub fn stable_hash(&self) -> u64 {
        let mut h = Sha256::new();
        h.update(self.experiment.as_bytes());
        h.update([0]);
        h.update(self.strategy.as_bytes());
        h.update([0]);
        h.update(self.seed.to_le_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/seed-{}",
            self.experiment, self.strategy, self.seed
        )
    }
}

/// The cells of `cells` that belong to `shard`, in their given order. Duplicates count once.
pub fn shard_cells(cells: &[Cell], shard: Shard) -> Vec<Cell> {
    let mut ranked: Vec<(u64, &Cell)> = cells.iter().map(|c| (c.stable_hash(), c)).collect();
    // Ties in the hash are broken by the names, so the ranking is a total order.
    ranked.sort();
    ranked.dedup_by(|a, b| a.1 == b.1);
    let mine: std::collections::HashSet<&Cell> = ranked
        .iter()
        .enumerate()
        .filter(|(rank, _)| rank % shard.count == shard.index - 1)
        .map(|(_, (_, c))| *c)
        .collect();
    let mut seen = std::collections::HashSet::new();
    cells
        .iter()
        .filter(|c| mine.contains(c) && seen.insert(*c))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Vec<Cell> {
        let mut cells = Vec::new();
        for exp in ["quickstart", "paper-aeslc", "paper-gsm8k"] {
            for strategy in ["random", "mnlp", "idds", "huds", "hadas"] {
                for seed in 0..4 {
                    cells.push(Cell::new(exp, strategy, seed));
                }
            }
        }
        cells
    }

    #[test]
    fn parses_and_rejects_with_advice() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert_eq!(" 1 / 1 ".parse::<Shard>().unwrap(), Shard::ALL);
        for (bad, says) in [
            ("0/4", "shard 0 does not exist"),
            ("5/4", "shard 5 of 4 does not exist"),
            ("1/0", "asks for 0 shards"),
            ("a/2", "`a` is not a whole number"),
            ("3", "has no `/`"),
            ("", "has no `/`"),
            ("-1/2", "`-1` is negative"),
            ("1/-2", "`-2` is negative"),
            ("--fresh", "is a flag, not a shard"),
            ("-v", "is a flag, not a shard"),
        ] {
            let err = format!("{:#}", bad.parse::<Shard>().unwrap_err());
            assert!(err.contains("--shard I/N"), "{bad}: {err}");
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert_eq!(Shard { index: 3, count: 8 }.to_string(), "3/8");
    }

    #[test]
    fn shards_partition_the_cells_evenly() {
        let cells = batch();
        for n in [1, 2, 3, 7, 60, 61] {
            let mut all: Vec<Cell> = Vec::new();
            for i in 1..=n {
                let part = shard_cells(&cells, Shard { index: i, count: n });
                let expected = cells.len() / n;
                assert!(
                    part.len() == expected || part.len() == expected + 1,
                    "shard {i}/{n} has {} cells",
                    part.len()
                );
                all.extend(part);
            }
            assert_eq!(all.len(), cells.len(), "N = {n}");
            all.sort();
            let mut want = cells.clone();
            want.sort();
            assert_eq!(all, want, "N = {n}: every cell exactly once");
        }
    }

    #[test]
    fn assignment_ignores_order_and_duplicates() {
        let cells = batch();
        let mut reversed = cells.clone();
        reversed.reverse();
        let mut doubled = cells.clone();
        doubled.extend(cells.iter().cloned());
        for i in 1..=3 {
            let shard = Shard { index: i, count: 3 };
            let mut a = shard_cells(&cells, shard);
            let mut b = shard_cells(&reversed, shard);
            let mut c = shard_cells(&doubled, shard);
            a.sort();
            b.sort();
            c.sort();
            assert_eq!(a, b);
            assert_eq!(a, c);
        }
    }

    #[test]
    fn hash_is_stable_across_releases() {
        // Pinned: changing the hash would reshuffle batches already spread over machines.
        let h = Cell::new("quickstart", "random", 0).stable_hash();
        assert_eq!(h, Cell::new("quickstart", "random", 0).stable_hash());
        assert_ne!(h, Cell::new("quickstart", "random", 1).stable_hash());
        assert_ne!(
            Cell::new("ab", "c", 0).stable_hash(),
            Cell::new("a", "bc", 0).stable_hash()
        );
        assert_eq!(format!("{h:016x}"), PINNED);
    }

    /// First 8 bytes (little-endian) of SHA-256(b"quickstart\0random\0" + 0u64 LE), computed
    /// independently with Python's hashlib.
    const PINNED: &str = "aa017715a7c08feb";
}
