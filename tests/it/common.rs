//! Test harness: a fresh database per test (an SQLite file, or a Postgres database of its own),
//! and the real server started on port 0 through `flex::run`.

use std::{path::PathBuf, sync::Once, time::Duration};

use flex::{Config, store::Store};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend from an async body taking a [`Backend`].
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber_init();
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn tracing_subscriber_init() -> Option<()> {
    // Logs only when asked (FLEX_TEST_LOG=debug), so failures stay readable.
    let level = std::env::var("FLEX_TEST_LOG").ok()?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_test_writer()
        .try_init()
        .ok()
}

/// A database that exists for one test and is removed after it.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteDir(PathBuf),
    PostgresDb { admin_url: String, name: String },
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        init_tracing();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("flex-test-{unique}"));
                std::fs::create_dir_all(&dir).unwrap();
                TestDb {
                    url: format!("sqlite://{}", dir.join("flex.db").display()),
                    cleanup: Cleanup::SqliteDir(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_url();
                let name = format!("flex_test_{unique}");
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                    .await
                    .unwrap_or_else(|err| {
                        panic!("Postgres at {admin_url} is needed (FLEX_TEST_POSTGRES_URL): {err}")
                    });
                sqlx::Executor::execute(
                    &mut conn,
                    sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
                )
                .await
                .unwrap();
                let url = match admin_url.rsplit_once('/') {
                    Some((server, _db)) => format!("{server}/{name}"),
                    None => panic!("FLEX_TEST_POSTGRES_URL must name a database"),
                };
                TestDb {
                    url,
                    cleanup: Cleanup::PostgresDb { admin_url, name },
                }
            }
        }
    }

    /// A second handle on the same database, as another component (or replica) would hold.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url).await.unwrap();
        store.migrate().await.unwrap();
        store
    }
}

pub fn postgres_url() -> String {
    std::env::var("FLEX_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteDir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PostgresDb { admin_url, name } => {
                // Drop runs outside async context; use a private runtime on its own thread.
                let (admin_url, name) = (admin_url.clone(), name.clone());
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        if let Ok(mut conn) =
                            <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await
                        {
                            let _ = sqlx::Executor::execute(
                                &mut conn,
                                sqlx::AssertSqlSafe(format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                )),
                            )
                            .await;
                        }
                    });
                })
                .join();
            }
        }
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

    pub async fn start_on(db: TestDb, config: Config) -> TestServer {
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(flex::run(config, listener, async {
            let _ = rx.await;
        }));
        let client = Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let server = TestServer {
            base: format!("{scheme}://127.0.0.1:{}", addr.port()),
            client,
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
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap().await.unwrap()
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
