//! A database that exists for one test: an SQLite file in a folder of its own, or a Postgres
//! database of its own on the local server (`FLEX_TEST_POSTGRES_URL`), dropped afterwards.

use std::{path::PathBuf, sync::Arc};

use flex::store::Store;

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
                    super::$name($crate::support::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A database that exists for one test and is removed after it (when its last handle goes).
pub struct TestDb {
    pub url: String,
    cleanup: Arc<Cleanup>,
}

enum Cleanup {
    SqliteDir(PathBuf),
    PostgresDb { admin_url: String, name: String },
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        super::init_tracing();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("flex-test-{unique}"));
                std::fs::create_dir_all(&dir).unwrap();
                TestDb {
                    url: format!("sqlite://{}", dir.join("flex.db").display()),
                    cleanup: Arc::new(Cleanup::SqliteDir(dir)),
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
                    cleanup: Arc::new(Cleanup::PostgresDb { admin_url, name }),
                }
            }
        }
    }

    /// Another handle on the same database, which keeps it until both are gone (a server
    /// restarted on it, say).
    pub fn share(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            cleanup: self.cleanup.clone(),
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

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
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
