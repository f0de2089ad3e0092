//! The real server in the test's own process: `flex::run` on a loopback port, over a database
//! of its own, stopped when dropped.

use std::time::Duration;

use flex::Config;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use super::{ADMIN_TOKEN, Backend, TestDb, http_client};

/// A server's self-signed certificate, removed when dropped.
pub struct SelfSigned {
    dir: std::path::PathBuf,
    pub cert: std::path::PathBuf,
}

impl Drop for SelfSigned {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The real server on a loopback port, stopped when dropped.
pub struct TestServer {
    pub base: String,
    pub client: Client,
    pub db: TestDb,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), flex::FlexError>>>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let db = TestDb::new(backend).await;
        let mut config = Config::new(db.url.clone());
        config.admin_token = Some(ADMIN_TOKEN.to_owned());
        adjust(&mut config);
        Self::start_on(db, config).await
    }

    /// On HTTPS with a certificate of its own for `localhost` and `127.0.0.1`; the
    /// [`SelfSigned`] holds its PEM file as long as it lives.
    pub async fn start_tls(backend: Backend) -> (TestServer, SelfSigned) {
        let dir = std::env::temp_dir().join(format!("flex-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let files = flex::config::TlsFiles {
            cert: cert.clone(),
            key,
        };
        let server = Self::start_with(backend, |config| config.tls = Some(files)).await;
        assert!(server.base.starts_with("https://"));
        (server, SelfSigned { dir, cert })
    }

    pub async fn start_on(db: TestDb, config: Config) -> TestServer {
        Self::start_on_port(db, config, 0).await
    }

    /// Starts on a given loopback port (0: any), so that clients of a server that was stopped
    /// find its successor where they left it.
    pub async fn start_on_port(db: TestDb, config: Config, port: u16) -> TestServer {
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(flex::run(config, listener, async {
            let _ = rx.await;
        }));
        let server = TestServer {
            base: format!("{scheme}://127.0.0.1:{}", addr.port()),
            client: http_client(),
            db,
            shutdown: Some(tx),
            task: Some(task),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(response) = self.client.get(self.url("/readyz")).send().await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server at {} never became ready", self.base);
    }

    /// `POST /api/v2/flex_app_tokens` as the admin; the answer, whatever its status.
    pub async fn create_app_token(&self, body: Value) -> Value {
        self.admin(Method::POST, "/api/v2/flex_app_tokens")
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request authenticated with the admin token.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.admin(Method::GET, path).send().await.unwrap()
    }

    /// Registers a host and returns its agent token.
    pub async fn register_host(&self, host_id: &str) -> String {
        let response = self
            .admin(Method::PUT, &format!("/flex/api/v1/hosts/{host_id}"))
            .body(r#"{"db_vendor":"mssql"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "registering {host_id}");
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// Stops the server gracefully and returns its outcome.
    pub async fn stop(mut self) -> Result<(), flex::FlexError> {
        self.halt().await
    }

    /// Stops the server gracefully, keeping this handle (and its database).
    pub async fn halt(&mut self) -> Result<(), flex::FlexError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("the server runs").await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Reads a JSON error body and checks its shape: `{code, message, ref_id}`.
pub async fn error_body(response: Response) -> Value {
    let ref_id = response
        .headers()
        .get("hs-ref-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.expect("error bodies are JSON");
    assert!(body["code"].is_string(), "error without code: {body}");
    assert!(body["message"].is_string(), "error without message: {body}");
    assert_eq!(
        body["ref_id"].as_str(),
        ref_id.as_deref(),
        "error ref_id must echo the header: {body}"
    );
    body
}
