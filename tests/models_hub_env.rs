//! The Hugging Face variables a researcher with a login, a mirror or `HF_HUB_OFFLINE=0` has
//! set, as `lab model` meets them: a stand-in hub on loopback answers 404 to everything and
//! records what it was asked. No request leaves the machine.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

/// A hub that answers 404 to every request; returns its address and the request heads.
fn stand_in_hub() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut head = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                head.push_str(&line);
                line.clear();
            }
            record.lock().unwrap().push(head);
            let _ = (&stream).write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (address, seen)
}

/// `lab model info --model owner/gated` with only the Hugging Face variables given set.
fn model_info(root: &Path, vars: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lab"));
    command
        .args(["model", "info", "--model", "owner/gated"])
        .env("HF_HUB_CACHE", root.join("hub-cache"))
        .env("HOME", root)
        .env("LAB_QUIET", "1");
    for name in [
        "HF_HOME",
        "HF_TOKEN",
        "HF_TOKEN_PATH",
        "HF_ENDPOINT",
        "HF_HUB_OFFLINE",
    ] {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied());
    command.output().expect("lab runs")
}

fn asked_for_config_with_token(seen: &[String], token: &str) -> bool {
    seen.iter().any(|head| {
        head.contains("/owner/gated/resolve/main/config.json")
            && head
                .to_lowercase()
                .contains(&format!("authorization: bearer {token}").to_lowercase())
    })
}

/// `HF_ENDPOINT` (a mirror) and `HF_TOKEN` were ignored: the client asked huggingface.co,
/// without the token, so a gated model failed for a logged-in user.
#[test]
fn hf_endpoint_and_hf_token_reach_the_hub_client() {
    let root = tempfile::tempdir().unwrap();
    let (hub, seen) = stand_in_hub();
    let out = model_info(
        root.path(),
        &[("HF_ENDPOINT", &hub), ("HF_TOKEN", "hf_SECRETTOKEN1")],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let seen = seen.lock().unwrap().clone();
    assert!(
        asked_for_config_with_token(&seen, "hf_SECRETTOKEN1"),
        "requests: {seen:?}\nstderr: {stderr}"
    );
    assert!(!stderr.contains("SECRETTOKEN"), "{stderr}");
}

/// The token `huggingface-cli login` wrote to `$HF_HOME/token` was looked for beside
/// `HF_HUB_CACHE` instead; `HF_HUB_OFFLINE=false` kept the client off the network.
#[test]
fn the_login_token_and_hf_hub_offline_false_are_read_as_huggingface_hub_reads_them() {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("hf-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("token"), "hf_LOGINTOKEN2\n").unwrap();
    let (hub, seen) = stand_in_hub();
    let out = model_info(
        root.path(),
        &[
            ("HF_ENDPOINT", &hub),
            ("HF_HOME", &home.display().to_string()),
            ("HF_HUB_OFFLINE", "false"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let seen = seen.lock().unwrap().clone();
    assert!(
        asked_for_config_with_token(&seen, "hf_LOGINTOKEN2"),
        "requests: {seen:?}\nstderr: {stderr}"
    );
    assert!(!stderr.contains("LOGINTOKEN"), "{stderr}");
}
