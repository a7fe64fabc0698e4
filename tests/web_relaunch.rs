//! Launching from the form under the name of an experiment that has results. Before, the
//! form overwrote `web-<name>.toml` and started `lab run`, which failed on each old cell
//! ("written by a different configuration ... restore the experiment file", a file just
//! overwritten) while the new settings' cells ran beside them: the page showed "failed", and
//! the folder held results of both settings.
mod web_support;
use atgen_lab::runner::persist::{write_state, CellPaths};
use atgen_lab::runner::state::CellState;
use rand::SeedableRng;
use std::collections::HashMap;
use web_support::http::Client;
use web_support::launch::TINY_FORM;
use web_support::serve::Serve;

#[test]
fn a_launch_with_settings_other_than_its_results_is_refused_naming_them() {
    let serve = Serve::loopback();
    let mut fields = vec![
        ("name", "again"),
        ("dataset", "data/aeslc"),
        ("strategy", "random"),
        ("labeller", "golden"),
        ("advanced", "[eval]\nmetrics = [\"rouge1\"]\n"),
    ];
    fields.extend(TINY_FORM);
    // What an earlier launch of these fields left: its file, and a cell with its
    // configuration as `lab run` writes it.
    let form: HashMap<String, String> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let file = serve.experiments.join("web-again.toml");
    let text = atgen_lab::web::launch::build_toml(&form, &serve.results).unwrap();
    let exp = atgen_lab::web::launch::check_experiment(&text, &file).unwrap();
    std::fs::create_dir_all(&serve.experiments).unwrap();
    std::fs::write(&file, &text).unwrap();
    let cell = CellPaths::new(&serve.results, "again", "random", 0);
    std::fs::create_dir_all(&cell.dir).unwrap();
    std::fs::write(cell.config(), exp.to_toml_string().unwrap()).unwrap();
    let rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut state = CellState::new("again", "random", 0, &rng);
    state.iterations_done = 2;
    state.finished = true;
    write_state(&cell, &state).unwrap();
    let state_before = std::fs::read_to_string(cell.state()).unwrap();

    let mut changed = fields.clone();
    changed.retain(|(k, _)| *k != "labeller");
    changed.push(("labeller", "human"));
    let answer = Client::default().post_fields(&format!("{}/launch", serve.url), &changed);
    assert_eq!(answer.status, 409, "{}", answer.body);
    let body = &answer.body;
    assert!(
        body.contains("<li>`labeller.kind` was &quot;golden&quot;, now &quot;human&quot; (in random/seed-0)</li>"),
        "{body}"
    );
    assert!(
        body.contains("experiment `again` has results made with other settings")
            && body.contains("web-again.toml"),
        "{body}"
    );
    assert!(
        body.contains("<input type=\"checkbox\" id=\"start_over\" name=\"start_over\""),
        "{body}"
    );
    // Nothing was touched: the earlier file still holds the settings to resume with.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    assert_eq!(std::fs::read_to_string(cell.state()).unwrap(), state_before);
    assert!(!serve.results.join("again/run.log").exists());
}
