//! Headless Chromium from Debian's packages, driven over WebDriver (chromedriver) with
//! fantoccini. No browser is downloaded: `.ci/run` installs `chromium` and `chromium-driver`.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};

use crate::support::processes::{Process, free_port};

/// How long a step of a walkthrough may take to show on the page.
const PATIENCE: Duration = Duration::from_secs(30);

pub struct Browser {
    pub client: Client,
    _driver: Process,
}

fn chromedriver() -> String {
    let path = std::env::var("FLEX_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let found = Command::new(&path)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "the console's browser tests need Chromium and its WebDriver: \
         `apt-get install -y chromium chromium-driver` (or set FLEX_CHROMEDRIVER)"
    );
    path
}

impl Browser {
    /// A fresh headless browser (its own profile: nothing cached) at 1280×800.
    pub async fn start() -> Browser {
        let port = free_port();
        let driver = Process(
            Command::new(chromedriver())
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,800", "--lang=en-US"],
        });
        if let Ok(binary) = std::env::var("FLEX_CHROMIUM") {
            options["binary"] = Value::String(binary);
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let mut last_error = String::new();
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    // The window holds the browser's own bars: make the page itself 1280×800.
                    let bars = client
                        .execute("return window.outerHeight - window.innerHeight", vec![])
                        .await
                        .unwrap()
                        .as_u64()
                        .unwrap_or(0);
                    let bars = u32::try_from(bars).unwrap_or(0);
                    client.set_window_size(1280, 800 + bars).await.unwrap();
                    return Browser {
                        client,
                        _driver: driver,
                    };
                }
                Err(err) => last_error = err.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no WebDriver session: {last_error}");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The element once it is on the page.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(err) => panic!("'{css}' never appeared: {err}\n{}", self.page_text().await),
        }
    }

    /// Clicks the element, finding it again if the live view replaced it meanwhile.
    pub async fn click(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self.find(css).await.click().await {
                Ok(()) => return,
                Err(err) if tokio::time::Instant::now() < deadline => {
                    assert!(err.to_string().contains("stale"), "'{css}': {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("'{css}' could not be clicked: {err}"),
            }
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Picks an option of a `<select>` by value, as a user would (a change event follows).
    pub async fn choose(&self, css: &str, value: &str) {
        let select = self.find(css).await;
        select.select_by_value(value).await.unwrap();
    }

    /// Waits until the element's text contains `wanted`; its text then.
    pub async fn text_of(&self, css: &str, wanted: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(wanted) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "'{css}' never said '{wanted}'; it says '{text}'\n{}",
                self.page_text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until nothing matches `css`.
    pub async fn gone(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.client.find(Locator::Css(css)).await.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "'{css}' stayed on the page"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn script(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    pub async fn page_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// A PNG of the viewport, written under `target/console-screenshots/`, and over the one in
    /// `docs/` (which the README shows) with `FLEX_UPDATE_SCREENSHOTS=1`, so that a test run
    /// leaves the checkout as it was.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        // Notices come and go; the picture is of the page.
        self.script("document.getElementById('toasts').replaceChildren(); return null")
            .await;
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let folder = root.join("target").join("console-screenshots");
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join(name);
        std::fs::write(&path, &png).unwrap();
        if std::env::var("FLEX_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            std::fs::write(root.join("docs").join(name), &png).unwrap();
        }
        path
    }

    /// What the first load cost: bytes transferred (document, assets, API calls so far),
    /// first contentful paint, and when the estate first showed, in ms from navigation.
    pub async fn first_load(&self) -> (u64, f64, f64) {
        let figures = self
            .script(
                "const entries = [...performance.getEntriesByType('navigation'), \
                 ...performance.getEntriesByType('resource')]; \
                 const paint = performance.getEntriesByName('first-contentful-paint')[0]; \
                 const estate = performance.getEntriesByName('estate-rendered')[0]; \
                 return [Math.round(entries.reduce((sum, e) => sum + (e.transferSize || 0), 0)), \
                         paint ? paint.startTime : -1, estate ? estate.startTime : -1];",
            )
            .await;
        (
            figures[0].as_u64().unwrap(),
            figures[1].as_f64().unwrap(),
            figures[2].as_f64().unwrap(),
        )
    }

    /// Reloads the signed-in page (assets revalidated, not refetched); the bytes it
    /// transferred and when the estate showed, in ms from navigation.
    pub async fn reload_estate(&self, shown: &str) -> (u64, f64) {
        self.client.refresh().await.unwrap();
        self.find(shown).await;
        let (bytes, _, estate) = self.first_load().await;
        (bytes, estate)
    }

    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}
