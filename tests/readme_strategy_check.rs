//! `lab check` on the README's "Adding a strategy" example, taken from the README itself: a
//! reader who copies it must get a clean check, not a warning about the synthetic pool.
use std::path::PathBuf;

#[test]
fn the_readme_example_strategy_passes_lab_check_without_warnings() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let section = &readme[readme.find("## Adding a strategy").expect("README section")..];
    let start = section.find("```rhai\n").expect("rhai block") + "```rhai\n".len();
    let source = &section[start..start + section[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short_first.rhai");
    std::fs::write(&path, source).unwrap();
    let summary = atgen_lab::strategy::cli::check_script(&path)
        .unwrap_or_else(|e| panic!("README example: {e:#}"));
    assert!(summary.contains("chose"), "{summary}");
    assert!(!summary.contains("warning"), "{summary}");
}
