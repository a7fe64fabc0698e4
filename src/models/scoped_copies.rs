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
    pub fn get_or_make(
        &self,
        id: TensorId,
        bytes: usize,
        make: impl FnOnce() -> V,
    ) -> Option<Arc<V>> {
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
        let copy = Arc::new(make());
        s.bytes += bytes;
        s.copies
            .get_or_insert_with(HashMap::new)
            .insert(id, copy.clone());
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
