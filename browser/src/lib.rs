//! Harness of the console's browser tests: a headless Chromium (Debian's `chromium`)
//! driven over WebDriver by `chromedriver` (Debian's `chromium-driver`), both started per
//! test on a free port with a throw-away profile, and killed when the test ends.
//!
//! [`Browser::launch`] answers `None` (after a loud message) only when `/usr/bin/chromium`
//! is missing and `CI` is unset; under `CI` a missing browser fails the test. Helpers wait
//! by polling with a deadline, never by sleeping; [`Browser::shot`] rewrites
//! `docs/screenshots/<name>.png` when `DOTJOB_SCREENSHOTS=1`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Where Debian installs the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian installs its WebDriver server.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a wait lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Browser tests run one at a time: Chromium instances in parallel on two cores make every
/// timing meaningless.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether the tests can run: the browser is installed, or (without `CI`) a skip.
/// Panics under `CI` when it is missing.
pub fn browser_available() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "CI is set but {CHROMIUM} or {CHROMEDRIVER} is missing: install `chromium chromium-driver`"
        );
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! SKIPPED: {CHROMIUM} is not installed, so the console's browser tests did   \n\
         !! not run. Install it: apt-get install -y chromium chromium-driver          \n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    false
}

/// Polls `check` every 50 ms until it answers `Some`, or fails after `timeout`.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            match last_err {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what}: {e:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One headless Chromium session on a console at `base`.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    base: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a `width` × `height` window.
    /// `None` when the browser is not installed and `CI` is unset (see
    /// [`browser_available`]).
    pub async fn launch(base: &str, width: u32, height: u32) -> anyhow::Result<Option<Self>> {
        if !browser_available() {
            return Ok(None);
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start chromedriver")?;
        let profile = tempfile::tempdir()?;
        let url = format!("http://127.0.0.1:{port}");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let mut caps = caps.as_object().cloned().unwrap_or_default();
        // Chromium's windows are at least 500 px wide: narrower screens are emulated.
        if width < 500 {
            caps["goog:chromeOptions"]["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0, "mobile": true, "touch": true},
            });
        }
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let client = poll(
            "chromedriver to start a session",
            Duration::from_secs(30),
            || {
                let builder = &builder;
                let url = &url;
                async move { Ok(builder.connect(url).await.ok()) }
            },
        )
        .await?;
        Ok(Some(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            driver,
            _profile: profile,
        }))
    }

    /// Loads `path` of the console (a full page load).
    pub async fn goto(&self, path: &str) -> anyhow::Result<()> {
        self.client.goto(&format!("{}{path}", self.base)).await?;
        Ok(())
    }

    /// The current path and query.
    pub async fn path(&self) -> anyhow::Result<String> {
        let u = self.client.current_url().await?;
        Ok(match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        })
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    /// Waits until `script` returns something other than `null`/`false`; returns it.
    pub async fn wait_js(&self, what: &str, script: &str) -> anyhow::Result<Value> {
        poll(what, WAIT, || async move {
            let v = self.js(script, vec![]).await?;
            Ok((!v.is_null() && v != Value::Bool(false)).then_some(v))
        })
        .await
    }

    /// Waits until the page has shown its data; returns ms from navigation start.
    pub async fn wait_ready(&self) -> anyhow::Result<f64> {
        let v = self
            .wait_js(
                "the page's data",
                "const m = document.getElementById('main'); return m && m.dataset.readyAt ? Number(m.dataset.readyAt) : null;",
            )
            .await?;
        Ok(v.as_f64().unwrap_or(f64::NAN))
    }

    /// The first element matching `css`, once it exists.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        poll(&format!("element `{css}`"), WAIT, || async move {
            Ok(self.client.find(Locator::Css(css)).await.ok())
        })
        .await
    }

    /// Waits until the element `css` is shown and contains `text`; returns its text.
    pub async fn wait_text(&self, css: &str, text: &str) -> anyhow::Result<String> {
        poll(&format!("`{css}` to show {text:?}"), WAIT, || async move {
            let v = self
                .js(
                    "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
                    vec![json!(css)],
                )
                .await?;
            Ok(v.as_str().filter(|t| t.contains(text)).map(str::to_owned))
        })
        .await
    }

    /// Scrolls `el` to the middle of the window (clear of the sticky header).
    async fn center(&self, el: &Element) -> anyhow::Result<()> {
        let arg = serde_json::to_value(el)?;
        self.js(
            "arguments[0].scrollIntoView({block: 'center', inline: 'center'});",
            vec![arg],
        )
        .await?;
        Ok(())
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let el = self.find(css).await?;
        self.center(&el).await?;
        el.click().await?;
        Ok(())
    }

    /// Clicks the first button (or link styled as one) whose text is `text`.
    pub async fn click_button(&self, text: &str) -> anyhow::Result<()> {
        let el = poll(&format!("button {text:?}"), WAIT, || async move {
            let found = self
                .js(
                    "return [...document.querySelectorAll('button, a.button')].find(b => b.innerText.trim() === arguments[0] && b.offsetParent !== null && !b.disabled) || null;",
                    vec![json!(text)],
                )
                .await?;
            Ok(element_of(&self.client, &found))
        })
        .await?;
        self.center(&el).await?;
        el.click().await?;
        Ok(())
    }

    /// Replaces the value of the input `css` by typing `text`.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let el = self.find(css).await?;
        self.center(&el).await?;
        el.clear().await?;
        el.send_keys(text).await?;
        Ok(())
    }

    /// Saves a PNG of the window as `docs/screenshots/<name>.png` when
    /// `DOTJOB_SCREENSHOTS=1`.
    pub async fn shot(&self, name: &str) -> anyhow::Result<()> {
        if std::env::var("DOTJOB_SCREENSHOTS").as_deref() != Ok("1") {
            return Ok(());
        }
        let png = self.client.screenshot().await?;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{name}.png")), &png)?;
        Ok(())
    }

    /// Ends the session and stops chromedriver.
    pub async fn quit(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The element a script returned (`{"element-6066-…": id}`).
fn element_of(client: &Client, v: &Value) -> Option<Element> {
    let id = v.as_object()?.values().next()?.as_str()?;
    Some(Element::from_element_id(
        client.clone(),
        fantoccini::elements::ElementRef::from(id.to_owned()),
    ))
}
