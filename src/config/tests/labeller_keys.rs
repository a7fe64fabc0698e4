//! The `[labeller]` table: LLM settings need `kind = "llm"`, a provider and a model within
//! the provider's limits, and `api_key_env` names a variable, never the key itself.
use super::*;

#[test]
fn api_key_env_must_be_a_variable_name() {
    let text = format!("{MINIMAL}\n[labeller]\napi_key_env = \"sk-proj-abc123\"\n");
    assert!(error_of(&text).contains("never the key itself"));
}

#[test]
fn llm_labeller_needs_provider_and_model() {
    let err = error_of(&format!("{MINIMAL}\n[labeller]\nkind = \"llm\"\n"));
    assert!(err.contains("`labeller.provider`"), "{err}");
    assert!(err.contains("`labeller.model`"), "{err}");
}

#[test]
fn pasted_api_keys_are_refused_as_variable_names() {
    for key in [
        "gsk_abcdefghijklmnopqrstuvwxyz0123456789",
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYz",
        "3f9a0c1d2e4b5a6978c0d1e2f3a4b5c6",
        "A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6E7F8A9B0C1D2E3F4A5B6C7D8E9F0A1B2C3",
    ] {
        let text = format!(
            "{MINIMAL}\n[labeller]\nkind = \"llm\"\nprovider = \"openai\"\nmodel = \"m\"\napi_key_env = \"{key}\"\n"
        );
        let err = error_of(&text);
        assert!(err.contains("never the key itself"), "{key}: {err}");
        assert!(
            !err.contains(key),
            "the error must not repeat the key: {err}"
        );
    }
    let ok = format!(
        "{MINIMAL}\n[labeller]\nkind = \"llm\"\nprovider = \"openai\"\nmodel = \"m\"\napi_key_env = \"GROQ_API_KEY_2\"\n"
    );
    parse(&ok).unwrap();
}

#[test]
fn llm_settings_without_kind_llm_are_refused_instead_of_using_gold_labels() {
    let text = format!(
        "{MINIMAL}\n[labeller]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\nprice_input_per_mtok = 0.15\n"
    );
    let err = error_of(&text);
    for key in [
        "labeller.provider",
        "labeller.model",
        "labeller.price_input_per_mtok",
    ] {
        assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
    }
    assert!(
        err.contains("labeller.kind is \"golden\" (the default): add kind = \"llm\""),
        "{err}"
    );
    // A local labeller needs its model, and may not have LLM-only settings.
    let local = format!("{MINIMAL}\n[labeller]\nkind = \"local\"\n");
    assert!(error_of(&local).contains("`labeller.model`"));
    let local_ok =
        format!("{MINIMAL}\n[labeller]\nkind = \"local\"\nmodel = \"smollm2-135m-instruct\"\n");
    parse(&local_ok).unwrap();
}

#[test]
fn provider_limits_are_checked_before_the_run() {
    let llm = |extra: &str, provider: &str| {
        format!(
            "{MINIMAL}\n[labeller]\nkind = \"llm\"\nprovider = \"{provider}\"\nmodel = \"m\"\n{extra}\n"
        )
    };
    let err = error_of(&llm("temperature = 2.5", "openai"));
    assert!(err.contains("`labeller.temperature`"), "{err}");
    assert!(err.contains("above 2"), "{err}");
    let err = error_of(&llm("temperature = 1.5", "anthropic"));
    assert!(err.contains("above 1"), "{err}");
    parse(&llm("temperature = 1.5", "openai")).unwrap();
    let err = error_of(&llm("batch_api = true", "anthropic"));
    assert!(err.contains("`labeller.batch_api`"), "{err}");
}

#[test]
fn an_invisible_character_in_a_model_name_is_refused_not_a_crash() {
    let text = format!(
        "{MINIMAL}\n[labeller]\nkind = \"llm\"\nprovider = \"openai\"\nmodel = \"gpt-4o\\u200B\"\n"
    );
    let err = error_of(&text);
    assert!(err.contains("`labeller.model`"), "{err}");
    assert!(err.contains("U+200B"), "{err}");
    // The client's own settings hold any string as data (this used to panic).
    let cfg = crate::labeller::llm::LlmLabellerConfig::new(
        crate::labeller::llm::Provider::Openai,
        "gpt\u{0}\u{200b}\"x",
    );
    assert_eq!(cfg.model, "gpt\u{0}\u{200b}\"x");
}
