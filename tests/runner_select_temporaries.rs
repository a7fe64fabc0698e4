//! `lab select` removes what a killed write of the pool-embedding cache left beside it: a
//! `.tmp*` file as large as the cache, never read again. Only an old one: a young one may be
//! another process's write in progress (the folder is shared by every run on the machine).
mod support;

use std::path::Path;
use support::crash_runs::age_temporaries;
use support::tiny_run::{lab_with, stderr, stdout, TinyExperiment};

#[test]
fn lab_select_removes_old_embedding_cache_temporaries_and_keeps_young_ones() {
    let dir = tempfile::tempdir().unwrap();
    // A models cache of its own (a link to the real one), so the embedding cache beside it,
    // `<dir>/embeddings`, holds only what this test puts there.
    let models = dir.path().join("models");
    std::os::unix::fs::symlink(atgen_lab::models::cache::models_dir(), &models).unwrap();
    let embeddings = dir.path().join("embeddings");
    std::fs::create_dir_all(&embeddings).unwrap();
    std::fs::write(embeddings.join(".tmpKilled"), "half a cache").unwrap();
    age_temporaries(&embeddings);
    std::fs::write(embeddings.join(".tmpWriting"), "another run's write").unwrap();
    let exp = TinyExperiment {
        name: "select-sweep",
        ..TinyExperiment::default()
    }
    .write(dir.path());
    let env = [("LAB_MODELS", models.to_str().unwrap())];
    let out = lab_with(
        &[
            "select",
            exp.to_str().unwrap(),
            "--strategy",
            "random",
            "--k",
            "2",
        ],
        &env,
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let left = |name: &str| Path::new(&embeddings).join(name).exists();
    assert!(
        !left(".tmpKilled"),
        "the killed write's temporary is removed"
    );
    assert!(left(".tmpWriting"), "a write in progress is left alone");
}
