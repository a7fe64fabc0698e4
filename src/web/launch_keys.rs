//! API keys a launched run will read. The run started from the form inherits this server's
//! environment: a key missing from it would fail the run at its first label or its first
//! judged evaluation, with advice (export the variable) that the person at the browser
//! cannot follow there. Only variable names are ever shown, never their values.
use crate::config::{Experiment, LabellerKind};

/// Whether `var` holds something where this server runs.
fn is_set(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.trim().is_empty())
}

fn advice(var: &str, whose: &str) -> String {
    format!(
        "the environment variable {var} ({whose} API key) is not set where `lab serve` runs, \
         and runs started here read it from there: stop `lab serve`, export {var}=<your API \
         key>, and start it again"
    )
}

/// Each key variable the experiment needs and this server's environment lacks, as (form
/// field, problem): the LLM labeller's next to the Labeller field, the `[eval.judge]` one's
/// next to the advanced box where that table is written.
pub fn missing_api_keys(exp: &Experiment) -> Vec<(&'static str, String)> {
    let mut missing = Vec::new();
    if exp.labeller.kind == LabellerKind::Llm {
        let var = crate::labeller::factory::llm_config_of(exp, 0.0)
            .ok()
            .and_then(|c| c.key_env());
        if let Some(var) = var.filter(|v| !is_set(v)) {
            missing.push(("labeller", advice(&var, "the LLM labeller's")));
        }
    }
    if let Some(judge) = &exp.eval.judge {
        let var = crate::labeller::factory::judge_config_of(judge).key_env();
        if let Some(var) = var.filter(|v| !is_set(v)) {
            missing.push(("advanced", advice(&var, "the [eval.judge] LLM's")));
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use crate::web::launch::tests::valid_form;
    use crate::web::launch::{build_toml, check_experiment};
    use std::path::Path;

    /// An LLM labeller whose key is not in the server's environment was launched, and the
    /// run failed at once with "export OPENAI_API_KEY", which a browser cannot do.
    #[test]
    fn an_llm_labeller_without_its_key_where_the_server_runs_is_refused_before_launch() {
        let mut f = valid_form();
        f.insert("labeller".into(), "llm".into());
        f.insert("llm_model".into(), "gpt-4o-mini".into());
        let with_key = |var: &str| {
            let mut f = f.clone();
            f.insert(
                "advanced".into(),
                format!("[labeller]\napi_key_env = \"{var}\"\n"),
            );
            let text = build_toml(&f, Path::new("/tmp/r")).unwrap();
            check_experiment(&text, Path::new("web-t1.toml"))
        };
        let errors = with_key("LAB_WEB_TEST_KEY_NEVER_SET").unwrap_err();
        let said = errors["labeller"].join("\n");
        assert!(
            said.contains("LAB_WEB_TEST_KEY_NEVER_SET") && said.contains("stop `lab serve`"),
            "{errors:?}"
        );
        // Any variable that is set will do (its value is never shown).
        let exp = with_key("PATH").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(exp.labeller.kind, crate::config::LabellerKind::Llm);
    }

    /// The judge's key was not checked: the run launched and failed at its first
    /// evaluation, its log saying to export a variable the browser cannot set.
    #[test]
    fn a_judge_without_its_key_where_the_server_runs_is_refused_before_launch() {
        let with_judge = |key_line: &str| {
            let mut f = valid_form();
            f.insert(
                "advanced".into(),
                format!(
                    "[eval]\nmetrics = [\"rouge1\", \"llm_judge\"]\n[eval.judge]\n\
                     model = \"gpt-4o-mini\"\n{key_line}"
                ),
            );
            let text = build_toml(&f, Path::new("/tmp/r")).unwrap();
            check_experiment(&text, Path::new("web-t1.toml"))
        };
        let errors = with_judge("api_key_env = \"LAB_WEB_TEST_JUDGE_KEY_NEVER_SET\"\n")
            .expect_err("a judge without its key is refused");
        let said = errors["advanced"].join("\n");
        assert!(
            said.contains("LAB_WEB_TEST_JUDGE_KEY_NEVER_SET")
                && said.contains("[eval.judge]")
                && said.contains("stop `lab serve`"),
            "{errors:?}"
        );
        // Any variable that is set will do.
        let exp = with_judge("api_key_env = \"HOME\"\n").unwrap_or_else(|e| panic!("{e:?}"));
        assert!(exp.eval.judge.is_some());
        // The default variable of the default provider is named when the table names none.
        if std::env::var_os("OPENAI_API_KEY").is_none() {
            let errors = with_judge("").expect_err("OPENAI_API_KEY is not set here");
            assert!(
                errors["advanced"].join("\n").contains("OPENAI_API_KEY"),
                "{errors:?}"
            );
        }
    }
}
