use super::*;
use crate::runner::persist::{lock_cell, write_state};
use crate::runner::state::CellState;
use crate::web::launch::tests::valid_form;
use crate::web::launch::{build_toml, check_experiment};
use rand::SeedableRng;

const BASE: &str = r#"
name = "exp"
seeds = [0]
[data]
path = "data/aeslc"
input_field = "email"
output_field = "subject"
[model]
name = "tiny-random-llama"
[al]
init_size = 2
query_size = 2
iterations = 1
[labeller]
kind = "golden"
[[strategy]]
name = "random"
"#;

fn experiment(text: &str) -> Experiment {
    crate::config::parse_experiment(text, Path::new("web-exp.toml"))
        .unwrap_or_else(|e| panic!("{e:#}\n{text}"))
}

/// A cell of `exp` as `lab run` leaves it after `done` evaluations.
fn cell_made_by(results: &Path, exp: &Experiment, strategy: &str, seed: u64, done: usize) {
    let paths = CellPaths::new(results, &exp.name, strategy, seed);
    std::fs::create_dir_all(&paths.dir).unwrap();
    std::fs::write(paths.config(), exp.to_toml_string().unwrap()).unwrap();
    let rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut state = CellState::new(&exp.name, strategy, seed, &rng);
    state.iterations_done = done;
    write_state(&paths, &state).unwrap();
}

#[test]
fn settings_that_shape_results_are_named_with_their_old_and_new_values() {
    let dir = tempfile::tempdir().unwrap();
    cell_made_by(dir.path(), &experiment(BASE), "random", 0, 2);
    let cell = dir.path().join("exp/random/seed-0");
    std::fs::create_dir_all(crate::labeller::human::annotation_dir(&cell)).unwrap();
    let typed = crate::labeller::human::SavedLabel {
        id: 3,
        output: "typed".into(),
        seconds: 2.0,
    };
    std::fs::write(
        crate::labeller::human::labels_path(&cell),
        format!("{}\n", serde_json::to_string(&typed).unwrap()),
    )
    .unwrap();
    let changed = BASE
        .replace("tiny-random-llama", "tiny-random-qwen3")
        .replace("\"golden\"", "\"human\"");
    let earlier = compare(&dir.path().join("exp"), &experiment(&changed)).unwrap();
    assert_eq!((earlier.cells, earlier.hand_labels), (1, 1));
    assert_eq!(
        earlier.conflicts,
        [
            "`labeller.kind` was \"golden\", now \"human\" (in random/seed-0)",
            "`model.name` was \"tiny-random-llama\", now \"tiny-random-qwen3\" (in random/seed-0)",
        ]
    );
}

/// As for `lab run`: more seeds, another strategy and more iterations continue the results.
#[test]
fn seeds_strategies_and_iterations_may_change() {
    let dir = tempfile::tempdir().unwrap();
    cell_made_by(dir.path(), &experiment(BASE), "random", 0, 2);
    let more = BASE
        .replace("seeds = [0]", "seeds = [0, 1]")
        .replace("iterations = 1", "iterations = 3")
        .replace(
            "name = \"random\"",
            "name = \"random\"\n[[strategy]]\nname = \"entropy\"",
        );
    let earlier = compare(&dir.path().join("exp"), &experiment(&more)).unwrap();
    assert_eq!(earlier.cells, 1);
    assert!(earlier.conflicts.is_empty(), "{:?}", earlier.conflicts);
    // Nothing on disk yet: nothing to compare.
    let none = compare(&dir.path().join("other"), &experiment(BASE)).unwrap();
    assert_eq!(none, Earlier::default());
}

/// A strategy the new launch leaves out stays in the folder, and in its report, beside the
/// new cells: made with another model, it would be compared with them unseen.
#[test]
fn a_strategy_left_out_must_share_the_new_settings() {
    let dir = tempfile::tempdir().unwrap();
    cell_made_by(dir.path(), &experiment(BASE), "random", 0, 2);
    let other = BASE
        .replace("name = \"random\"", "name = \"entropy\"")
        .replace("tiny-random-llama", "tiny-random-qwen3");
    let earlier = compare(&dir.path().join("exp"), &experiment(&other)).unwrap();
    assert_eq!(
        earlier.conflicts,
        ["`model.name` was \"tiny-random-llama\", now \"tiny-random-qwen3\" (in random/seed-0)"]
    );
    let same_model = BASE.replace("name = \"random\"", "name = \"entropy\"");
    let earlier = compare(&dir.path().join("exp"), &experiment(&same_model)).unwrap();
    assert!(earlier.conflicts.is_empty(), "{:?}", earlier.conflicts);
}

/// `lab run` refuses to continue such a cell; the form said nothing and launched it to fail.
#[test]
fn a_strategy_that_plans_from_the_stopping_criteria_cannot_take_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ldcal = BASE.replace("name = \"random\"", "name = \"ldcal\"");
    cell_made_by(dir.path(), &experiment(&ldcal), "ldcal", 0, 2);
    let longer = experiment(&ldcal.replace("iterations = 1", "iterations = 3"));
    let earlier = compare(&dir.path().join("exp"), &longer).unwrap();
    assert_eq!(earlier.conflicts.len(), 1, "{:?}", earlier.conflicts);
    assert!(
        earlier.conflicts[0].starts_with("ldcal/seed-0: the [al] stopping criteria changed"),
        "{:?}",
        earlier.conflicts
    );
    // Its other settings unchanged, it resumes.
    let earlier = compare(&dir.path().join("exp"), &experiment(&ldcal)).unwrap();
    assert!(earlier.conflicts.is_empty(), "{:?}", earlier.conflicts);
}

#[test]
fn a_strategy_parameter_is_named_by_its_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let with_k = BASE.replace("name = \"random\"", "name = \"random\"\nparams = { k = 1 }");
    cell_made_by(dir.path(), &experiment(&with_k), "random", 0, 1);
    let earlier = compare(
        &dir.path().join("exp"),
        &experiment(&with_k.replace("k = 1", "k = 2")),
    )
    .unwrap();
    assert_eq!(
        earlier.conflicts,
        ["`strategy[random].params.k` was 1, now 2 (in random/seed-0)"]
    );
}

#[test]
fn starting_over_deletes_the_results_unless_a_run_holds_a_cell() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(BASE);
    cell_made_by(dir.path(), &exp, "random", 0, 2);
    let exp_dir = dir.path().join("exp");
    let lock = lock_cell(&CellPaths::new(dir.path(), "exp", "random", 0)).unwrap();
    let refused = start_over(&exp_dir).unwrap_err().to_string();
    assert!(refused.contains("random/seed-0"), "{refused}");
    assert!(exp_dir.join("random/seed-0/state.json").exists());
    drop(lock);
    start_over(&exp_dir).unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Nothing there: nothing to do.
    start_over(&exp_dir).unwrap();
}

/// Refused for results made with another labeller, the launch offers to start over;
/// ticked, the earlier results are deleted and nothing is refused.
#[test]
fn start_over_deletes_results_made_with_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(
        &dir.path().join("results"),
        &dir.path().join("experiments"),
        None,
    )
    .unwrap();
    let file = app.experiments.join("web-t1.toml");
    let checked = |form: &HashMap<String, String>| {
        check_experiment(&build_toml(form, &app.results).unwrap(), &file).unwrap()
    };
    let old = checked(&valid_form());
    let paths = crate::runner::persist::CellPaths::new(&app.results, "t1", "random", 0);
    std::fs::create_dir_all(&paths.dir).unwrap();
    std::fs::write(paths.config(), old.to_toml_string().unwrap()).unwrap();
    let rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let state = crate::runner::state::CellState::new("t1", "random", 0, &rng);
    crate::runner::persist::write_state(&paths, &state).unwrap();

    // The same settings as the results: resumed, nothing asked.
    assert_eq!(refuse_mixing(&app, &valid_form(), &old, &file), None);
    let mut golden = valid_form();
    golden.insert("labeller".into(), "golden".into());
    let new = checked(&golden);
    let errors = refuse_mixing(&app, &golden, &new, &file).expect("refused");
    assert!(
        errors["start_over"][0].starts_with("`labeller.kind` was \"human\", now \"golden\""),
        "{errors:?}"
    );
    assert_eq!(errors[START_OVER_DELETES], ["the results of 1 cell"]);
    let page = crate::web::launch_form::form_html(&app, &golden, &errors);
    assert!(
        page.contains("delete this experiment's earlier results (the results of 1 cell)"),
        "{page}"
    );
    assert!(paths.state().exists());

    golden.insert("start_over".into(), "yes".into());
    assert_eq!(refuse_mixing(&app, &golden, &new, &file), None);
    assert!(!app.results.join("t1").exists());
}
