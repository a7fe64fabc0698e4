//! Seed-independent splits and subsets. The randomness here is keyed by a constant, the
//! dataset's name and the purpose — never by the run seed — so every seed and strategy of an
//! experiment sees the same test set and pool.
use rand::seq::{index, SliceRandom};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::Example;

/// A generator fixed by the dataset and what it is used for.
pub fn data_rng(dataset: &str, purpose: &str) -> ChaCha8Rng {
    let digest = Sha256::digest(format!("atgen-lab data v1\0{dataset}\0{purpose}").as_bytes());
    ChaCha8Rng::from_seed(digest.into())
}

/// Split `train` into (train, dev, test) by ratios, each part in id order.
pub fn split_by_ratio(
    train: Vec<Example>,
    test_ratio: f64,
    dev_ratio: f64,
    dataset: &str,
) -> (Vec<Example>, Vec<Example>, Vec<Example>) {
    let n = train.len();
    let count = |ratio: f64| {
        if ratio <= 0.0 {
            0
        } else {
            ((ratio * n as f64).round() as usize).max(1)
        }
    };
    let n_test = count(test_ratio).min(n);
    let n_dev = count(dev_ratio).min(n - n_test);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut data_rng(dataset, "split"));
    let mut part = vec![0u8; n];
    for &i in &order[..n_test] {
        part[i] = 2;
    }
    for &i in &order[n_test..n_test + n_dev] {
        part[i] = 1;
    }
    let (mut rest, mut dev, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for (example, p) in train.into_iter().zip(part) {
        match p {
            2 => test.push(example),
            1 => dev.push(example),
            _ => rest.push(example),
        }
    }
    (rest, dev, test)
}

/// `size` examples chosen at random (fixed by dataset and purpose), kept in id order.
pub fn fixed_subset(
    examples: Vec<Example>,
    size: usize,
    dataset: &str,
    purpose: &str,
) -> Vec<Example> {
    if size >= examples.len() {
        return examples;
    }
    let mut keep = vec![false; examples.len()];
    for i in index::sample(&mut data_rng(dataset, purpose), examples.len(), size) {
        keep[i] = true;
    }
    examples
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect()
}
