//! The only place that speaks SQL.
//!
//! Flex keeps its state in SQLite (the embedded default, one process) or in Postgres (several
//! replicas sharing the work). Both sit behind this one `Store` so the rest of the program never
//! knows which it has. sqlx accepts `$1` placeholders on both backends, so each query is written
//! once and run on whichever pool is configured (see [`on_pool!`]).
//!
//! SQLite gets a single writer connection (every write transaction starts `BEGIN IMMEDIATE`, so
//! writers queue instead of failing with `SQLITE_BUSY`), on which queued writes share one
//! commit (see `group_commit`), and separate read connections (see `readers`), which WAL lets
//! run beside the writer.

mod agents;
pub mod audit;
mod claims;
mod creation;
mod deployment;
mod echo;
pub(crate) mod events;
mod executor;
mod group_commit;
mod hosts;
mod ledger;
mod readers;
mod schedules;
mod task_ends;
mod tasks;
mod token_cache;
mod tokens;
mod webhooks;

use std::{str::FromStr, time::Duration};

use sqlx::{
    PgPool, SqlitePool,
    migrate::Migrator,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use agents::{AgentCommandRecord, AgentFacts, OutboxState};
pub use audit::{AuditEntry, AuditQuery, AuditScope};
pub use claims::{Claim, Shared};
pub use creation::{Creation, IDEMPOTENCY_WINDOW_MS, Idempotency, Once, TaskGuard};
pub use deployment::{Deployment, TAG_LEN};
pub use echo::{DbSnapshotRecord, EchoDbRecord};
pub use events::{EventRecord, EventSubject};
pub use executor::{ClaimedTask, StepLogEntry};
pub use hosts::{DatabaseRecord, DeleteHostOutcome, HostRecord, NewHost};
pub use ledger::LedgerEntry;
pub use schedules::{Cadence, ScheduleRecord};
pub use tasks::{NewTask, StepPosition, TaskFilter, TaskRecord};
pub use token_cache::FRESH_FOR as TOKEN_FRESH_FOR;
pub use tokens::{Role, TokenKind, TokenRecord};
pub use webhooks::{DeliveryRecord, WebhookRecord};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row that does not read as what Flex wrote: named, so it can be found.
    #[error("row '{key}' of table {table} is unreadable: {detail}")]
    Corrupt {
        table: &'static str,
        key: String,
        detail: String,
    },
}

/// The error for a row of `table` (identified by `key`) that does not parse.
pub(crate) fn corrupt(
    table: &'static str,
    key: &str,
    detail: impl std::fmt::Display,
) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_owned(),
        detail: detail.to_string(),
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => StoreError::Unavailable(err),
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(ref db) if is_unavailable_code(db.code().as_deref()) => {
                StoreError::Unavailable(err)
            }
            other => StoreError::Database(other),
        }
    }
}

/// Postgres SQLSTATE classes that mean "the server cannot serve us right now" rather than "this
/// query is wrong": connection exceptions (08), insufficient resources (53), operator
/// intervention such as a shutdown (57), and a database that does not exist (3D000).
fn is_unavailable_code(code: Option<&str>) -> bool {
    code.is_some_and(|code| {
        ["08", "53", "57"]
            .iter()
            .any(|class| code.starts_with(class))
            || code == "3D000"
    })
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, Debug)]
enum Backend {
    Sqlite {
        writer: SqlitePool,
        readers: readers::Readers,
        /// Every write transaction goes through it (see `group_commit`).
        group: std::sync::Arc<group_commit::GroupWriter>,
    },
    Postgres(PgPool),
}

/// A handle on Flex's database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// Announces tasks as they end (see `task_ends`).
    ended: tokio::sync::broadcast::Sender<String>,
    /// Announces new events (see `events`).
    events: tokio::sync::watch::Sender<u64>,
    /// Tokens read in the last second (see `token_cache`).
    tokens_seen: std::sync::Arc<token_cache::TokenCache>,
}

/// Runs `$body` with `$pool` bound to the reading pool of whichever backend is configured.
/// The body is compiled once per backend, so it must only use what both drivers support.
macro_rules! on_reader {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { readers: $pool, .. } => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` inside a write transaction bound to `$tx` (the connection); commits when the
/// body returns `Ok` and rolls back otherwise. On SQLite the transaction is a savepoint of a
/// batch that commits with the writes queued behind it (see `group_commit`). The body is an
/// async block, so an early `return` leaves the block, not the caller, and still reaches the
/// commit.
macro_rules! in_write_tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { group, .. } => {
                // Concurrent writes share one commit (see `group_commit.rs`).
                let mut member = group.enter().await?;
                let out: $crate::store::StoreResult<_> = async {
                    let $tx = member.conn();
                    // A request's change commits with its audit row (see `audit.rs`).
                    let audit_row = $crate::store::audit::open_row!(&mut *$tx);
                    let out: $crate::store::StoreResult<_> = async { $body }.await;
                    out.map(|out| (out, audit_row))
                }
                .await;
                let out = member.finish(out).await;
                out.map(|(out, audit_row)| {
                    $crate::store::audit::committed(audit_row);
                    out
                })
            }
            $crate::store::Backend::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let audit_row = $crate::store::audit::open_row!(&mut *$tx);
                let out: $crate::store::StoreResult<_> = async { $body }.await;
                if out.is_ok() {
                    $tx.commit().await?;
                    $crate::store::audit::committed(audit_row);
                }
                out
            }
        }
    };
}
/// Reads the rows of `SELECT $columns FROM $from ORDER BY $order` as `Vec<$row>` (a row type
/// deriving both `sqlx::FromRow` and, in column order, `serde::Deserialize`); `$bind` binds
/// the query's parameters to `$query`.
///
/// On SQLite, sqlx hands every row from its worker thread to the async side as a message of
/// its own: a thousand-row list cost a thousand thread hand-offs (on one core, a context
/// switch each, half of the request's time). So there the rows are aggregated into one JSON
/// value (`json_group_array`, ordered in the aggregate itself), which crosses once. Postgres
/// reads rows off its socket and runs the query as written.
macro_rules! read_rows {
    ($store:expr, $row:ty, $table:expr, $columns:expr, from: $from:expr, order: $order:expr,
     |$query:ident| $bind:expr) => {{
        const AS_ROWS: &str = concat!("SELECT ", $columns, " FROM ", $from, " ORDER BY ", $order);
        const AS_ONE_VALUE: &str = concat!(
            "SELECT json_group_array(json_array(",
            $columns,
            ") ORDER BY ",
            $order,
            ") FROM ",
            $from
        );
        let rows: Vec<$row> = match &$store.backend {
            $crate::store::Backend::Sqlite { readers, .. } => {
                let $query = sqlx::query_scalar::<_, String>(AS_ONE_VALUE);
                let json: String = $bind.fetch_one(readers).await?;
                serde_json::from_str(&json)
                    .map_err(|err| $crate::store::corrupt($table, "(a list)", err))?
            }
            $crate::store::Backend::Postgres(pool) => {
                let $query = sqlx::query_as::<_, $row>(AS_ROWS);
                $bind.fetch_all(pool).await?
            }
        };
        rows
    }};
}

pub(crate) use {in_write_tx, on_reader, read_rows};

/// The file an `sqlite:` URL names (`None` for memory databases and other backends).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .filter(|path| !path.starts_with(":memory:") && !path.is_empty())
        .map(|path| std::path::PathBuf::from(path.split('?').next().unwrap_or(path)))
}

impl Store {
    /// What a generation counter reads (`sql` sums its table): one row on SQLite, a row per
    /// shard of writers on Postgres (migrations 0012 and 0013).
    async fn generation(&self, sql: &'static str) -> StoreResult<i64> {
        let generation: i64 = on_reader!(self, |pool| {
            sqlx::query_scalar(sql).fetch_one(pool).await?
        });
        Ok(generation)
    }

    /// Opens the database named by `url`: `sqlite://path` (created if missing), `sqlite::memory:`
    /// or `postgres://…`. Does not migrate; call [`Store::migrate`].
    pub async fn connect(url: &str) -> StoreResult<Store> {
        Self::connect_with(url, crate::defaults::DB_ACQUIRE_TIMEOUT).await
    }

    /// [`Store::connect`], with how long a query waits for a connection before it fails as
    /// unavailable (the API answers 503): what bounds a request while the database is down.
    pub async fn connect_with(url: &str, acquire_timeout: Duration) -> StoreResult<Store> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(acquire_timeout)
                .connect(url)
                .await?;
            Backend::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            // No ping before the connection is handed out: it is a round trip to the
            // connection's worker thread, and a local file's connection does not go stale while
            // idle the way a network one does. (The group writer keeps it out of the pool for
            // good, except for an in-memory database, whose readers share this pool.)
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(acquire_timeout)
                .connect_with(options.clone())
                .await?;
            // An in-memory database exists once per connection: readers must share the writer.
            let readers = if in_memory {
                readers::Readers::Shared(writer.clone())
            } else {
                readers::Readers::open(options.read_only(true), 8, acquire_timeout).await?
            };
            let group = group_commit::GroupWriter::new(writer.clone(), !in_memory);
            Backend::Sqlite {
                writer,
                readers,
                group,
            }
        } else {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                format!("unsupported database URL (expected sqlite:// or postgres://): {url}")
                    .into(),
            )));
        };
        Ok(Store {
            backend,
            ended: task_ends::channel(),
            events: events::channel(),
            tokens_seen: std::sync::Arc::default(),
        })
    }

    /// Writes a consistent copy of an SQLite database to `to` (a new file) while others keep
    /// reading and writing it; `Ok(false)` on Postgres, whose own tools (`pg_dump`, base
    /// backups) do this better.
    pub async fn backup_to(&self, to: &std::path::Path) -> StoreResult<bool> {
        let Backend::Sqlite { readers, .. } = &self.backend else {
            return Ok(false);
        };
        // A read transaction of its own: the copy is one snapshot, and writers go on (WAL).
        sqlx::query("VACUUM INTO $1")
            .bind(to.to_string_lossy().into_owned())
            .execute(readers)
            .await?;
        Ok(true)
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Applies the migrations of this backend that are not yet applied. Safe to run from several
    /// replicas at once on Postgres (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite { writer, .. } => SQLITE_MIGRATIONS.run(writer).await?,
            Backend::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Ready means: the database answers and every migration this binary knows is applied.
    pub async fn is_ready(&self) -> StoreResult<bool> {
        let expected = match self.backend {
            Backend::Sqlite { .. } => SQLITE_MIGRATIONS.iter().count(),
            Backend::Postgres(_) => POSTGRES_MIGRATIONS.iter().count(),
        };
        let expected = i64::try_from(expected).unwrap_or(i64::MAX);
        let applied: Result<i64, sqlx::Error> = on_reader!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(pool)
                .await
        });
        match applied.map_err(StoreError::from) {
            Ok(applied) => Ok(applied >= expected),
            // The bookkeeping table is missing until the first migration ran.
            Err(StoreError::Database(sqlx::Error::Database(_))) => Ok(false),
            Err(other) => Err(other),
        }
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite {
                writer,
                readers,
                group,
            } => {
                readers.close().await;
                group.close().await;
                writer.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}
