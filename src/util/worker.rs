//! Running a command's work on a thread of rayon's pool instead of the main thread.
//!
//! Every product and parallel loop runs on rayon's pool. Called from a thread outside the
//! pool, each one is injected into the pool's queue, and the caller sleeps on a lock until it
//! is done: a wake-up of the pool's threads and one of the caller per parallel call, and on a
//! 2-core machine a third runnable thread beside the two workers. The forward and backward
//! pass of one quick-start training batch makes ~1,540 products of ~250 µs on average
//! (`LAB_GEMM_TRACE`). Called from a thread of the pool, the same loop runs part of the work
//! on that thread and lets the other threads steal the rest, with no hand-off (rayon's
//! documented behaviour for `join` and parallel iterators inside the pool).
use std::sync::Once;

/// Rayon's threads get this much stack: the command's work now runs on one of them, and
/// candle's backward pass walks the graph recursively (the main thread has 8 MiB; rayon's
/// default is 2 MiB). Untouched stack is never committed.
const WORKER_STACK_BYTES: usize = 64 << 20;

/// `f()` run on a thread of rayon's global pool (the calling thread waits for it), with the
/// pool built first if nothing has built it yet. Panics in `f` reach the caller. Inside the
/// pool already, `f()` runs where it is.
pub fn on_rayon_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        // An error means the pool exists already (built by a library): use it as it is.
        let _ = rayon::ThreadPoolBuilder::new()
            .stack_size(WORKER_STACK_BYTES)
            .build_global();
    });
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let mut out = None;
    // `scope` called from outside the pool runs its body on a worker and blocks until the
    // body (and anything it spawned) is done.
    rayon::scope(|_| out = Some(f()));
    out.expect("rayon::scope ran its body")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_runs_on_a_pool_thread_and_returns_its_value() {
        assert!(
            rayon::current_thread_index().is_none(),
            "tests run outside the pool"
        );
        let (index, sum) = on_rayon_worker(|| {
            use rayon::prelude::*;
            let sum: u64 = (0..10_000u64).into_par_iter().sum();
            (rayon::current_thread_index(), sum)
        });
        assert!(index.is_some(), "the closure ran on a thread of the pool");
        assert_eq!(sum, 49_995_000);
        // Nested: already on a worker, it runs in place.
        let nested = on_rayon_worker(|| on_rayon_worker(rayon::current_thread_index));
        assert!(nested.is_some());
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| on_rayon_worker(|| panic!("in the work")));
        assert!(caught.is_err());
    }
}
