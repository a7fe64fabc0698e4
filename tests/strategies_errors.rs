//! A strategy that misbehaves fails the query with the script's name and what went wrong.
use atgen_lab::data::Example;
use atgen_lab::strategy::fake_host::FakeHost;
use atgen_lab::strategy::{select, SandboxLimits, SelectionContext};
use std::path::PathBuf;

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

fn ctx(k: usize) -> SelectionContext {
    SelectionContext {
        pool: pool(5),
        k,
        seed: 1,
        max_new_tokens: 8,
        ..SelectionContext::default()
    }
}

/// Write `body` as `strategies/NAME.rhai` (plus `lib/`) in a temp dir; return the script path.
fn script(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    let p = dir.path().join(format!("{name}.rhai"));
    std::fs::write(&p, body).unwrap();
    p
}

fn run_err(name: &str, body: &str, k: usize, limits: &SandboxLimits) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = script(&dir, name, body);
    let err = select(&p, ctx(k), &FakeHost::new(4), limits).unwrap_err();
    format!("{err:#}")
}

#[test]
fn duplicate_id_is_rejected_naming_the_id() {
    let m = run_err(
        "dup",
        "const KIND = \"al\";\nfn select(ctx, k) { [101, 101] }",
        2,
        &SandboxLimits::default(),
    );
    assert!(
        m.contains("strategy dup returned id 101 more than once"),
        "{m}"
    );
}

#[test]
fn answer_errors_name_the_script_file_and_a_labeled_id_is_called_labeled() {
    let m = run_err(
        "dupfile",
        "const KIND = \"al\";\nfn select(ctx, k) { [101, 101] }",
        2,
        &SandboxLimits::default(),
    );
    assert!(
        m.contains("dupfile.rhai: strategy dupfile returned id 101"),
        "{m}"
    );
    assert!(m.contains("return each id once"), "{m}");
    let dir = tempfile::tempdir().unwrap();
    let p = script(
        &dir,
        "relabel",
        "const KIND = \"al\";\nfn select(ctx, k) { ctx.labeled.ids() }",
    );
    let mut c = ctx(1);
    c.labeled = vec![Example {
        id: 1057,
        input: "labeled".into(),
        output: "x".into(),
        references: vec!["x".into()],
    }];
    let m = format!(
        "{:#}",
        select(&p, c, &FakeHost::new(4), &SandboxLimits::default()).unwrap_err()
    );
    assert!(
        m.contains("relabel.rhai: strategy relabel returned id 1057"),
        "{m}"
    );
    assert!(
        m.contains("already labeled: select from ctx.pool only"),
        "{m}"
    );
    assert!(!m.contains("not positions"), "{m}");
}

#[test]
fn id_outside_the_pool_is_rejected_as_probably_a_position() {
    let m = run_err(
        "pos",
        "const KIND = \"al\";\nfn select(ctx, k) { [0, 1] }",
        2,
        &SandboxLimits::default(),
    );
    assert!(m.contains("strategy pos returned id 0"), "{m}");
    assert!(m.contains("not in the pool"), "{m}");
}

#[test]
fn too_few_ids_is_rejected_with_the_counts() {
    let m = run_err(
        "few",
        "const KIND = \"al\";\nfn select(ctx, k) { ctx.pool.ids().take(int_vec([0])) }",
        3,
        &SandboxLimits::default(),
    );
    assert!(
        m.contains("strategy few returned 1 ids, expected exactly 3"),
        "{m}"
    );
}

#[test]
fn k_larger_than_the_pool_wants_the_whole_pool() {
    let dir = tempfile::tempdir().unwrap();
    let p = script(
        &dir,
        "all",
        "const KIND = \"al\";\nfn select(ctx, k) { ctx.pool.ids() }",
    );
    let s = select(&p, ctx(50), &FakeHost::new(4), &SandboxLimits::default()).unwrap();
    assert_eq!(s.ids, vec![100, 101, 102, 103, 104]);
}

#[test]
fn infinite_loop_stops_at_the_operation_limit() {
    let limits = SandboxLimits {
        max_operations: 20_000,
        ..SandboxLimits::default()
    };
    let m = run_err(
        "spin",
        "const KIND = \"al\";\nfn select(ctx, k) {\n  let i = 0;\n  loop { i += 1; }\n}",
        1,
        &limits,
    );
    assert!(m.contains("strategy spin exceeded 20000 operations"), "{m}");
    assert!(m.contains("spin.rhai"), "{m}");
}

#[test]
fn the_operation_limit_names_the_line_the_call_chain_and_the_key_to_raise() {
    let limits = SandboxLimits {
        max_operations: 20_000,
        ..SandboxLimits::default()
    };
    let body = "const KIND = \"al\";\nfn spin(n) {\n  let i = 0;\n  while i >= 0 { i += n; }\n}\nfn select(ctx, k) {\n  spin(1)\n}";
    let m = run_err("spinfn", body, 1, &limits);
    assert!(m.contains("exceeded 20000 operations"), "{m}");
    assert!(m.contains("spinfn.rhai:4:"), "the line of the loop: {m}");
    assert!(m.contains("in fn spin called at "), "{m}");
    assert!(m.contains("spinfn.rhai:7:3"), "the call in select: {m}");
    assert!(m.contains("`max_operations` under `[sandbox]`"), "{m}");
}

#[test]
fn the_call_depth_limit_names_the_recursive_call_once_and_the_key_to_raise() {
    let body = "const KIND = \"al\";\nfn down(n) { down(n + 1) }\nfn select(ctx, k) { down(0) }";
    let m = run_err("deeper", body, 1, &SandboxLimits::default());
    assert!(m.contains("exceeded 64 nested calls"), "{m}");
    assert!(m.contains("deeper.rhai:2:"), "{m}");
    assert!(
        m.contains("in fn down called at ") && m.contains(" times)"),
        "{m}"
    );
    assert!(m.lines().count() < 6, "repeated frames are collapsed: {m}");
    assert!(m.contains("`max_call_levels` under `[sandbox]`"), "{m}");
}

#[test]
fn a_caught_limit_error_does_not_let_the_script_go_on() {
    let limits = SandboxLimits {
        max_operations: 20_000,
        ..SandboxLimits::default()
    };
    let body = "const KIND = \"al\";\nfn select(ctx, k) {\n  let i = 0;\n  try { loop { i += 1; } } catch (e) { i = 0; }\n  ctx.pool.ids().take(range_vec(k))\n}";
    let m = run_err("catcher", body, 1, &limits);
    assert!(m.contains("exceeded 20000 operations"), "{m}");
}

#[test]
fn a_loop_that_reads_no_variable_is_named_by_its_line() {
    let limits = SandboxLimits {
        max_operations: 20_000,
        ..SandboxLimits::default()
    };
    let body = "const KIND = \"al\";\nfn select(ctx, k) {\n  let i = 0;\n  while true {}\n}";
    let m = run_err("silent", body, 1, &limits);
    assert!(m.contains("exceeded 20000 operations"), "{m}");
    assert!(
        m.contains("silent.rhai:4:3 (a loop that reads no variable"),
        "{m}"
    );
    assert!(!m.contains("line is unknown"), "{m}");
}

#[test]
fn silent_loops_in_imported_modules_are_named_with_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = script(
        &dir,
        "spinlib",
        "const KIND = \"al\";\nimport \"spin\" as s;\nfn select(ctx, k) {\n  s::forever()\n}",
    );
    std::fs::write(
        dir.path().join("lib/spin.rhai"),
        "fn forever() {\n  loop { }\n}\n",
    )
    .unwrap();
    let limits = SandboxLimits {
        max_operations: 20_000,
        ..SandboxLimits::default()
    };
    let m = format!(
        "{:#}",
        select(&p, ctx(1), &FakeHost::new(4), &limits).unwrap_err()
    );
    assert!(
        m.contains("lib/spin.rhai:2:3 (a loop that reads no variable"),
        "{m}"
    );
}

#[test]
fn runaway_recursion_stops_at_the_call_depth_limit() {
    let body = "const KIND = \"al\";\nfn down(n) { down(n + 1) }\nfn select(ctx, k) { down(0) }";
    let m = run_err("deep", body, 1, &SandboxLimits::default());
    assert!(m.contains("strategy deep exceeded 64 nested calls"), "{m}");
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let m = run_err(
        "broken",
        "const KIND = \"al\";\n\nfn select(ctx, k) {\n  let x = ;\n}",
        1,
        &SandboxLimits::default(),
    );
    assert!(m.contains("strategy broken: syntax error at"), "{m}");
    assert!(m.contains("broken.rhai:4:"), "{m}");
}

#[test]
fn runtime_error_carries_the_location_inside_the_script() {
    let body = "const KIND = \"al\";\nfn select(ctx, k) {\n  let v = float_vec([1.0, 2.0]);\n  v.get(7)\n}";
    let m = run_err("oob", body, 1, &SandboxLimits::default());
    assert!(m.contains("position 7 is outside 0..2"), "{m}");
    assert!(m.contains("oob.rhai:4:"), "{m}");
}

#[test]
fn missing_kind_or_select_is_reported() {
    let m = run_err(
        "nokind",
        "fn select(ctx, k) { [] }",
        1,
        &SandboxLimits::default(),
    );
    assert!(m.contains("lacks `const KIND"), "{m}");
    let m = run_err(
        "nosel",
        "const KIND = \"ed\";\nfn pick(ctx, k) { [] }",
        1,
        &SandboxLimits::default(),
    );
    assert!(m.contains("does not define `fn select(ctx, k)`"), "{m}");
}

#[test]
fn eval_and_imports_outside_lib_are_refused() {
    let m = run_err(
        "ev",
        "const KIND = \"al\";\nfn select(ctx, k) { eval(\"[100]\") }",
        1,
        &SandboxLimits::default(),
    );
    assert!(m.contains("syntax error") || m.contains("eval"), "{m}");
    let m = run_err(
        "esc",
        "const KIND = \"al\";\nimport \"../secret\" as s;\nfn select(ctx, k) { [100] }",
        1,
        &SandboxLimits::default(),
    );
    assert!(m.contains("import \"../secret\" refused"), "{m}");
}

#[test]
fn lib_modules_are_importable_and_errors_inside_them_name_the_module() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    std::fs::write(
        dir.path().join("lib/helpers.rhai"),
        "fn first(ids) { ids.take(int_vec([0])) }\nfn bad() { float_vec([]).get(3) }\n",
    )
    .unwrap();
    let ok = script(&dir, "uses", "const KIND = \"al\";\nimport \"helpers\" as h;\nfn select(ctx, k) { h::first(ctx.pool.ids()) }");
    let s = select(&ok, ctx(1), &FakeHost::new(4), &SandboxLimits::default()).unwrap();
    assert_eq!(s.ids, vec![100]);
    let bad = script(
        &dir,
        "usesbad",
        "const KIND = \"al\";\nimport \"helpers\" as h;\nfn select(ctx, k) { h::bad() }",
    );
    let m = format!(
        "{:#}",
        select(&bad, ctx(1), &FakeHost::new(4), &SandboxLimits::default()).unwrap_err()
    );
    assert!(m.contains("lib/helpers.rhai:2:"), "{m}");
    assert!(m.contains("usesbad.rhai:3:"), "{m}");
}

#[test]
fn wrong_answer_shapes_and_param_types_are_explained() {
    let m = run_err(
        "shape",
        "const KIND = \"al\";\nfn select(ctx, k) { \"100\" }",
        1,
        &SandboxLimits::default(),
    );
    assert!(m.contains("select must return pool ids"), "{m}");
    let dir = tempfile::tempdir().unwrap();
    let p = script(&dir, "par", "const KIND = \"al\";\nfn select(ctx, k) { let n = ctx.param(\"n\", 3); ctx.pool.ids().take(range_vec(n)) }");
    let mut c = ctx(2);
    c.params
        .insert("n".into(), toml::Value::String("two".into()));
    let m = format!(
        "{:#}",
        select(&p, c, &FakeHost::new(4), &SandboxLimits::default()).unwrap_err()
    );
    assert!(m.contains("[strategy.params] n = \"two\""), "{m}");
}

#[test]
fn an_empty_pool_or_zero_k_selects_nothing_without_running_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let p = script(
        &dir,
        "never",
        "const KIND = \"al\";\nfn select(ctx, k) { throw \"ran\" }",
    );
    let s = select(&p, ctx(0), &FakeHost::new(4), &SandboxLimits::default()).unwrap();
    assert!(s.ids.is_empty());
    let mut c = ctx(3);
    c.pool.clear();
    assert!(select(&p, c, &FakeHost::new(4), &SandboxLimits::default())
        .unwrap()
        .ids
        .is_empty());
    // It still has to compile.
    let bad = script(
        &dir,
        "bad",
        "const KIND = \"al\";\nfn select(ctx, k) { let = 1; }",
    );
    assert!(select(&bad, ctx(0), &FakeHost::new(4), &SandboxLimits::default()).is_err());
}

#[test]
fn a_thrown_error_reports_its_message_and_location() {
    let m = run_err(
        "thrower",
        "const KIND = \"al\";\nfn select(ctx, k) {\n  throw \"no candidates\";\n}",
        1,
        &SandboxLimits::default(),
    );
    assert!(
        m.contains("no candidates") && m.contains("thrower.rhai:3:"),
        "{m}"
    );
}

#[test]
fn cosine_of_matrices_of_different_widths_is_a_script_error_not_a_crash() {
    let body = "const KIND = \"al\";\nfn select(ctx, k) {\n  let a = stack_columns([float_vec([1.0, 2.0]), float_vec([3.0, 4.0])]);\n  let b = stack_columns([float_vec([1.0, 2.0])]);\n  a.cosine(b)\n}";
    let m = run_err("widths", body, 1, &SandboxLimits::default());
    assert!(
        m.contains("rows of the first matrix have 2 values, rows of the second 1"),
        "{m}"
    );
    assert!(m.contains("widths.rhai:5:"), "{m}");
}

#[test]
fn huge_vectors_and_generate_options_are_refused_with_the_line() {
    for (name, line, wanted) in [
        (
            "zeros",
            "zeros(1 << 62)",
            "zeros: 4611686018427387904 elements",
        ),
        ("full", "full(1 << 40, 1.0)", "full: 1099511627776 elements"),
        (
            "range",
            "range_vec(1 << 40)",
            "range_vec: 1099511627776 elements",
        ),
        (
            "shuffle",
            "ctx.rng().shuffle(1 << 62)",
            "rng.shuffle: 4611686018427387904",
        ),
        (
            "samples",
            "ctx.generate(ctx.pool, #{ n: 1e9, temperature: 1.0 })",
            "generate option `n` is 1000000000",
        ),
        (
            "tokens",
            "ctx.generate(ctx.pool, #{ max_new_tokens: 1e12 })",
            "generate option `max_new_tokens` is 1000000000000",
        ),
    ] {
        let body = format!("const KIND = \"al\";\nfn select(ctx, k) {{\n  let x = {line};\n  ctx.pool.ids().take(range_vec(k))\n}}");
        let m = run_err(name, &body, 1, &SandboxLimits::default());
        assert!(m.contains(wanted), "{name}: {m}");
        assert!(m.contains(&format!("{name}.rhai:3:")), "{name}: {m}");
    }
}

#[test]
fn an_unknown_method_suggests_host_names_and_points_at_the_readme() {
    let body = "const KIND = \"al\";\nfn select(ctx, k) {\n  let v = float_vec([1.0, 2.0]);\n  v.argmax()\n}";
    let m = run_err("unknown", body, 1, &SandboxLimits::default());
    assert!(m.contains("unknown.rhai:4:5"), "{m}");
    assert!(m.contains("Function not found: argmax (FloatVec)"), "{m}");
    assert!(m.contains("did you mean `argsort_desc`, `topk`"), "{m}");
    assert!(m.contains("strategies/README.md"), "{m}");
}

#[test]
fn an_operator_on_the_wrong_types_lists_the_types_it_takes() {
    let body =
        "const KIND = \"al\";\nfn select(ctx, k) {\n  let ids = ctx.pool.ids();\n  ids + 1\n}";
    let m = run_err("plus", body, 1, &SandboxLimits::default());
    assert!(m.contains("plus.rhai:4:"), "{m}");
    assert!(
        m.contains("`+` takes (IntVec, IntVec) but was given (IntVec, i64)"),
        "{m}"
    );
}

#[test]
fn a_data_size_limit_names_the_key_to_raise() {
    let limits = SandboxLimits {
        max_string_size: 1000,
        ..SandboxLimits::default()
    };
    let body = "const KIND = \"al\";\nfn select(ctx, k) {\n  let s = \"x\";\n  loop { s += s; }\n}";
    let m = run_err("grow", body, 1, &limits);
    assert!(m.contains("max_string_size = 1000"), "{m}");
    assert!(m.contains("`max_string_size` under `[sandbox]`"), "{m}");
    // Arrays of texts count too; the message says so and how to keep them out of the script.
    let body = "const KIND = \"al\";\nfn select(ctx, k) {\n  let t = ctx.pool.inputs();\n}";
    let limits = SandboxLimits {
        max_string_size: 40,
        ..SandboxLimits::default()
    };
    let m = run_err("texts", body, 1, &limits);
    assert!(m.contains("max_string_size = 40"), "{m}");
    assert!(m.contains("an array's strings count together"), "{m}");
}

#[test]
fn a_missing_module_names_the_folder_searched_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("outside.rhai");
    std::fs::write(
        &p,
        "const KIND = \"al\";\nimport \"common\" as c;\nfn select(ctx, k) { ctx.pool.ids().take(range_vec(k)) }",
    )
    .unwrap();
    let m = format!(
        "{:#}",
        select(&p, ctx(1), &FakeHost::new(4), &SandboxLimits::default()).unwrap_err()
    );
    let lib = dir.path().join("lib");
    assert!(
        m.contains(&format!("no module common.rhai in {}", lib.display())),
        "{m}"
    );
    assert!(m.contains("that folder does not exist"), "{m}");
    assert!(m.contains("copy strategies/lib next to the script"), "{m}");
    assert!(m.contains("outside.rhai:2:"), "{m}");
    // With a lib/ that lacks the module, the modules it does hold are listed.
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("commons.rhai"), "fn f() { 1 }").unwrap();
    let m = format!(
        "{:#}",
        select(&p, ctx(1), &FakeHost::new(4), &SandboxLimits::default()).unwrap_err()
    );
    assert!(m.contains("did you mean `commons`?"), "{m}");
}

/// `lab check` of a script written to a temp folder.
fn check(name: &str, body: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = script(&dir, name, body);
    atgen_lab::strategy::cli::check_script(&p).map_err(|e| format!("{e:#}"))
}

const HEADER: &str = "// Picks the first k.\n// Deviation: none.\nconst KIND = \"al\";\n";

#[test]
fn lab_check_also_runs_the_script_with_an_empty_labeled_set() {
    let body = format!(
        "{HEADER}fn select(ctx, k) {{\n  let newest = ctx.labeled.ids()[0];\n  ctx.pool.ids().take(range_vec(k))\n}}"
    );
    let m = check("nolabels", &body).unwrap_err();
    assert!(
        m.contains("with an empty labeled set (initial = \"strategy\")"),
        "{m}"
    );
    let ok = check(
        "fine",
        &format!("{HEADER}fn select(ctx, k) {{ ctx.pool.ids().take(range_vec(k)) }}"),
    )
    .unwrap();
    assert!(!ok.contains("warning"), "{ok}");
}

#[test]
fn lab_check_warns_when_scores_cannot_rank() {
    for (name, scores) in [
        ("flat", "zeros(ctx.pool.len())"),
        ("nan", "full(ctx.pool.len(), 0.0) / 0.0"),
    ] {
        let body = format!(
            "{HEADER}fn select(ctx, k) {{\n  let s = {scores};\n  let top = s.topk(k);\n  #{{ids: ctx.pool.ids().take(top), scores: s.take(top)}}\n}}"
        );
        let ok = check(name, &body).unwrap();
        let want = if name == "nan" {
            "are all NaN"
        } else {
            "are all equal"
        };
        assert!(
            ok.contains(&format!("warning: the returned scores {want}")),
            "{name}: {ok}"
        );
    }
}

#[test]
fn lab_check_warns_when_the_header_lines_are_missing() {
    let ok = check(
        "bare",
        "const KIND = \"al\";\nfn select(ctx, k) { ctx.pool.ids().take(range_vec(k)) }",
    )
    .unwrap();
    assert!(
        ok.contains("warning: the script does not open with the two comment lines"),
        "{ok}"
    );
}

#[test]
fn every_built_in_strategy_passes_lab_check_without_warnings() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("strategies");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rhai") {
            let s = atgen_lab::strategy::cli::check_script(&p)
                .unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            assert!(!s.contains("warning"), "{}: {s}", p.display());
        }
    }
}
