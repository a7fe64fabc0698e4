//! N-gram counting and the two count-based scores: NGF-SMP (Hu & Neubig 2021) and delfy
//! (Zhao et al. 2020). Callers pass words already lower-cased, tokenised and stemmed.
//!
//! Words and n-grams are interned to dense u32 ids: an n-gram is the pair (id of its first
//! n − 1 words, id of its last word), packed in a u64, so counting never allocates per n-gram.
use super::fx_hash::FxHashMap;
use super::lazy_greedy::{lazy_greedy, Gain, GreedyObjective};
use super::ties::f64_sum_error;

/// The "prefix" of a unigram.
const NO_PREFIX: u32 = u32::MAX;

/// Occurrence counts of every n-gram of orders 1..=max_order in a set of documents.
#[derive(Clone, Debug, Default)]
pub struct NgramCounts {
    max_order: usize,
    words: FxHashMap<String, u32>,
    ngrams: FxHashMap<u64, u32>,
    /// Occurrences per n-gram id.
    counts: Vec<u32>,
}

#[inline]
fn key(prefix: u32, word: u32) -> u64 {
    (u64::from(prefix) << 32) | u64::from(word)
}

impl NgramCounts {
    pub fn new(max_order: usize) -> Self {
        Self {
            max_order,
            ..Default::default()
        }
    }

    pub fn max_order(&self) -> usize {
        self.max_order
    }

    /// Distinct n-grams seen.
    pub fn distinct(&self) -> usize {
        self.counts.len()
    }

    /// N-gram occurrences seen, all orders together.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// Occurrences of `ngram` (0 when unseen, empty, or longer than `max_order`).
    pub fn count<S: AsRef<str>>(&self, ngram: &[S]) -> u32 {
        if ngram.is_empty() || ngram.len() > self.max_order {
            return 0;
        }
        let mut id = NO_PREFIX;
        for w in ngram {
            let Some(&word) = self.words.get(w.as_ref()) else {
                return 0;
            };
            let Some(&next) = self.ngrams.get(&key(id, word)) else {
                return 0;
            };
            id = next;
        }
        self.counts[id as usize]
    }

    /// Count the n-grams of `doc`; returns the id of every occurrence.
    pub fn add(&mut self, doc: &[String]) -> Vec<u32> {
        let mut ids = Vec::with_capacity(doc.len() * self.max_order);
        let word_ids: Vec<u32> = doc.iter().map(|w| self.word_id(w)).collect();
        for start in 0..word_ids.len() {
            let mut prefix = NO_PREFIX;
            for &word in word_ids[start..].iter().take(self.max_order) {
                let next_id = self.counts.len() as u32;
                let id = *self.ngrams.entry(key(prefix, word)).or_insert(next_id);
                if id == next_id {
                    assert!(id != NO_PREFIX, "more than 2³² − 1 distinct n-grams");
                    self.counts.push(0);
                }
                self.counts[id as usize] += 1;
                ids.push(id);
                prefix = id;
            }
        }
        ids
    }

    /// Ids of the n-grams of `doc` that were already counted (nothing is added).
    fn known_ids(&self, doc: &[String]) -> Vec<u32> {
        let mut ids = Vec::new();
        for start in 0..doc.len() {
            let mut prefix = NO_PREFIX;
            for w in doc[start..].iter().take(self.max_order) {
                let Some(&word) = self.words.get(w.as_str()) else {
                    break;
                };
                let Some(&id) = self.ngrams.get(&key(prefix, word)) else {
                    break;
                };
                ids.push(id);
                prefix = id;
            }
        }
        ids
    }

    fn word_id(&mut self, w: &str) -> u32 {
        if let Some(&id) = self.words.get(w) {
            return id;
        }
        let id = self.words.len() as u32;
        self.words.insert(w.to_string(), id);
        id
    }
}

/// Count every n-gram of orders 1..=max_order over `docs`.
pub fn count_ngrams(docs: &[Vec<String>], max_order: usize) -> NgramCounts {
    let mut counts = NgramCounts::new(max_order);
    for doc in docs {
        counts.add(doc);
    }
    counts
}

/// NGF-SMP greedy. An n-gram is uncovered while no labeled or picked item has it;
/// score(x) = Σ_{g ∈ ngrams(x), uncovered} ln(1 + c_U(g)) / |ngrams(x)| over the *distinct*
/// n-grams of x (orders 1..=max_order). After each pick its n-grams become covered and the
/// rest are rescored (lazily: scores only fall). Returns `min(k, pool)` `(position, score at
/// pick time)` pairs; ties, rounding included, go to the lower position; items without n-grams
/// score 0.
pub fn ngf_smp_greedy(
    pool_words: &[Vec<String>],
    labeled_words: &[Vec<String>],
    k: usize,
    max_order: usize,
) -> Vec<(usize, f64)> {
    let mut counts = NgramCounts::new(max_order);
    let items: Vec<Vec<u32>> = pool_words
        .iter()
        .map(|doc| {
            let mut ids = counts.add(doc);
            ids.sort_unstable();
            ids.dedup();
            ids
        })
        .collect();
    let mut covered = vec![false; counts.distinct()];
    for doc in labeled_words {
        for id in counts.known_ids(doc) {
            covered[id as usize] = true;
        }
    }
    let mut objective = Coverage {
        weight: counts
            .counts
            .iter()
            .map(|&c| f64::from(c).ln_1p())
            .collect(),
        covered,
        items,
    };
    let initial: Vec<Gain> = (0..pool_words.len()).map(|i| objective.gain(i)).collect();
    lazy_greedy(&mut objective, &initial, k)
}

struct Coverage {
    weight: Vec<f64>,
    covered: Vec<bool>,
    items: Vec<Vec<u32>>,
}

impl GreedyObjective for Coverage {
    fn gain(&mut self, item: usize) -> Gain {
        let ids = &self.items[item];
        let (mut uncovered, mut terms) = (0.0f64, 0usize);
        for &g in ids {
            if !self.covered[g as usize] {
                uncovered += self.weight[g as usize];
                terms += 1;
            }
        }
        let value = if ids.is_empty() {
            0.0
        } else {
            uncovered / ids.len() as f64
        };
        // Items whose sums are equal in exact arithmetic but added in another order (their
        // n-gram ids differ) are tied: the sum, each ln and the division round.
        Gain {
            value,
            slack: f64_sum_error(terms + 2) * value,
        }
    }

    fn take(&mut self, item: usize) {
        for &g in &self.items[item] {
            self.covered[g as usize] = true;
        }
    }
}

/// delfy (decay logarithm frequency) of every pool item, in pool order.
///
/// F(w) = ln(1 + c_U(w)) / Σ_v ln(1 + c_U(v)). Items are visited in descending
/// LF(x) = mean_{w∈x} F(w)·e^{−λ1·c_L(w)} (ties, rounding included: lower position first), and
/// delfy(x) = mean_{w∈x} F(w)·e^{−λ1·c_L(w)}·e^{−λ2·c_Ŝ(w)}, where c_Ŝ counts the words of the
/// items visited before x. Means run over word occurrences; an empty item scores 0.
pub fn delfy_scores(
    pool_words: &[Vec<String>],
    labeled_words: &[Vec<String>],
    lambda1: f64,
    lambda2: f64,
) -> Vec<f64> {
    let mut vocabulary: FxHashMap<&str, usize> = FxHashMap::default();
    let items: Vec<Vec<usize>> = pool_words
        .iter()
        .map(|doc| {
            doc.iter()
                .map(|w| {
                    let next = vocabulary.len();
                    *vocabulary.entry(w.as_str()).or_insert(next)
                })
                .collect()
        })
        .collect();
    let mut in_pool = vec![0u32; vocabulary.len()];
    for &w in items.iter().flatten() {
        in_pool[w] += 1;
    }
    let mut in_labeled = vec![0u32; vocabulary.len()];
    for w in labeled_words.iter().flatten() {
        if let Some(&id) = vocabulary.get(w.as_str()) {
            in_labeled[id] += 1;
        }
    }
    let normaliser: f64 = in_pool.iter().map(|&c| f64::from(c).ln_1p()).sum();
    // F(w)·e^{−λ1·c_L(w)}: the part of a word's weight that visiting does not change.
    let base: Vec<f64> = in_pool
        .iter()
        .zip(&in_labeled)
        .map(|(&u, &l)| f64::from(u).ln_1p() / normaliser * (-lambda1 * f64::from(l)).exp())
        .collect();
    let lf: Vec<f64> = items
        .iter()
        .map(|ids| canonical_mean(ids.iter().map(|&w| base[w]).collect()))
        .collect();
    let order = descending_ties_low_first(&lf, |x| f64_sum_error(items[x].len() + 1) * lf[x]);
    let mut visited = vec![0u32; vocabulary.len()];
    let mut scores = vec![0.0; items.len()];
    for x in order {
        scores[x] = canonical_mean(
            items[x]
                .iter()
                .map(|&w| base[w] * (-lambda2 * f64::from(visited[w])).exp())
                .collect(),
        );
        for &w in &items[x] {
            visited[w] += 1;
        }
    }
    scores
}

/// Mean of `terms` added smallest first: a fixed order, so documents holding the same words in
/// another order get the same bits (and `rank()` sees their tie). 0 for no terms.
fn canonical_mean(mut terms: Vec<f64>) -> f64 {
    if terms.is_empty() {
        return 0.0;
    }
    terms.sort_by(f64::total_cmp);
    terms.iter().sum::<f64>() / terms.len() as f64
}

/// Positions by descending value, where values within the sum of their rounding bounds
/// (`slack`) of a neighbour in that order are one run of ties, visited lowest position first.
fn descending_ties_low_first(values: &[f64], slack: impl Fn(usize) -> f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len()
            && values[order[end - 1]] - values[order[end]]
                <= slack(order[end - 1]) + slack(order[end])
        {
            end += 1;
        }
        order[start..end].sort_unstable();
        start = end;
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(texts: &[&str]) -> Vec<Vec<String>> {
        texts
            .iter()
            .map(|t| t.split_whitespace().map(String::from).collect())
            .collect()
    }

    #[test]
    fn counts_every_order_up_to_the_maximum() {
        let c = count_ngrams(&docs(&["a b a b", "b"]), 2);
        assert_eq!(c.count(&["a"]), 2);
        assert_eq!(c.count(&["b"]), 3);
        assert_eq!(c.count(&["a", "b"]), 2);
        assert_eq!(c.count(&["b", "a"]), 1);
        assert_eq!(
            c.count(&["b", "b"]),
            0,
            "never adjacent: documents do not run together"
        );
        assert_eq!(c.count(&["a", "b", "a"]), 0, "above max_order");
        assert_eq!(c.count(&["zebra"]), 0);
        assert_eq!((c.distinct(), c.total()), (4, 8));
    }

    #[test]
    fn ngf_smp_prefers_uncovered_frequent_ngrams_and_skips_covered_items() {
        let pool = docs(&["the cat sat", "the cat sat", "a dog ran", "the cat"]);
        let picks = ngf_smp_greedy(&pool, &[], 4, 2);
        let ln = |x: f64| x.ln();
        // c_U: the, cat, "the cat" = 3; sat, "cat sat" = 2; a, dog, ran, "a dog", "dog ran" = 1.
        // Item 3 = {the, cat, the cat}: 3·ln 4 / 3 beats items 0, 1: (3 ln 4 + 2 ln 3)/5.
        // Then item 2 (5·ln 2 / 5) beats items 0, 1, now (2 ln 3)/5; item 0 covers item 1.
        let want = [
            (3, ln(4.0)),
            (2, ln(2.0)),
            (0, 2.0 * ln(3.0) / 5.0),
            (1, 0.0),
        ];
        assert_eq!(picks.len(), 4);
        for ((i, s), (wi, ws)) in picks.iter().zip(want) {
            assert_eq!(*i, wi, "{picks:?}");
            assert!((s - ws).abs() < 1e-12, "{picks:?}");
        }
    }

    #[test]
    fn ngf_smp_counts_labeled_ngrams_as_covered() {
        let pool = docs(&["a dog ran", "the cat", "the zzz"]);
        let labeled = docs(&["the cat", "never seen words"]);
        let picks = ngf_smp_greedy(&pool, &labeled, 3, 4);
        // Item 0: 6 uncovered n-grams seen once (ln 2 each); item 2: zzz and "the zzz"
        // uncovered of 3 (2 ln 2 / 3); item 1: every n-gram labeled.
        assert_eq!(picks.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 2, 1]);
        assert!((picks[1].1 - 2.0 * 2f64.ln() / 3.0).abs() < 1e-12);
        assert_eq!(picks[2].1, 0.0);
    }

    #[test]
    fn delfy_matches_the_hand_computed_example() {
        // c_U: a = 3, b = 1, c = 1 → Σ ln(1 + c) = 2 ln 4, F(a) = ½, F(b) = F(c) = ¼; c_L(b) = 1.
        // LF: x0 = (½ + ¼e⁻¹)/2, x1 = ½, x2 = ¼ → visit x1, x0, x2.
        // x1 first: ½. Then x0 with c_Ŝ(a) = 2: (½e⁻² + ¼e⁻¹)/2. Then x2: c unseen, ¼.
        let pool = docs(&["a b", "a a", "c"]);
        let labeled = docs(&["b"]);
        let got = delfy_scores(&pool, &labeled, 1.0, 1.0);
        let e = |x: f64| x.exp();
        let want = [(0.5 * e(-2.0) + 0.25 * e(-1.0)) / 2.0, 0.5, 0.25];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn delfy_of_an_empty_item_is_zero() {
        assert_eq!(
            delfy_scores(&docs(&["", "a"]), &[], 1.0, 1.0),
            vec![0.0, 1.0]
        );
    }
}
