//! Lazy greedy maximisation (Minoux 1978) for objectives whose marginal gains only fall as
//! the selection grows (submodular ones, and NGF-SMP coverage scores).
//!
//! A max-heap holds each candidate's last computed gain plus its rounding bound, an upper
//! bound on both now. The top is re-evaluated until the candidates still in the heap cannot
//! reach the best fresh gain within their bounds; of the fresh candidates tied with that best
//! (closer than the sum of both bounds, see ties.rs), the lowest index is picked. The picks
//! equal those of a plain greedy that breaks ties, rounding included, by the lower index.
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A marginal gain and the largest rounding error it may carry. Neither may grow as the
/// selection grows: the heap keeps stale values as upper bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Gain {
    pub value: f64,
    pub slack: f64,
}

impl Gain {
    /// A gain computed exactly (or whose rounding cannot tie it with another).
    #[cfg(test)]
    pub fn exact(value: f64) -> Self {
        Self { value, slack: 0.0 }
    }
}

/// The objective a lazy greedy run maximises.
pub(crate) trait GreedyObjective {
    /// Marginal gain of adding `item` to the current selection.
    fn gain(&mut self, item: usize) -> Gain;
    /// Add `item` to the selection.
    fn take(&mut self, item: usize);
}

struct Entry {
    gain: Gain,
    item: usize,
    round: usize,
}

impl Entry {
    /// The most this entry's gain could be worth in a comparison.
    fn reach(&self) -> f64 {
        self.gain.value + self.gain.slack
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.reach()
            .total_cmp(&other.reach())
            .then_with(|| other.item.cmp(&self.item))
    }
}

fn sane(gain: Gain) -> Gain {
    if gain.value.is_nan() || gain.slack.is_nan() {
        Gain {
            value: f64::NEG_INFINITY,
            slack: 0.0,
        }
    } else {
        gain
    }
}

/// Pick up to `k` items (all of them if fewer), given every item's gain on the empty
/// selection. Returns `(item, gain at pick time)` in pick order.
pub(crate) fn lazy_greedy(
    objective: &mut impl GreedyObjective,
    initial_gains: &[Gain],
    k: usize,
) -> Vec<(usize, f64)> {
    let mut heap: BinaryHeap<Entry> = initial_gains
        .iter()
        .enumerate()
        .map(|(item, &g)| Entry {
            gain: sane(g),
            item,
            round: 0,
        })
        .collect();
    let k = k.min(initial_gains.len());
    let mut picks = Vec::with_capacity(k);
    while picks.len() < k {
        let round = picks.len();
        let Some(winner) = pick(objective, &mut heap, round) else {
            break;
        };
        objective.take(winner.item);
        picks.push((winner.item, winner.gain.value));
    }
    picks
}

/// Pop the next pick from `heap`, re-evaluating stale entries (those not of `round`) as needed;
/// the fresh entries popped on the way that lose go back.
///
/// Entries pop in falling reach, and a re-evaluated one comes back no higher, so every fresh
/// entry popped before the loop stops reaches the floor of the best one: all of them are tied
/// with it, and the lowest item among them wins.
fn pick(
    objective: &mut impl GreedyObjective,
    heap: &mut BinaryHeap<Entry>,
    round: usize,
) -> Option<Entry> {
    let mut fresh: Vec<Entry> = Vec::new();
    // The largest fresh gain, and that gain less its bound: below it nothing ties with it.
    let mut best = f64::NEG_INFINITY;
    let mut floor = f64::NEG_INFINITY;
    let mut lowest = usize::MAX;
    while let Some(top) = heap.peek() {
        // At the floor itself entries pop in index order, so once one is above the lowest tied
        // item none after it can win: a run of equal gains (all zero, say) stays in the heap.
        if !fresh.is_empty() && (top.reach() < floor || (top.reach() == floor && top.item > lowest))
        {
            break;
        }
        let top = heap.pop().expect("peeked");
        if top.round != round {
            heap.push(Entry {
                gain: sane(objective.gain(top.item)),
                item: top.item,
                round,
            });
            continue;
        }
        if fresh.is_empty() || top.gain.value > best {
            best = top.gain.value;
            floor = top.gain.value - top.gain.slack;
        }
        lowest = lowest.min(top.item);
        fresh.push(top);
    }
    let winner = fresh.iter().position(|e| e.item == lowest)?;
    let winner = fresh.swap_remove(winner);
    heap.extend(fresh);
    Some(winner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weighted set cover: gain = total weight of the item's elements not yet covered.
    struct Cover {
        sets: Vec<Vec<usize>>,
        weight: Vec<f64>,
        covered: Vec<bool>,
        evaluations: usize,
    }

    impl GreedyObjective for Cover {
        fn gain(&mut self, item: usize) -> Gain {
            self.evaluations += 1;
            Gain::exact(
                self.sets[item]
                    .iter()
                    .filter(|&&e| !self.covered[e])
                    .map(|&e| self.weight[e])
                    .sum(),
            )
        }
        fn take(&mut self, item: usize) {
            for &e in &self.sets[item] {
                self.covered[e] = true;
            }
        }
    }

    fn cover() -> Cover {
        Cover {
            sets: vec![vec![0, 1], vec![0, 1, 2], vec![4], vec![2, 3], vec![3]],
            weight: vec![1.0, 1.0, 1.0, 2.0, 0.5],
            covered: vec![false; 5],
            evaluations: 0,
        }
    }

    fn naive(c: &mut Cover, k: usize) -> Vec<(usize, f64)> {
        let mut picks: Vec<(usize, f64)> = Vec::new();
        for _ in 0..k {
            let mut best: Option<(usize, f64)> = None;
            for i in 0..c.sets.len() {
                if picks.iter().any(|p| p.0 == i) {
                    continue;
                }
                let g = c.gain(i).value;
                if best.is_none_or(|(_, b)| g > b) {
                    best = Some((i, g));
                }
            }
            let (i, g) = best.unwrap();
            c.take(i);
            picks.push((i, g));
        }
        picks
    }

    #[test]
    fn lazy_greedy_equals_plain_greedy_and_keeps_picking_zero_gain_items() {
        let mut c = cover();
        let initial: Vec<Gain> = (0..5).map(|i| c.gain(i)).collect();
        c.evaluations = 0;
        let lazy = lazy_greedy(&mut c, &initial, 5);
        // Sets 1 and 3 tie at 3.0: the lower index wins. Then sets 3 and 4 tie at 2.0 (set 0's
        // stale bound 2.0 is re-evaluated on the way): 3 again. Then set 2 (0.5), and the fully covered
        // sets 0 and 4 in index order.
        assert_eq!(lazy, vec![(1, 3.0), (3, 2.0), (2, 0.5), (0, 0.0), (4, 0.0)]);
        assert_eq!(lazy, naive(&mut cover(), 5));
    }

    #[test]
    fn k_larger_than_the_pool_returns_every_item_once() {
        let mut c = cover();
        let initial: Vec<Gain> = (0..5).map(|i| c.gain(i)).collect();
        let picks = lazy_greedy(&mut c, &initial, 50);
        let mut items: Vec<usize> = picks.iter().map(|p| p.0).collect();
        items.sort();
        assert_eq!(items, vec![0, 1, 2, 3, 4]);
    }

    /// Gains fixed per item, each with a rounding bound; taking an item changes nothing else.
    struct Fixed(Vec<Gain>);

    impl GreedyObjective for Fixed {
        fn gain(&mut self, item: usize) -> Gain {
            self.0[item]
        }
        fn take(&mut self, _item: usize) {}
    }

    fn gain(value: f64, slack: f64) -> Gain {
        Gain { value, slack }
    }

    #[test]
    fn gains_closer_than_their_bounds_tie_and_the_lower_index_wins() {
        // Items 1 and 3 are 3 apart in the last digits; their bounds (2 + 2) cover that, so
        // they tie and 1 goes first although 3 is larger. Item 2 is beyond any bound.
        let gains = vec![
            gain(1.0, 0.0),
            gain(5.0, 2e-9),
            gain(5.0 - 1e-6, 1e-9),
            gain(5.0 + 3e-9, 2e-9),
        ];
        let picks = lazy_greedy(&mut Fixed(gains.clone()), &gains, 4);
        let order: Vec<usize> = picks.iter().map(|p| p.0).collect();
        assert_eq!(order, vec![1, 3, 2, 0]);
        // Without the bounds the larger gain wins.
        let exact: Vec<Gain> = gains.iter().map(|g| Gain::exact(g.value)).collect();
        let picks = lazy_greedy(&mut Fixed(exact.clone()), &exact, 2);
        assert_eq!(picks.iter().map(|p| p.0).collect::<Vec<_>>(), vec![3, 1]);
    }

    #[test]
    fn a_run_of_equal_gains_is_not_re_evaluated_whole_each_round() {
        // 200 items all covered (gain 0): each round re-evaluates what plain lazy greedy would,
        // not the whole run of ties.
        let mut c = Cover {
            sets: vec![Vec::new(); 200],
            weight: Vec::new(),
            covered: Vec::new(),
            evaluations: 0,
        };
        let initial = vec![Gain::exact(0.0); 200];
        let picks = lazy_greedy(&mut c, &initial, 200);
        assert_eq!(
            picks.iter().map(|p| p.0).collect::<Vec<_>>(),
            (0..200).collect::<Vec<_>>()
        );
        assert!(c.evaluations <= 400, "{} evaluations", c.evaluations);
    }
}
