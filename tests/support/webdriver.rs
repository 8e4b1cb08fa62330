//! Headless Chromium driven over WebDriver: a `chromedriver` child on a free
//! loopback port, and one browser session per fresh profile folder.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tempfile::TempDir;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest wait for chromedriver to accept a session.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A `chromedriver` process in its own process group, killed with the
/// browsers it started when dropped.
pub struct Chromedriver {
    child: Child,
    port: u16,
    dir: TempDir,
}

/// One browser window with its own profile.
pub struct Session {
    pub client: Client,
    _profile: TempDir,
}

impl Chromedriver {
    pub fn start() -> Chromedriver {
        for binary in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing; run tests/run.sh, which installs chromium and chromium-driver"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("chat-chromedriver-")
            .tempdir()
            .expect("create a temporary folder for chromedriver");
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        Chromedriver { child, port, dir }
    }

    /// Opens a new headless browser with a fresh profile.
    pub async fn session(&self) -> anyhow::Result<Session> {
        let profile = tempfile::Builder::new()
            .prefix("chat-chromium-")
            .tempdir_in(self.dir.path())
            .context("create a profile folder")?;
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("the capabilities are a JSON object literal")
        };
        let url = format!("http://127.0.0.1:{}", self.port);
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            let attempt = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(client) => {
                    return Ok(Session {
                        client,
                        _profile: profile,
                    })
                }
                Err(e) if tokio::time::Instant::now() > deadline => {
                    bail!("no WebDriver session within {STARTUP_TIMEOUT:?}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and every browser it launched.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free loopback port")
}

/// Types `value` into the field named `name`.
pub async fn fill(client: &Client, name: &str, value: &str) -> anyhow::Result<()> {
    let field = client
        .find(Locator::Css(&format!("[name='{name}']")))
        .await
        .with_context(|| format!("no field named {name}"))?;
    field.clear().await.ok();
    field.send_keys(value).await?;
    Ok(())
}

/// Clicks the submit button of the form that holds the field `name`.
pub async fn submit_form_of(client: &Client, name: &str) -> anyhow::Result<()> {
    let form = client
        .form(Locator::XPath(&format!("//form[.//*[@name='{name}']]")))
        .await
        .with_context(|| format!("no form with a field named {name}"))?;
    form.submit_with(Locator::Css(
        "button:not([type]), button[type=submit], input[type=submit]",
    ))
    .await
    .with_context(|| format!("no submit button in the form of {name}"))?;
    Ok(())
}

/// Polls `check` every 100 ms until it yields a value or `wait` runs out.
pub async fn eventually<T, F, Fut>(wait: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {wait:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
