//! An answer of the wrong shape is refused with what the script returned and how to fix it.
use atgen_lab::data::Example;
use atgen_lab::strategy::fake_host::FakeHost;
use atgen_lab::strategy::{select, SandboxLimits, SelectionContext};

fn answer_error(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shape.rhai");
    std::fs::write(
        &path,
        format!("const KIND = \"al\";\nfn select(ctx, k) {{\n{body}\n}}\n"),
    )
    .unwrap();
    let pool = (0..5)
        .map(|i| Example {
            id: 100 + i,
            input: format!("input {i}"),
            output: format!("output {i}"),
            references: vec![format!("output {i}")],
        })
        .collect();
    let c = SelectionContext {
        pool,
        k: 2,
        seed: 1,
        max_new_tokens: 8,
        ..SelectionContext::default()
    };
    let err = select(&path, c, &FakeHost::new(4), &SandboxLimits::default()).unwrap_err();
    format!("{err:#}")
}

#[test]
fn an_answer_of_the_wrong_type_says_what_was_returned() {
    let m = answer_error("  let ids = ctx.pool.ids().take(range_vec(k));");
    assert!(m.contains("it returned `()`, nothing"), "{m}");
    assert!(m.contains("no `;` after it"), "{m}");
    let m = answer_error("  -ctx.pool.ids().to_float()");
    assert!(m.contains("it returned a FloatVec"), "{m}");
    assert!(m.contains("ctx.pool.ids().take(scores.topk(k))"), "{m}");
    let m = answer_error("  #{ ids: ctx.pool.ids().to_float() }");
    assert!(
        m.contains("`ids` in the answer must be an array or IntVec of pool ids, not FloatVec"),
        "{m}"
    );
    let m = answer_error("  #{ scores: [1.0, 2.0] }");
    assert!(m.contains("a map without `ids`"), "{m}");
}

#[test]
fn scores_of_another_length_than_the_ids_say_to_give_one_per_id() {
    let m = answer_error("  #{ ids: ctx.pool.ids().take(range_vec(2)), scores: [1.0] }");
    assert!(m.contains("returned 1 scores for 2 ids"), "{m}");
    assert!(m.contains("one score per id, in the same order"), "{m}");
}
