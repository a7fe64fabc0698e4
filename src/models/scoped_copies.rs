//! Copies of weights kept only while some work runs: made on first use inside a scope,
//! dropped when the last scope ends, up to a memory budget. Decoding keeps packed weights this
//! way ([`decoding_weights`](super::decoding_weights)), training keeps panels and transposes
//! ([`training_weights`](super::training_weights)). Keys are candle tensor ids, which are never
//! reused, so an entry cannot outlive the meaning of its key within a scope.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::TensorId;

struct State<V> {
    scopes: usize,
    bytes: usize,
    copies: Option<HashMap<TensorId, Arc<V>>>,
    /// Counts the times the last scope ended, so a copy made meanwhile is not kept.
    ended: u64,
}

/// One kind of copy (a `static` per kind), with its memory budget.
pub struct ScopedCopies<V: 'static = Vec<f32>> {
    budget_bytes: usize,
    state: Mutex<State<V>>,
}

/// While one of these is alive, its kind's copies are made and kept.
pub struct Scope<V: 'static = Vec<f32>>(&'static ScopedCopies<V>);

impl<V> Drop for Scope<V> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.scopes = s.scopes.saturating_sub(1);
            if s.scopes == 0 {
                s.copies = None;
                s.bytes = 0;
                s.ended += 1;
            }
        }
    }
}

impl<V> ScopedCopies<V> {
    /// At most `budget_bytes` of copies at a time (all weights together); weights past it get
    /// no copy, so a large model gets only part of the gain and never doubles its memory.
    pub const fn new(budget_bytes: usize) -> Self {
        Self {
            budget_bytes,
            state: Mutex::new(State {
                scopes: 0,
                bytes: 0,
                copies: None,
                ended: 0,
            }),
        }
    }

    /// Keep copies until the returned scope, and every other, is dropped.
    pub fn scope(&'static self) -> Scope<V> {
        if let Ok(mut s) = self.state.lock() {
            s.scopes += 1;
        }
        Scope(self)
    }

    /// The copy of weight `id` (of `bytes` bytes), made by `make` now if there is none yet;
    /// `None` outside every scope or past the budget.
    ///
    /// `make` runs without the lock held: it may use rayon, and a pool thread waiting for its
    /// parallel work can pick up another job that asks for a copy too. Two threads asking for
    /// the same missing copy may both make it; the first one stored is kept.
    pub fn get_or_make(
        &self,
        id: TensorId,
        bytes: usize,
        make: impl FnOnce() -> V,
    ) -> Option<Arc<V>> {
        let ended = {
            let mut s = self.state.lock().ok()?;
            if s.scopes == 0 {
                return None;
            }
            if let Some(found) = s.copies.as_ref().and_then(|c| c.get(&id)) {
                return Some(found.clone());
            }
            if s.bytes + bytes > self.budget_bytes {
                return None;
            }
            // Reserved now, so copies made at the same time cannot pass the budget together.
            s.bytes += bytes;
            s.ended
        };
        let copy = Arc::new(make());
        let mut s = self.state.lock().ok()?;
        if s.ended != ended {
            // Every scope ended while it was made (its reservation went with them): use it
            // this once, keep nothing.
            return Some(copy);
        }
        let copies = s.copies.get_or_insert_with(HashMap::new);
        if let Some(found) = copies.get(&id) {
            let found = found.clone();
            s.bytes -= bytes;
            return Some(found);
        }
        copies.insert(id, copy.clone());
        Some(copy)
    }

    /// Whether the current scopes hold a copy of weight `id` (for tests).
    #[cfg(test)]
    pub(crate) fn holds(&self, id: TensorId) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| s.copies.as_ref().is_some_and(|c| c.contains_key(&id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Tensor};

    fn fresh_id() -> TensorId {
        Tensor::zeros(1, DType::F32, &Device::Cpu)
            .expect("a tensor")
            .id()
    }

    #[test]
    fn a_copy_may_ask_for_another_while_it_is_made() {
        // With the lock held during `make` this would deadlock: a rayon worker making one copy
        // can pick up a job that asks for another.
        static COPIES: ScopedCopies = ScopedCopies::new(1 << 20);
        let (outer, inner) = (fresh_id(), fresh_id());
        let _scope = COPIES.scope();
        let made = COPIES.get_or_make(outer, 8, || {
            let nested = COPIES.get_or_make(inner, 8, || vec![2.0; 2]);
            assert_eq!(nested.as_deref(), Some(&vec![2.0; 2]));
            vec![1.0; 2]
        });
        assert_eq!(made.as_deref(), Some(&vec![1.0; 2]));
        assert!(COPIES.holds(outer) && COPIES.holds(inner));
    }

    #[test]
    fn the_budget_counts_copies_being_made_and_the_first_stored_is_kept() {
        static COPIES: ScopedCopies = ScopedCopies::new(16);
        let id = fresh_id();
        let _scope = COPIES.scope();
        let first = COPIES.get_or_make(id, 8, || {
            // Reserved: 8 of 16 bytes are taken, so 12 more do not fit.
            assert!(COPIES.get_or_make(fresh_id(), 12, || vec![0.0]).is_none());
            // The same weight asked for meanwhile: made and stored here first.
            COPIES.get_or_make(id, 8, || vec![3.0]).expect("fits");
            vec![4.0]
        });
        // The copy stored first wins, and only one reservation stays.
        assert_eq!(first.as_deref(), Some(&vec![3.0]));
        assert!(COPIES.get_or_make(fresh_id(), 8, || vec![5.0]).is_some());
        assert!(COPIES.get_or_make(fresh_id(), 1, || vec![6.0]).is_none());
    }

    #[test]
    fn a_copy_finished_after_the_last_scope_ended_is_not_kept() {
        static COPIES: ScopedCopies = ScopedCopies::new(1 << 20);
        let id = fresh_id();
        let scope = COPIES.scope();
        let mut scope = Some(scope);
        let made = COPIES.get_or_make(id, 8, || {
            drop(scope.take());
            vec![7.0]
        });
        assert_eq!(made.as_deref(), Some(&vec![7.0]), "used this once");
        let _again = COPIES.scope();
        assert!(!COPIES.holds(id), "not kept into a later scope");
    }
}
