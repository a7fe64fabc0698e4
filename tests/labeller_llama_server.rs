//! The OpenAI-compatible labeller against a real server: llama-cpp-python's server serving
//! the SmolLM2 GGUF from the models cache. Labels AESLC emails, checks usage-based cost, the
//! budget stop, the label cache, and a server restart in the middle of a run.
//!
//! Needs `pip install 'llama-cpp-python[server]'` and `lab setup`; runs only with
//! `LAB_LLAMA_SERVER=1` (set by `.ci/run` after installing the server).
mod support;

use atgen_lab::data::Example;
use atgen_lab::labeller::budget::worst_case_input_tokens;
use atgen_lab::labeller::llm::{LlmLabeller, LlmLabellerConfig, Provider};
use atgen_lab::labeller::{LabelOutcome, Labeller};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A llama-cpp-python server process, killed when dropped.
struct LlamaServer {
    child: Child,
    port: u16,
}

fn gguf() -> PathBuf {
    atgen_lab::models::cache::default_model_dir("smollm2-135m-instruct")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

impl LlamaServer {
    fn start(port: u16, log: &Path) -> LlamaServer {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new("python3")
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(gguf())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--n_ctx",
                "2048",
            ])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("python3 -m llama_cpp.server starts");
        let server = LlamaServer { child, port };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let url = format!("http://127.0.0.1:{}/v1/models", self.port);
        while Instant::now() < deadline {
            if ureq::get(&url)
                .timeout(Duration::from_secs(2))
                .call()
                .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "llama-cpp-python server did not answer on port {} within 120 s",
            self.port
        );
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first `n` emails of the AESLC test split shipped in `data/aeslc`.
fn aeslc_emails(n: usize) -> Vec<Example> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/aeslc/test.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .take(n)
        .enumerate()
        .map(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let subject = v["subject"].as_str().unwrap().to_string();
            Example {
                id: i as u64,
                input: v["email"].as_str().unwrap().to_string(),
                output: subject.clone(),
                references: vec![subject],
            }
        })
        .collect()
}

/// The tests' client settings (prices $0.15 / $0.60, the cache in `cache`), with the patience
/// a small model on a CPU needs.
fn config(port: u16, cache: &Path) -> LlmLabellerConfig {
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let mut c = support::config(
        Provider::Custom,
        &base_url,
        "smollm2-135m-instruct",
        "",
        cache,
    );
    // llama-cpp-python's server takes no key.
    c.api_key_env = None;
    c.system_prompt =
        "Write a short subject line for the email. Reply with the subject only.".into();
    c.max_tokens = 24;
    c.concurrency = 2;
    c.timeout_s = 120.0;
    c.max_retries = 12;
    c.retry_base_s = 0.25;
    c.retry_max_s = 2.0;
    c
}

#[test]
fn labels_aeslc_emails_through_llama_cpp_python() {
    if std::env::var("LAB_LLAMA_SERVER").as_deref() != Ok("1") {
        eprintln!("skipped: set LAB_LLAMA_SERVER=1 with llama-cpp-python[server] installed");
        return;
    }
    assert!(
        gguf().exists(),
        "{} is missing: run `lab setup`",
        gguf().display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = LlamaServer::start(port, &tmp.path().join("server-1.log"));
    let emails = aeslc_emails(5);

    // Labels with usage-based cost; the worst case bounds the real token count.
    let cache = tmp.path().join("cache");
    let cfg = config(port, &cache);
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let out = lab.label(&emails, &[]).unwrap();
    let LabelOutcome::Complete(labels) = out else {
        panic!("{out:?}")
    };
    assert_eq!(labels.len(), 5);
    for (ex, l) in emails.iter().zip(&labels) {
        assert!(
            !l.output.trim().is_empty(),
            "email {} got an empty label",
            ex.id
        );
        assert!(l.input_tokens > 0 && l.output_tokens > 0 && l.output_tokens <= 24);
        assert_eq!(l.cost, cfg.prices().cost(l.input_tokens, l.output_tokens));
        let bound = worst_case_input_tokens(&lab.request(&ex.input, &[]), None);
        assert!(
            l.input_tokens <= bound,
            "{} input tokens > estimate {bound}",
            l.input_tokens
        );
    }
    let paid = lab.spent();
    assert!((paid - labels.iter().map(|l| l.cost).sum::<f64>()).abs() < 1e-15);

    // The cache: a repeated run sends nothing (so pays nothing) and gets the same labels,
    // counted at the price they were bought for.
    let mut again = LlmLabeller::from_config(&cfg).unwrap();
    let second = again.label(&emails, &[]).unwrap();
    assert!((again.spent() - paid).abs() < 1e-15);
    assert!(second
        .labels()
        .iter()
        .zip(&labels)
        .all(|(b, a)| b.cost == a.cost));
    let same: Vec<&str> = second.labels().iter().map(|l| l.output.as_str()).collect();
    let first: Vec<&str> = labels.iter().map(|l| l.output.as_str()).collect();
    assert_eq!(same, first);

    // The budget stop: room for about two worst cases.
    let mut tight = config(port, &tmp.path().join("cache-budget"));
    let worst = atgen_lab::labeller::budget::worst_case_cost(
        &lab.request(&emails[0].input, &[]),
        None,
        &cfg.prices(),
    );
    tight.money_budget = Some(2.5 * worst);
    let mut capped = LlmLabeller::from_config(&tight).unwrap();
    let out = capped.label(&emails, &[]).unwrap();
    let LabelOutcome::BudgetReached(kept) = &out else {
        panic!("{out:?}")
    };
    assert!(!kept.is_empty() && kept.len() < 5, "{} labels", kept.len());
    assert!(capped.spent() <= 2.5 * worst);

    // A restart in the middle of a run: the server is killed and started again on the same
    // port while requests are being sent; retries carry the run through.
    let mut cfg = config(port, &tmp.path().join("cache-restart"));
    cfg.concurrency = 1;
    let mut lab = LlmLabeller::from_config(&cfg).unwrap();
    let log2 = tmp.path().join("server-2.log");
    let labels_file = tmp.path().join("cache-restart/labels.jsonl");
    let restarter = std::thread::spawn(move || {
        // Kill the server once the first label is paid for, so the run is mid-way.
        let paid = || {
            std::fs::read_to_string(&labels_file)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while paid() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        server.kill();
        let at_kill = paid();
        std::thread::sleep(Duration::from_millis(500));
        (LlamaServer::start(port, &log2), at_kill)
    });
    let out = lab.label(&emails, &[]).unwrap();
    let (_server, at_kill) = restarter.join().unwrap();
    assert!(
        (1..5).contains(&at_kill),
        "killed after {at_kill} of 5 labels"
    );
    let LabelOutcome::Complete(labels) = out else {
        panic!("{out:?}")
    };
    assert_eq!(labels.len(), 5);
    assert!(labels
        .iter()
        .all(|l| !l.output.trim().is_empty() && l.cost > 0.0));
}
