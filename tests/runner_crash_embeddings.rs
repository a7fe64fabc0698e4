//! Crash consistency of the pool-embedding cache (`embeddings-<key>.bin` beside the models,
//! `strategy::host::EmbeddingDiskCache`, written atomically): a run aborted while the cache is
//! written or right after, and run again, selects what an uninterrupted run selects, reading
//! no torn or partial cache and leaving no temporary behind. (The rerun of an abort after the
//! write takes every embedding from the cache, the uninterrupted run computed them.)
mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use support::crash_runs::{
    age_temporaries, crash, crash_experiment, env_refs, rerun_differences, run, run_args, Snapshot,
};
use support::tiny_run::TinyExperiment;

/// A models cache of its own in `dir` (a link to the real one), so the embedding cache kept
/// beside it, `<dir>/embeddings`, starts empty; the environment that points `lab` there.
fn own_models_cache(dir: &Path) -> (PathBuf, [(String, String); 1]) {
    let models = dir.join("models");
    std::os::unix::fs::symlink(atgen_lab::models::cache::models_dir(), &models).unwrap();
    let env = [("LAB_MODELS".to_string(), models.display().to_string())];
    (dir.join("embeddings"), env)
}

/// One coreset cell of three iterations: iteration 0 draws at random, 1 and 2 embed the pool
/// and the labeled items with the sentence encoder, the first writing the cache.
fn experiment(dir: &Path) -> PathBuf {
    TinyExperiment {
        strategies: &["coreset"],
        ..crash_experiment()
    }
    .write(dir)
}

/// The files in the embedding cache's folder.
fn cache_files(embeddings: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(embeddings)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The uninterrupted run from an empty cache: its results and the cache's file name.
fn uninterrupted() -> &'static (Snapshot, String) {
    static WHOLE: OnceLock<(Snapshot, String)> = OnceLock::new();
    WHOLE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (embeddings, env) = own_models_cache(dir.path());
        let exp = experiment(dir.path());
        run(&run_args(&exp), &env_refs(&env)).unwrap();
        let files = cache_files(&embeddings);
        assert!(
            files.len() == 1 && files[0].starts_with("embeddings-") && files[0].ends_with(".bin"),
            "one embedding cache file: {files:?}"
        );
        (Snapshot::take(dir.path(), "crash"), files[0].clone())
    })
}

#[test]
fn a_run_aborted_while_or_after_writing_the_embedding_cache_selects_as_an_uninterrupted_one() {
    let (whole, cache) = uninterrupted();
    let dir = tempfile::tempdir().unwrap();
    let (embeddings, env) = own_models_cache(dir.path());
    let exp = experiment(dir.path());
    // Aborted with the cache's temporary written, not yet in place…
    crash(
        &run_args(&exp),
        &format!("staged:{cache}:1"),
        &env_refs(&env),
    );
    assert_eq!(cache_files(&embeddings).len(), 1, "a temporary, no cache");
    // (The cache's folder has no lock: a temporary there may be another run's write in
    // progress, so only an old one is a kill's leftover.)
    age_temporaries(&embeddings);
    // …then, computing the embeddings again, with the cache in place and nothing labelled
    // (iteration 0, drawn at random, passes selection-made first)…
    crash(&run_args(&exp), "selection-made:2", &env_refs(&env));
    // …then to the end, every embedding read from the cache.
    let mut problems = rerun_differences(&exp, dir.path(), &env_refs(&env), whole);
    if cache_files(&embeddings) != [cache.clone()] {
        problems.push(format!(
            "the embedding cache's folder holds {:?} instead of [{cache}]",
            cache_files(&embeddings)
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
