//! The datasets shipped under data/: their documented row counts and references.
use super::*;

#[test]
fn shipped_aeslc_has_documented_counts_and_references() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let c = DataConfig {
        path: "data/aeslc".into(),
        input_field: "email".into(),
        output_field: "subject".into(),
        reference_fields: vec!["subject".into(), "annotations".into()],
        ..DataConfig::default()
    };
    let d = load_dataset(&c, root).unwrap();
    assert_eq!(
        (d.train.len(), d.dev.len(), d.test.len()),
        (14_436, 1_960, 1_906)
    );
    assert!(d.train.iter().all(|e| e.references.len() == 1));
    assert!(d
        .dev
        .iter()
        .all(|e| e.references[0] == e.output && e.references.len() >= 2));
    let quick = crate::config::load_experiment(&root.join("experiments/quickstart.toml")).unwrap();
    let q = load_dataset(&quick.data, root).unwrap();
    assert_eq!((q.train.len(), q.test.len()), (1000, 40));
    assert!(
        render_input(&quick.data.input_template, &q.train[0].input, None)
            .starts_with("Write a subject line for this email:\n")
    );
}

#[test]
fn shipped_gsm8k_loads_questions_and_reasoned_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let c = DataConfig {
        path: "data/gsm8k".into(),
        input_field: "question".into(),
        output_field: "answer".into(),
        ..DataConfig::default()
    };
    let d = load_dataset(&c, root).unwrap();
    assert_eq!(
        (d.train.len(), d.dev.len(), d.test.len()),
        (7_473, 0, 1_319)
    );
    assert!(d.train[0].input.starts_with("Natalia sold clips"));
    assert!(d.train[0].output.ends_with("#### 72"));
    assert!(d.test.iter().all(|e| e.output.contains("####")));
}
