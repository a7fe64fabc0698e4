//! `lab serve --bind` on a port another program already listens on.
use std::net::TcpListener;
use std::process::Command;

#[test]
fn a_port_in_use_is_named_with_another_bind_to_pass() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["serve", "--bind", &addr.to_string(), "--results"])
        .arg(tmp.path().join("results"))
        .arg("--experiments")
        .arg(tmp.path().join("experiments"))
        .env("LAB_QUIET", "1")
        .output()
        .expect("the lab binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on {addr}: port {} is already in use",
            addr.port()
        )),
        "{stderr}"
    );
    let advised: std::net::SocketAddr = stderr
        .split("--bind ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no --bind address advised: {stderr}"));
    assert_eq!(advised.ip(), addr.ip(), "{stderr}");
    assert_ne!(advised.port(), addr.port(), "{stderr}");
    drop(taken);
}
