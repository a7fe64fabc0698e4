//! Runs on one machine share the pool-embedding cache (`embeddings-<key>.bin` beside the
//! models, `strategy::host::EmbeddingDiskCache`): two runs writing one key each keep what the
//! other wrote, and a run reading while others write reads a whole cache, never a torn one.
use atgen_lab::strategy::host::EmbeddingDiskCache;
use std::sync::{Arc, Barrier};

const KEY: &str = "aeslc-pool300@all-minilm-l6-v2";

fn embedding_of(text: &str) -> Vec<f32> {
    let n = text.len() as f32;
    vec![n, 1.0 / n, -n]
}

/// Two runs read the cache at the start of a query step, embed different texts, and flush one
/// after the other: the second's flush used to replace the file with only what it held, so
/// the first run's embeddings were lost (and computed again by every later run).
#[test]
fn two_runs_writing_one_key_keep_each_others_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddingDiskCache::new(dir.path(), KEY);
    let second = EmbeddingDiskCache::new(dir.path(), KEY);
    assert_eq!(first.get("an email").unwrap(), None);
    assert_eq!(second.get("a memo").unwrap(), None);
    first.put("an email", &embedding_of("an email"));
    second.put("a memo", &embedding_of("a memo"));
    first.flush().unwrap();
    second.flush().unwrap();
    let next_run = EmbeddingDiskCache::new(dir.path(), KEY);
    assert_eq!(
        next_run.get("an email").unwrap(),
        Some(embedding_of("an email")),
        "the first run's embedding"
    );
    assert_eq!(
        next_run.get("a memo").unwrap(),
        Some(embedding_of("a memo")),
        "the second run's embedding"
    );
}

/// Many writers flushing at once (each its own run's cache, as separate processes hold) while
/// a reader keeps opening the cache: the reader never sees a corrupt file or a wrong row, and
/// every writer's rows are there at the end.
#[test]
fn writers_flushing_together_lose_nothing_and_readers_see_whole_caches() {
    let dir = tempfile::tempdir().unwrap();
    let writers = 6;
    let rounds = 5;
    let text = |w: usize, r: usize| format!("email {w} of round {r}: {}", "x".repeat(w + r));
    let start = Arc::new(Barrier::new(writers + 1));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (dir, start, done) = (dir.path().to_path_buf(), start.clone(), done.clone());
        std::thread::spawn(move || {
            start.wait();
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                let cache = EmbeddingDiskCache::new(&dir, KEY);
                for w in 0..writers {
                    for r in 0..rounds {
                        let t = text(w, r);
                        let row = cache.get(&t).expect("a whole cache file");
                        assert!(row.is_none() || row == Some(embedding_of(&t)), "{t}");
                    }
                }
                reads += 1;
            }
        })
    };
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (dir, start) = (dir.path().to_path_buf(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for r in 0..rounds {
                    // A query step: a fresh cache read from disk, new rows, one flush.
                    let cache = EmbeddingDiskCache::new(&dir, KEY);
                    let t = text(w, r);
                    assert_eq!(cache.get(&t).unwrap(), None);
                    cache.put(&t, &embedding_of(&t));
                    cache.flush().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    let after = EmbeddingDiskCache::new(dir.path(), KEY);
    let missing: Vec<String> = (0..writers)
        .flat_map(|w| (0..rounds).map(move |r| (w, r)))
        .map(|(w, r)| text(w, r))
        .filter(|t| after.get(t).unwrap() != Some(embedding_of(t)))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "one cache file, nothing else: {names:?}");
}
