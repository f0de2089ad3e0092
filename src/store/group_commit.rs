//! Group commit for SQLite: write transactions that queue for the one writer connection share
//! one `COMMIT`, so one fsync makes a whole batch durable instead of one fsync each.
//!
//! Each write runs in a savepoint of an outer transaction. When it ends and no other write is
//! queued (or the batch is full), it commits the batch; otherwise it leaves the batch open for
//! the next write and waits for that commit. No write is reported done before its commit, so
//! durability and read-your-writes are as before; a write that fails rolls back its savepoint
//! only, and a failed commit fails every write of its batch. A write abandoned half-way (its
//! future dropped) is rolled back and the batch committed by a task of its own, so nobody
//! waits on it.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use sqlx::{Sqlite, SqliteConnection, SqlitePool, pool::PoolConnection};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use super::{StoreError, StoreResult};

/// Writes one batch holds at most, so a steady stream of writes still commits.
const MAX_BATCH: usize = 64;

/// How a batch ended: `None` until its commit, then the error message if it failed.
type Outcome = watch::Sender<Option<Result<(), Arc<str>>>>;

#[derive(Debug)]
pub(crate) struct GroupWriter {
    pool: SqlitePool,
    /// Whether the writer connection is kept between batches (see [`Slot::kept`]).
    keeps_connection: bool,
    slot: Arc<Mutex<Slot>>,
    /// Writes waiting for the slot: while any does, a finished write leaves the batch open.
    queued: AtomicUsize,
}

#[derive(Debug, Default)]
struct Slot {
    batch: Option<Batch>,
    /// The writer connection between batches, taken out of the pool for good: sqlx pings a
    /// pooled connection when it is returned and again when it is taken, two round trips to
    /// its worker thread that every batch would wait for (the next batch cannot start until
    /// the one connection is back). Not for an in-memory database, whose readers share the
    /// writer's pool and so need the connection back in it.
    kept: Option<Writer>,
    /// A write was abandoned inside its savepoint: roll it back before anything else.
    in_savepoint: bool,
}

/// The writer connection: kept for good, or borrowed from the pool for one batch.
#[derive(Debug)]
enum Writer {
    Kept(SqliteConnection),
    Pooled(PoolConnection<Sqlite>),
}

impl std::ops::Deref for Writer {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        match self {
            Writer::Kept(conn) => conn,
            Writer::Pooled(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Writer::Kept(conn) => conn,
            Writer::Pooled(conn) => conn,
        }
    }
}

#[derive(Debug)]
struct Batch {
    conn: Writer,
    writes: usize,
    outcome: Arc<Outcome>,
}

/// One write's hold on the writer: the connection, inside this write's savepoint.
pub(crate) struct Member {
    writer: Arc<GroupWriter>,
    slot: Option<OwnedMutexGuard<Slot>>,
}

/// Counts a write as queued until it holds the slot; one dropped while waiting may leave an
/// open batch with nobody to commit it, so it has that done.
struct Queued {
    writer: Arc<GroupWriter>,
    waiting: bool,
}

impl Queued {
    fn new(writer: &Arc<GroupWriter>) -> Queued {
        writer.queued.fetch_add(1, Ordering::SeqCst);
        Queued {
            writer: writer.clone(),
            waiting: true,
        }
    }

    fn arrived(mut self) {
        self.waiting = false;
        self.writer.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        if self.waiting && self.writer.queued.fetch_sub(1, Ordering::SeqCst) == 1 {
            tokio::spawn(self.writer.clone().flush());
        }
    }
}

fn failed(message: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!(
        "the group commit failed: {message}"
    )))
}

async fn execute(conn: &mut SqliteConnection, sql: &'static str) -> StoreResult<()> {
    sqlx::raw_sql(sql).execute(conn).await?;
    Ok(())
}

const UNDO_WRITE: &str = "ROLLBACK TO flex_write; RELEASE flex_write";

/// How one write ended its part of a batch.
enum Ending {
    /// It committed the batch (with this outcome).
    Committed(Result<(), Arc<str>>),
    /// It left the batch open for the next write; this tells when it commits.
    Left(Arc<Outcome>),
}

impl GroupWriter {
    /// `keeps_connection`: take the writer connection out of `pool` at the first write and keep
    /// it (false when others need it back in the pool, as an in-memory database's readers do).
    pub(crate) fn new(pool: SqlitePool, keeps_connection: bool) -> Arc<GroupWriter> {
        Arc::new(GroupWriter {
            pool,
            keeps_connection,
            slot: Arc::default(),
            queued: AtomicUsize::new(0),
        })
    }

    /// Waits for the writer and opens this write's savepoint (and the batch, if none is open).
    /// On a task of its own, so that a caller dropped half-way leaves no half-opened batch.
    pub(crate) async fn enter(self: &Arc<Self>) -> StoreResult<Member> {
        let writer = self.clone();
        // Counted from the call, so that a write ending now leaves the batch open for this one.
        let queued = Queued::new(self);
        tokio::spawn(async move {
            let mut slot = writer.slot.clone().lock_owned().await;
            queued.arrived();
            let opened = slot.batch.is_none();
            if opened {
                let mut conn = match slot.kept.take() {
                    Some(conn) => conn,
                    None if writer.keeps_connection => {
                        Writer::Kept(writer.pool.acquire().await?.detach())
                    }
                    None => Writer::Pooled(writer.pool.acquire().await?),
                };
                // One round trip to the connection's thread for both. On failure whatever
                // began is rolled back and the connection dropped: the next write opens a
                // fresh one.
                if let Err(err) = execute(&mut conn, "BEGIN IMMEDIATE; SAVEPOINT flex_write").await
                {
                    let _ = execute(&mut conn, "ROLLBACK").await;
                    return Err(err);
                }
                slot.batch = Some(Batch {
                    conn,
                    writes: 0,
                    outcome: Arc::new(watch::channel(None).0),
                });
            }
            // From here a failure is the batch's: `Member`'s drop ends it.
            let mut member = Member {
                writer: writer.clone(),
                slot: Some(slot),
            };
            let slot = member.slot.as_mut().expect("just set");
            let was_abandoned = std::mem::replace(&mut slot.in_savepoint, true);
            if !opened {
                let conn = &mut slot.batch.as_mut().expect("open").conn;
                if was_abandoned {
                    execute(conn, UNDO_WRITE).await?;
                }
                execute(conn, "SAVEPOINT flex_write").await?;
            }
            Ok(member)
        })
        .await
        .map_err(|err| failed(&err.to_string()))?
    }

    /// Closes the kept connection (after the last write: the store is closing).
    pub(crate) async fn close(&self) {
        let kept = self.slot.lock().await.kept.take();
        if let Some(Writer::Kept(conn)) = kept {
            let _ = sqlx::Connection::close(conn).await;
        }
    }

    /// Ends the open batch, if the write that should have did not: rolls back an abandoned
    /// write, then commits the rest.
    async fn flush(self: Arc<Self>) {
        let mut slot = self.slot.clone().lock_owned().await;
        if self.queued.load(Ordering::SeqCst) > 0 {
            return; // the next write in line goes on with the batch
        }
        let abandoned = std::mem::take(&mut slot.in_savepoint);
        if let Some(batch) = slot.batch.as_mut()
            && abandoned
            && let Err(err) = execute(&mut batch.conn, UNDO_WRITE).await
        {
            roll_back(&mut slot, &err.to_string()).await;
            return;
        }
        let _ = commit(&mut slot).await;
    }
}

/// Commits the slot's batch and tells its writes how it went.
async fn commit(slot: &mut Slot) -> Result<(), Arc<str>> {
    commit_with(slot, "COMMIT").await
}

/// Commits the slot's batch with `sql` (which ends in `COMMIT`); if any of it fails, the whole
/// batch rolls back.
async fn commit_with(slot: &mut Slot, sql: &'static str) -> Result<(), Arc<str>> {
    let Some(mut batch) = slot.batch.take() else {
        return Ok(());
    };
    let result = match execute(&mut batch.conn, sql).await {
        Ok(()) => Ok(()),
        Err(err) => {
            let _ = execute(&mut batch.conn, "ROLLBACK").await;
            Err(Arc::from(err.to_string()))
        }
    };
    batch.outcome.send_replace(Some(result.clone()));
    slot.kept = keep(batch.conn);
    result
}

/// What the slot keeps of a batch's connection once the batch is over.
fn keep(conn: Writer) -> Option<Writer> {
    match conn {
        Writer::Kept(_) => Some(conn),
        Writer::Pooled(_) => None, // back to the pool as it drops
    }
}

/// Gives up the slot's whole batch: every write in it fails.
async fn roll_back(slot: &mut Slot, message: &str) -> Arc<str> {
    let message: Arc<str> = Arc::from(message);
    if let Some(mut batch) = slot.batch.take() {
        let _ = execute(&mut batch.conn, "ROLLBACK").await;
        batch.outcome.send_replace(Some(Err(message.clone())));
        slot.kept = keep(batch.conn);
    }
    message
}

/// Ends one write's savepoint, then commits the batch or leaves it to the next write.
async fn end_write(writer: Arc<GroupWriter>, mut slot: OwnedMutexGuard<Slot>, ok: bool) -> Ending {
    let Some(batch) = slot.batch.as_mut() else {
        return Ending::Committed(Err(Arc::from("the write's batch is gone")));
    };
    if ok && (batch.writes + 1 >= MAX_BATCH || writer.queued.load(Ordering::SeqCst) == 0) {
        // The batch's last write: its release and the commit go in one round trip.
        slot.in_savepoint = false;
        return Ending::Committed(commit_with(&mut slot, "RELEASE flex_write; COMMIT").await);
    }
    let ended = execute(
        &mut batch.conn,
        if ok { "RELEASE flex_write" } else { UNDO_WRITE },
    )
    .await;
    slot.in_savepoint = false;
    if let Err(err) = ended {
        return Ending::Committed(Err(roll_back(&mut slot, &err.to_string()).await));
    }
    let batch = slot.batch.as_mut().expect("checked above");
    batch.writes += 1;
    if batch.writes >= MAX_BATCH || writer.queued.load(Ordering::SeqCst) == 0 {
        Ending::Committed(commit(&mut slot).await)
    } else {
        Ending::Left(batch.outcome.clone())
    }
}

impl Member {
    /// The writer connection, inside this write's savepoint.
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        let slot = self
            .slot
            .as_mut()
            .expect("a member holds the slot until it finishes");
        &mut slot.batch.as_mut().expect("a member's batch is open").conn
    }

    /// Ends this write: keeps (or, on `Err`, rolls back) its savepoint, then commits the batch
    /// or leaves it to the next write and waits for that commit. Answers `out` once it is
    /// durable, or the commit's error.
    pub(crate) async fn finish<T>(mut self, out: StoreResult<T>) -> StoreResult<T> {
        let slot = self.slot.take().expect("a member finishes once");
        // On a task of its own, so that the batch ends even if this write is dropped now.
        let ending = tokio::spawn(end_write(self.writer.clone(), slot, out.is_ok())).await;
        let outcome = match ending {
            Ok(Ending::Committed(result)) => return result.map_err(|m| failed(&m)).and(out),
            Ok(Ending::Left(outcome)) => outcome,
            Err(err) => return Err(failed(&err.to_string())),
        };
        // A failed write's savepoint is gone: the batch's fate is not its own.
        let value = out?;
        let mut commits = outcome.subscribe();
        match commits.wait_for(Option::is_some).await.map(|r| r.clone()) {
            Ok(Some(Err(message))) => Err(failed(&message)),
            Ok(_) => Ok(value),
            Err(_) => Err(failed("the batch ended without a word")),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // Dropped before finishing (its future was cancelled, or opening its savepoint
        // failed): a task of its own rolls it back and ends the batch.
        if let Some(slot) = self.slot.take() {
            drop(slot);
            tokio::spawn(self.writer.clone().flush());
        }
    }
}
