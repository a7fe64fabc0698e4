//! A minimal W3C WebDriver client over HTTP (ureq), enough to drive headless Chromium through
//! chromedriver: open a session, navigate, find elements by CSS, click, type, read text,
//! take screenshots.
#![allow(dead_code)]
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the OS hands out a free loopback port")
}

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// chromedriver and the browser it drives, or an error saying how to install them.
pub fn find_browser() -> Result<(PathBuf, PathBuf)> {
    let install =
        "install them with: apt-get update && apt-get install -y chromium chromium-driver";
    let driver = which(&["chromedriver"])
        .ok_or_else(|| anyhow!("chromedriver not found on PATH; {install}"))?;
    let browser = which(&["chromium", "chromium-browser", "google-chrome"])
        .ok_or_else(|| anyhow!("chromium not found on PATH; {install}"))?;
    Ok((driver, browser))
}

/// A running chromedriver, stopped on drop.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub fn start(driver: &Path) -> Result<Self> {
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", driver.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let d = Driver { child, url };
        let started = Instant::now();
        while ureq::get(&format!("{}/status", d.url)).call().is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("chromedriver did not answer on {} within 20 s", d.url);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(d)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium under its own chromedriver, both stopped on drop; used as its
/// [`Session`]. Panics, saying how to install them, when they are missing.
pub struct Browser {
    // Declared first: the session ends before its driver stops.
    session: Session,
    _driver: Driver,
}

impl Browser {
    pub fn open() -> Self {
        let (driver_bin, browser) = find_browser().unwrap_or_else(|e| panic!("{e:#}"));
        let driver = Driver::start(&driver_bin).unwrap_or_else(|e| panic!("{e:#}"));
        let session = Session::new(&driver, &browser).unwrap_or_else(|e| panic!("{e:#}"));
        Browser {
            session,
            _driver: driver,
        }
    }
}

impl std::ops::Deref for Browser {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

/// One browser session.
pub struct Session {
    base: String,
    _profile: tempfile::TempDir,
}

fn send(req: ureq::Request, body: Option<Value>) -> Result<Value> {
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    let value: Value = match resp {
        Ok(r) => r.into_json()?,
        Err(ureq::Error::Status(code, r)) => {
            let v: Value = r.into_json().unwrap_or(Value::Null);
            bail!("WebDriver answered {code}: {}", v["value"]["message"])
        }
        Err(e) => return Err(e).context("WebDriver request failed"),
    };
    Ok(value["value"].clone())
}

impl Session {
    pub fn new(driver: &Driver, browser: &Path) -> Result<Self> {
        let profile = tempfile::tempdir()?;
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--window-size=1280,1000".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": browser.display().to_string(), "args": args}
        }}});
        let v = send(ureq::post(&format!("{}/session", driver.url)), Some(caps))?;
        let id = v["sessionId"]
            .as_str()
            .context("WebDriver gave no session id")?;
        Ok(Session {
            base: format!("{}/session/{id}", driver.url),
            _profile: profile,
        })
    }

    fn post(&self, path: &str, body: Value) -> Result<Value> {
        send(ureq::post(&format!("{}{path}", self.base)), Some(body))
    }

    fn get(&self, path: &str) -> Result<Value> {
        send(ureq::get(&format!("{}{path}", self.base)), None)
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.post("/url", json!({ "url": url })).map(drop)
    }

    pub fn current_url(&self) -> Result<String> {
        Ok(self.get("/url")?.as_str().unwrap_or_default().to_string())
    }

    pub fn find(&self, css: &str) -> Result<Element<'_>> {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .with_context(|| format!("no element matches {css:?}"))?;
        let id = v[ELEMENT_KEY]
            .as_str()
            .with_context(|| format!("WebDriver gave no element id for {css:?}: {v}"))?;
        Ok(Element {
            session: self,
            id: id.to_string(),
        })
    }

    pub fn find_all(&self, css: &str) -> Result<Vec<Element<'_>>> {
        let v = self.post("/elements", json!({"using": "css selector", "value": css}))?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|id| Element {
                        session: self,
                        id: id.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Run `script` (a function body; `return` gives the value) in the page.
    pub fn execute(&self, script: &str) -> Result<Value> {
        self.post("/execute/sync", json!({"script": script, "args": []}))
    }

    /// The page's visible text.
    pub fn body_text(&self) -> Result<String> {
        self.find("body")?.text()
    }

    /// Poll until `check` holds, or fail after `timeout` with `what` and the last page text.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Session) -> bool,
    ) -> Result<()> {
        let started = Instant::now();
        while !check(self) {
            if started.elapsed() > timeout {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; page text:\n{}",
                    self.body_text().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(())
    }

    /// Save a PNG screenshot of the viewport.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        use base64_decode as decode;
        let v = self.get("/screenshot")?;
        let png = decode(v.as_str().context("screenshot is not a string")?)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("cannot write {}", path.display()))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.base).call();
    }
}

pub struct Element<'a> {
    session: &'a Session,
    id: String,
}

impl Element<'_> {
    pub fn click(&self) -> Result<()> {
        self.session
            .post(&format!("/element/{}/click", self.id), json!({}))
            .map(drop)
    }
    pub fn clear(&self) -> Result<()> {
        self.session
            .post(&format!("/element/{}/clear", self.id), json!({}))
            .map(drop)
    }
    pub fn send_keys(&self, text: &str) -> Result<()> {
        self.session
            .post(
                &format!("/element/{}/value", self.id),
                json!({ "text": text }),
            )
            .map(drop)
    }
    /// Replace an input's value.
    pub fn set(&self, text: &str) -> Result<()> {
        self.clear()?;
        self.send_keys(text)
    }
    pub fn text(&self) -> Result<String> {
        Ok(self
            .session
            .get(&format!("/element/{}/text", self.id))?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }
    pub fn attribute(&self, name: &str) -> Result<String> {
        Ok(self
            .session
            .get(&format!("/element/{}/attribute/{name}", self.id))?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }
    pub fn property(&self, name: &str) -> Result<String> {
        let v = self
            .session
            .get(&format!("/element/{}/property/{name}", self.id))?;
        Ok(v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()))
    }
}

/// Standard base64 (screenshots), without pulling a crate in for one call.
fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => bail!("screenshot is not base64 (byte {c})"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}
