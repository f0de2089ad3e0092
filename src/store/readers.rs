//! SQLite's read connections, kept by Flex instead of by sqlx's pool.
//!
//! sqlx's pool pings a connection when it hands it out and again when it takes it back. For
//! SQLite each ping is a round trip to the connection's worker thread, so a one-row read cost
//! three thread hand-offs instead of one, and on a busy core each hand-off is a context
//! switch. A connection to a local file does not go stale while idle the way a network
//! connection does, so these connections are not pinged; one that fails below the SQL (its
//! worker gone, an I/O error) is closed instead of kept, and the next read opens a fresh one.
//!
//! An in-memory database exists once per connection, so its readers share the writer's pool.

use std::{sync::Arc, time::Duration};

use futures_util::{StreamExt, TryStreamExt, future::BoxFuture, stream::BoxStream};
use sqlx::{
    ConnectOptions, Connection, Database, Either, Error, Execute, Executor, SqlStr, Sqlite,
    SqliteConnection, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteQueryResult, SqliteRow},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The connections reads run on.
#[derive(Clone, Debug)]
pub(crate) enum Readers {
    Own(Arc<Kept>),
    /// An in-memory database: the writer's pool.
    Shared(SqlitePool),
}

#[derive(Debug)]
pub(crate) struct Kept {
    options: SqliteConnectOptions,
    idle: std::sync::Mutex<Vec<SqliteConnection>>,
    /// One permit per connection there may be; closed when the store closes.
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

/// A connection lent to one query; back to the idle ones when dropped, unless it broke.
struct Lent {
    conn: Option<SqliteConnection>,
    kept: Arc<Kept>,
    _permit: OwnedSemaphorePermit,
}

impl Readers {
    /// Up to `max` read connections to the database of `options`; one is opened now, so a
    /// database that cannot be read fails here.
    pub(crate) async fn open(
        options: SqliteConnectOptions,
        max: usize,
        acquire_timeout: Duration,
    ) -> Result<Readers, Error> {
        let first = options.connect().await?;
        Ok(Readers::Own(Arc::new(Kept {
            options,
            idle: std::sync::Mutex::new(vec![first]),
            permits: Arc::new(Semaphore::new(max)),
            acquire_timeout,
        })))
    }

    pub(crate) async fn close(&self) {
        match self {
            Readers::Own(kept) => {
                kept.permits.close();
                let idle = std::mem::take(&mut *kept.idle.lock().expect("not poisoned"));
                for conn in idle {
                    let _ = conn.close().await;
                }
            }
            Readers::Shared(pool) => pool.close().await,
        }
    }
}

impl Kept {
    async fn lend(self: Arc<Self>) -> Result<Lent, Error> {
        let waited =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned());
        let permit = match waited.await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(Error::PoolClosed),
            Err(_elapsed) => return Err(Error::PoolTimedOut),
        };
        let idle = self.idle.lock().expect("not poisoned").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                match tokio::time::timeout(self.acquire_timeout, self.options.connect()).await {
                    Ok(conn) => conn?,
                    Err(_elapsed) => return Err(Error::PoolTimedOut),
                }
            }
        };
        Ok(Lent {
            conn: Some(conn),
            kept: self,
            _permit: permit,
        })
    }
}

impl Lent {
    fn conn(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("lent until dropped")
    }

    /// Drops the connection (its worker thread closes it) instead of keeping it, if `error`
    /// says the connection is broken rather than the query wrong.
    fn saw(&mut self, error: &Error) {
        let broken = matches!(
            error,
            Error::Io(_) | Error::Protocol(_) | Error::WorkerCrashed | Error::Tls(_)
        );
        if broken {
            self.conn = None;
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.kept.permits.is_closed()
        {
            self.kept.idle.lock().expect("not poisoned").push(conn);
        }
    }
}

impl<'p> Executor<'p> for &'_ Readers {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, Error>>
    where
        E: 'q + Execute<'q, Sqlite>,
    {
        let readers = self.clone();
        // The connection is lent for as long as the stream runs.
        Box::pin(async_stream::try_stream! {
            match readers {
                Readers::Own(kept) => {
                    let mut lent = kept.lend().await?;
                    let mut rows = lent.conn().fetch_many(query);
                    loop {
                        match rows.next().await {
                            None => break,
                            Some(Ok(item)) => yield item,
                            Some(Err(error)) => {
                                drop(rows);
                                lent.saw(&error);
                                Err(error)?;
                                break;
                            }
                        }
                    }
                }
                Readers::Shared(pool) => {
                    let mut conn = pool.acquire().await?;
                    let mut rows = conn.fetch_many(query);
                    while let Some(item) = rows.try_next().await? {
                        yield item;
                    }
                }
            }
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, Error>>
    where
        E: 'q + Execute<'q, Sqlite>,
    {
        let readers = self.clone();
        Box::pin(async move {
            match readers {
                Readers::Own(kept) => {
                    let mut lent = kept.lend().await?;
                    let row = lent.conn().fetch_optional(query).await;
                    if let Err(error) = &row {
                        lent.saw(error);
                    }
                    row
                }
                Readers::Shared(pool) => pool.fetch_optional(query).await,
            }
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [<Sqlite as Database>::TypeInfo],
    ) -> BoxFuture<'e, Result<<Sqlite as Database>::Statement, Error>>
    where
        'p: 'e,
    {
        let readers = self.clone();
        Box::pin(async move {
            match readers {
                Readers::Own(kept) => {
                    kept.lend()
                        .await?
                        .conn()
                        .prepare_with(sql, parameters)
                        .await
                }
                Readers::Shared(pool) => pool.prepare_with(sql, parameters).await,
            }
        })
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Sqlite>, Error>> {
        let readers = self.clone();
        Box::pin(async move {
            match readers {
                Readers::Own(kept) => kept.lend().await?.conn().describe(sql).await,
                Readers::Shared(pool) => pool.describe(sql).await,
            }
        })
    }
}
