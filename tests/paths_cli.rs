//! `lab paths` names every folder the lab writes outside the project, each moved by its
//! environment variable.
use std::process::Command;

#[test]
fn paths_names_models_embeddings_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let labels = dir.path().join("labels");
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .arg("paths")
        .env("LAB_MODELS", &models)
        .env("LAB_LABEL_CACHE", &labels)
        .env_remove("LAB_UNFUSED")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "models:     {}\nembeddings: {}\nlabels:     {}\n",
            models.display(),
            dir.path().join("embeddings").display(),
            labels.display()
        )
    );
}
