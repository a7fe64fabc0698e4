//! A reply that carries the API key in its text (a proxy at a wrong `base_url` echoing the
//! request's headers inside a completion) must not put the key into a label: labels go to the
//! label cache, the cell's state and the results.
mod support;

use atgen_lab::labeller::llm::{LlmLabeller, LlmLabellerConfig, Provider};
use atgen_lab::labeller::Labeller;
use serde_json::{json, Value};
use std::sync::Arc;
use support::mock_openai::{MockServer, Options};
use support::{all_file_text, config, emails};

/// A server whose every reply's text is the request's authorization header, as echoed.
fn echoing_server() -> (MockServer, String) {
    let key = Options::default().api_key;
    let echoed = format!("Authorization: Bearer {key}");
    let srv = MockServer::start(Options {
        edit_reply: Some(Arc::new(move |body: &mut Value| {
            if body.get("choices").is_some() {
                body["choices"][0]["message"]["content"] = json!(echoed);
            } else {
                body["content"] = json!([{"type": "text", "text": echoed}]);
            }
        })),
        ..Options::default()
    });
    (srv, key)
}

/// Labels two emails and checks that neither the labels nor any file in the cache hold `key`.
fn assert_labels_hide(cfg: &LlmLabellerConfig, cache: &std::path::Path, key: &str) {
    let mut lab = LlmLabeller::from_config(cfg).unwrap();
    let out = lab.label(&emails(2), &[]).unwrap();
    for label in out.labels() {
        assert!(!label.output.contains(key), "{}", label.output);
        assert!(label.output.contains("redacted"), "{}", label.output);
    }
    for (path, text) in all_file_text(cache) {
        assert!(!text.contains(key), "the key is in {path}");
    }
}

#[test]
fn the_key_echoed_in_a_chat_reply_is_not_kept_in_labels() {
    let (srv, key) = echoing_server();
    let dir = tempfile::tempdir().unwrap();
    let cfg = srv.openai_config("LAB_TEST_KEY_ECHO_CHAT", dir.path());
    assert_labels_hide(&cfg, dir.path(), &key);
}

#[test]
fn the_key_echoed_in_a_batch_reply_is_not_kept_in_labels() {
    let (srv, key) = echoing_server();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = srv.openai_config("LAB_TEST_KEY_ECHO_BATCH", dir.path());
    cfg.batch_api = true;
    assert_labels_hide(&cfg, dir.path(), &key);
}

#[test]
fn the_key_echoed_in_an_anthropic_reply_is_not_kept_in_labels() {
    let (srv, key) = echoing_server();
    let var = "LAB_TEST_KEY_ECHO_ANTHROPIC";
    std::env::set_var(var, &key);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        Provider::Anthropic,
        &srv.host_url(),
        "mock-model",
        var,
        dir.path(),
    );
    assert_labels_hide(&cfg, dir.path(), &key);
}
