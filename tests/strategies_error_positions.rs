//! Every way a script can fail in the sandbox names the file and line where it happened (the
//! module's own file for `lib/` code) and says what to do: data-size limits, closures, host
//! values used the wrong way.
use atgen_lab::data::Example;
use atgen_lab::strategy::fake_host::FakeHost;
use atgen_lab::strategy::{select, SandboxLimits, SelectionContext};

fn pool(n: u64) -> Vec<Example> {
    (0..n)
        .map(|i| Example {
            id: 100 + i,
            input: format!("input number {i}"),
            output: format!("output {i}"),
            references: vec![format!("output {i}")],
        })
        .collect()
}

/// Runs `strategies/NAME.rhai` = `const KIND = "al";\n` + `body` (so the body starts at line 2)
/// with `lib/texts.rhai` = `lib`, and returns the error.
fn run_err(name: &str, body: &str, lib: &str, limits: &SandboxLimits) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("lib/texts.rhai"), lib).unwrap();
    let p = dir.path().join(format!("{name}.rhai"));
    std::fs::write(&p, format!("const KIND = \"al\";\n{body}")).unwrap();
    let c = SelectionContext {
        pool: pool(5),
        k: 1,
        seed: 1,
        max_new_tokens: 8,
        ..SelectionContext::default()
    };
    let err = select(&p, c, &FakeHost::new(4), limits).unwrap_err();
    format!("{err:#}")
}

fn small_data() -> SandboxLimits {
    SandboxLimits {
        max_string_size: 40,
        max_array_size: 10,
        max_map_size: 3,
        ..SandboxLimits::default()
    }
}

#[test]
fn a_string_or_array_built_past_its_limit_names_the_line_the_limit_and_the_key() {
    let body = "fn select(ctx, k) {\n  let s = \"x\";\n  loop { s += s; }\n}";
    let m = run_err("grow", body, "", &small_data());
    assert!(m.contains("grow.rhai:4:"), "the line of `s += s`: {m}");
    assert!(m.contains("max_string_size = 40 bytes"), "{m}");
    assert!(m.contains("`max_string_size` under `[sandbox]`"), "{m}");
    let body = "fn select(ctx, k) {\n  let a = [];\n  for i in 0..100 {\n    a.push(i);\n  }\n}";
    let m = run_err("pushes", body, "", &small_data());
    assert!(m.contains("pushes.rhai:5:"), "the line of the push: {m}");
    assert!(m.contains("max_array_size = 10 elements"), "{m}");
    assert!(m.contains("keep numbers in FloatVec and IntVec"), "{m}");
    assert!(m.contains("`max_array_size` under `[sandbox]`"), "{m}");
    let body =
        "fn select(ctx, k) {\n  let seen = #{};\n  for i in 0..10 { seen[`k${i}`] = i; }\n  \
                seen.len()\n}";
    let m = run_err("keys", body, "", &small_data());
    assert!(
        m.contains("keys.rhai:4:"),
        "the line that fills the map: {m}"
    );
    assert!(m.contains("max_map_size = 3 entries"), "{m}");
    assert!(m.contains("`max_map_size` under `[sandbox]`"), "{m}");
    assert!(m.contains("a map is measured when it is read"), "{m}");
}

#[test]
fn a_map_filled_past_its_limit_is_stopped_at_the_line_that_fills_it_not_its_next_use() {
    // Rhai itself measures a map only at its next use: here the `len()` in select, after the
    // helper's loop has added all 200 entries.
    let body = "fn fill(m) {\n  for i in 0..200 {\n    m[`k${i}`] = i;\n  }\n  m\n}\n\
                fn select(ctx, k) {\n  let seen = fill(#{});\n  seen.len();\n  []\n}";
    let m = run_err("fill", body, "", &small_data());
    assert!(m.contains("fill.rhai:4:"), "the line in the helper: {m}");
    assert!(m.contains("in fn fill called at "), "{m}");
    assert!(m.contains("fill.rhai:9:"), "the call in select: {m}");
    assert!(m.contains("max_map_size = 3 entries"), "{m}");
    // Filled in a lib module: the module's line.
    let body = "import \"texts\" as t;\nfn select(ctx, k) {\n  let seen = t::fill();\n  \
                seen.len();\n  []\n}";
    let lib = "fn fill() {\n  let m = #{};\n  for i in 0..200 { m[`k${i}`] = i; }\n  m\n}\n";
    let m = run_err("libfill", body, lib, &small_data());
    assert!(
        m.contains("lib/texts.rhai:3:"),
        "the line in the module: {m}"
    );
    assert!(m.contains("in fn fill called at "), "{m}");
}

#[test]
fn a_map_filled_inside_another_map_is_stopped_at_the_line_that_fills_it() {
    // The outer map keeps one or two entries: only the inner map grows.
    let cases = [
        (
            "prop",
            "let m = #{ inner: #{} };\n  for i in 0..200 { m.inner[`k${i}`] = i; }",
        ),
        (
            "literal",
            "let m = #{ a: #{} };\n  for i in 0..200 { m[\"a\"][`k${i}`] = i; }",
        ),
        (
            "variable",
            "let m = #{ a: #{}, b: #{} };\n  let g = \"b\";\n  for i in 0..200 { m[g][`k${i}`] = i; }",
        ),
        (
            "array",
            "let m = #{ rows: [#{}, #{}] };\n  for i in 0..200 { m.rows[1][`k${i}`] = i; }",
        ),
    ];
    for (name, fill) in cases {
        let line = 3 + fill.matches('\n').count();
        let body = format!("fn select(ctx, k) {{\n  {fill}\n  let n = m.len();\n  []\n}}");
        let m = run_err(name, &body, "", &small_data());
        assert!(
            m.contains(&format!("{name}.rhai:{line}:")),
            "{name}: the line that fills the inner map: {m}"
        );
        assert!(m.contains("max_map_size = 3 entries"), "{name}: {m}");
    }
}

#[test]
fn a_host_function_returning_too_large_a_value_names_the_call_and_how_to_keep_texts_out() {
    let body = "fn select(ctx, k) {\n  let n = 1;\n  let t = ctx.pool.inputs();\n}";
    let m = run_err("inputs", body, "", &small_data());
    assert!(m.contains("inputs.rhai:4:"), "the line of inputs(): {m}");
    assert!(m.contains("an array's strings count together"), "{m}");
    assert!(m.contains("keep texts with the host"), "{m}");
    assert!(m.contains("ctx.stemmed"), "{m}");
    let body = "fn select(ctx, k) {\n  range_vec(20).to_array()\n}";
    let m = run_err("numbers", body, "", &small_data());
    assert!(m.contains("numbers.rhai:3:"), "{m}");
    assert!(m.contains("max_array_size = 10"), "{m}");
}

#[test]
fn too_large_a_host_value_in_a_lib_module_names_the_module_line_and_the_call() {
    let body = "import \"texts\" as t;\nfn select(ctx, k) {\n  t::all_inputs(ctx)\n}";
    let lib = "fn all_inputs(ctx) {\n  let v = ctx.pool;\n  v.inputs()\n}\n";
    let m = run_err("uselib", body, lib, &small_data());
    assert!(m.contains("lib/texts.rhai:3:"), "the module's line: {m}");
    assert!(m.contains("in fn all_inputs called at "), "{m}");
    assert!(m.contains("uselib.rhai:4:"), "the call in select: {m}");
    assert!(m.contains("max_string_size = 40"), "{m}");
}

#[test]
fn a_string_grown_too_large_in_a_helper_names_the_call_in_select() {
    // Rhai keeps no line inside the helper for its own limit errors, only the call's.
    let body = "fn grow() {\n  let s = \"x\";\n  loop { s += s; }\n}\nfn select(ctx, k) {\n  \
                let n = 1;\n  grow()\n}";
    let m = run_err("helper", body, "", &small_data());
    assert!(m.contains("helper.rhai:8:"), "the call of grow(): {m}");
    assert!(m.contains(", inside fn grow called there"), "{m}");
    assert!(m.contains("max_string_size = 40"), "{m}");
    // The same through a lib module, and an array grown by pushes in a helper's helper: the
    // function named is the one select called.
    let body = "import \"texts\" as t;\nfn select(ctx, k) {\n  let n = t::outer();\n  []\n}";
    let lib = "fn outer() {\n  inner()\n}\nfn inner() {\n  let a = [];\n  \
               for i in 0..100 { a.push(i); }\n  a\n}\n";
    let m = run_err("nested", body, lib, &small_data());
    assert!(m.contains("nested.rhai:4:"), "the call of t::outer(): {m}");
    assert!(m.contains(", inside fn t::outer called there"), "{m}");
    assert!(m.contains("max_array_size = 10"), "{m}");
    // A limit hit by select's own statement names no helper.
    let body = "fn grow() { 1 }\nfn select(ctx, k) {\n  let s = \"x\";\n  loop { s += s; }\n}";
    let m = run_err("own", body, "", &small_data());
    assert!(m.contains("own.rhai:5:"), "{m}");
    assert!(!m.contains("inside fn"), "{m}");
}

#[test]
fn an_error_in_a_closure_names_its_line_and_the_call_it_was_passed_to() {
    let body = "fn select(ctx, k) {\n  let a = [1, 2];\n  a.filter(|x| {\n    x / 0\n  })\n}";
    let m = run_err("closure", body, "", &SandboxLimits::default());
    assert!(
        m.contains("closure.rhai:5:"),
        "the line in the closure: {m}"
    );
    assert!(m.contains("in a closure called at "), "{m}");
    assert!(m.contains("in fn filter called at "), "{m}");
    assert!(!m.contains("anon$"), "Rhai's hash name says nothing: {m}");
    // In a lib module: the module's line, then the call chain back to select.
    let body = "import \"texts\" as t;\nfn select(ctx, k) {\n  t::doubled(ctx)\n}";
    let lib = "fn doubled(ctx) {\n  [1].map(|x| {\n    x.nope()\n  })\n}\n";
    let m = run_err("libclosure", body, lib, &SandboxLimits::default());
    assert!(m.contains("lib/texts.rhai:3:"), "{m}");
    assert!(m.contains("in a closure called at "), "{m}");
    assert!(m.contains("libclosure.rhai:4:"), "{m}");
}

#[test]
fn a_host_call_with_the_wrong_argument_types_names_the_line_and_what_it_takes() {
    let m = run_err(
        "embeds",
        "fn select(ctx, k) {\n  ctx.embed(42)\n}",
        "",
        &SandboxLimits::default(),
    );
    assert!(m.contains("embeds.rhai:3:"), "{m}");
    assert!(m.contains("`embed` takes (Context, View)"), "{m}");
    let m = run_err(
        "clusters",
        "fn select(ctx, k) {\n  kmeans(\"x\", 1, 2, 3)\n}",
        "",
        &SandboxLimits::default(),
    );
    assert!(m.contains("clusters.rhai:3:"), "{m}");
    assert!(
        m.contains("takes (Matrix, i64, i64, i64) but was given (string, i64, i64, i64)"),
        "Rhai's `&str | ImmutableString | String` is a string: {m}"
    );
    let m = run_err(
        "embeddings",
        "fn select(ctx, k) {\n  ctx.embeddings(ctx.pool)\n}",
        "",
        &SandboxLimits::default(),
    );
    assert!(m.contains("embeddings.rhai:3:"), "{m}");
    assert!(m.contains("did you mean `embed`"), "{m}");
}

#[test]
fn a_position_outside_a_host_vector_or_matrix_names_the_line_and_the_valid_positions() {
    let body = "fn select(ctx, k) {\n  let m = ctx.embed(ctx.pool);\n  m.row(9)\n}";
    let m = run_err("row", body, "", &SandboxLimits::default());
    assert!(m.contains("row.rhai:4:"), "{m}");
    assert!(m.contains("position 9 is outside 0..5"), "{m}");
    assert!(m.contains("positions 0 to 4 are valid"), "{m}");
    let body = "fn select(ctx, k) {\n  let ids = ctx.pool.ids();\n  ids[-1]\n}";
    let m = run_err("negative", body, "", &SandboxLimits::default());
    assert!(m.contains("negative.rhai:4:"), "{m}");
    assert!(m.contains("positions count from 0"), "{m}");
}

#[test]
fn indexing_or_a_property_a_host_type_lacks_says_what_it_has() {
    let cases = [
        (
            "matrix",
            "let m = ctx.embed(ctx.pool);\n  m[0]",
            "`m.row(i)`",
        ),
        ("view", "let v = ctx.pool;\n  v[0]", "`v.ids()[i]`"),
        (
            "write",
            "let v = zeros(3);\n  v[0] = 1.0;",
            "a FloatVec is read-only",
        ),
        (
            "prop",
            "let v = ctx.pool;\n  v.len",
            "`len` is a method of View",
        ),
        ("ctxprop", "let x = 1;\n  ctx.pol", "did you mean `pool`?"),
    ];
    for (name, lines, advice) in cases {
        let body = format!("fn select(ctx, k) {{\n  {lines}\n}}");
        let m = run_err(name, &body, "", &SandboxLimits::default());
        assert!(m.contains(&format!("{name}.rhai:4:")), "{name}: {m}");
        assert!(m.contains(advice), "{name}: {m}");
    }
}

#[test]
fn a_module_that_fails_to_load_is_named_by_its_own_file_and_line() {
    let body = "import \"texts\" as t;\nfn select(ctx, k) {\n  t::f(ctx)\n}";
    for (what, lib) in [
        ("a syntax error", "fn f(ctx) {\n  let = 1;\n}\n"),
        (
            "a throw at its top level",
            "let x = 1;\nthrow \"at load\";\nfn f(ctx) { 1 }\n",
        ),
    ] {
        let m = run_err("loads", body, lib, &SandboxLimits::default());
        assert!(m.contains("lib/texts.rhai:2:"), "{what}: {m}");
        assert!(
            !m.contains("loads.rhai:2:7"),
            "{what}: the module's line under the script's name: {m}"
        );
        assert!(
            m.contains("in module \"texts\" imported at "),
            "{what}: {m}"
        );
        assert!(m.contains("loads.rhai:2:"), "{what}: the import: {m}");
    }
}

#[test]
fn loops_over_vectors_and_self_calling_closures_are_explained() {
    let body = "fn select(ctx, k) {\n  let ids = ctx.pool.ids();\n  for id in ids { }\n}";
    let m = run_err("forvec", body, "", &SandboxLimits::default());
    assert!(m.contains("forvec.rhai:4:"), "{m}");
    assert!(m.contains("loop over `v.to_array()`"), "{m}");
    let body = "fn select(ctx, k) {\n  let f = 0;\n  f = |n| f.call(n + 1);\n  f.call(0)\n}";
    let m = run_err("selfcall", body, "", &SandboxLimits::default());
    assert!(
        m.contains("selfcall.rhai:5:"),
        "the call of the closure: {m}"
    );
    assert!(m.contains("write a named `fn` for recursion"), "{m}");
}

#[test]
fn generate_options_outside_their_range_are_refused_with_the_line() {
    for (name, option, wanted) in [
        (
            "negative",
            "temperature: -1.0",
            "`temperature` is -1: use 0 (greedy) or more",
        ),
        (
            "nucleus",
            "top_p: 0.0",
            "`top_p` is 0: use a number in (0, 1]",
        ),
    ] {
        let body = format!("fn select(ctx, k) {{\n  ctx.generate(ctx.pool, #{{ {option} }})\n}}");
        let m = run_err(name, &body, "", &SandboxLimits::default());
        assert!(m.contains(&format!("{name}.rhai:3:")), "{m}");
        assert!(m.contains(wanted), "{m}");
    }
}
