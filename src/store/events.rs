//! The event log: every change a client may want to hear of (a task's start, steps and end, an
//! echo DB or db snapshot made or deleted, a host registered, connected or gone) is a row
//! written in the transaction of the change itself, so an event exists exactly when its change
//! does. Its `seq` is the event id that streams and webhooks resume from.
//!
//! Ids must commit in order, or a reader that has passed id 10 would never see an id 9 that
//! committed later. SQLite has one writer, so they do; on Postgres every event writer takes one
//! advisory lock just before its insert (always the transaction's last statement, so the lock
//! is held only until the commit and no one waits on a row while holding it).
//!
//! After a commit the writer announces the new id in-process; on Postgres the transaction also
//! sends a `NOTIFY` that every replica's relay passes on (`task_ends.rs`). Readers then read
//! the log itself: the announcement is only a wake-up, so a lost one delays, never loses.

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{
    DbSnapshotRecord, EchoDbRecord, HostRecord, Store, StoreResult, TaskRecord, corrupt,
    in_write_tx, on_reader,
};
use crate::model::EventType;

/// The Postgres channel new event ids are announced on (payload: the id).
pub(super) const CHANNEL: &str = "flex_events";
/// The advisory lock that orders event ids on Postgres ("flexevnt" in ASCII).
pub(super) const ORDER_LOCK: i64 = 0x666c_6578_6576_6e74;

/// The object an event is about, as it was just after the change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "record", rename_all = "snake_case")]
pub enum EventSubject {
    Task(TaskRecord),
    EchoDb(EchoDbRecord),
    DbSnapshot(DbSnapshotRecord),
    Host(HostRecord),
}

/// One row of the event log.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub seq: i64,
    pub ts_ms: i64,
    pub event_type: EventType,
    /// The ref id of the task behind the change, or empty.
    pub ref_id: String,
    pub subject: EventSubject,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    ts_ms: i64,
    event_type: String,
    ref_id: String,
    subject: String,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = super::StoreError;

    fn try_from(row: EventRow) -> StoreResult<EventRecord> {
        let key = row.seq.to_string();
        Ok(EventRecord {
            seq: row.seq,
            ts_ms: row.ts_ms,
            event_type: row
                .event_type
                .parse()
                .map_err(|e: crate::model::UnknownValue| corrupt("events", &key, e))?,
            ref_id: row.ref_id,
            subject: serde_json::from_str(&row.subject).map_err(|e| corrupt("events", &key, e))?,
        })
    }
}

pub(super) fn channel() -> watch::Sender<u64> {
    watch::channel(0).0
}

/// Wakes the readers of `events` (their generation changes; they read the log again).
pub(super) fn wake(events: &watch::Sender<u64>) {
    events.send_modify(|generation| *generation = generation.wrapping_add(1));
}

/// Appends an event inside the open transaction `$tx`, as its last statement, and evaluates
/// to its id. `$by_task` is the request id of the task behind the change (its ref id is
/// recorded), or `""`; `$postgres` says whether the ids need the order lock and a `NOTIFY`.
macro_rules! record_event {
    ($tx:ident, $postgres:expr, $event_type:expr, $by_task:expr, $subject:expr) => {{
        let event_type: $crate::model::EventType = $event_type;
        let subject: &$crate::store::events::EventSubject = &$subject;
        let json = serde_json::to_string(subject)
            .map_err(|e| $crate::store::corrupt("events", event_type.as_str(), e))?;
        if $postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind($crate::store::events::ORDER_LOCK)
                .execute(&mut *$tx)
                .await?;
        }
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO events (ts_ms, event_type, ref_id, subject) VALUES ($1, $2, \
             COALESCE((SELECT ref_id FROM tasks WHERE request_id = $3), ''), $4) RETURNING seq",
        )
        .bind($crate::clock::now_ms())
        .bind(event_type.as_str())
        .bind($by_task)
        .bind(&json)
        .fetch_one(&mut *$tx)
        .await?;
        if $postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind($crate::store::events::CHANNEL)
                .bind(seq.to_string())
                .execute(&mut *$tx)
                .await?;
        }
        seq
    }};
}
pub(crate) use record_event;

impl Store {
    pub(super) fn is_postgres(&self) -> bool {
        matches!(self.backend, super::Backend::Postgres(_))
    }

    /// Tells this process's readers that new events are committed.
    pub(super) fn announce_events(&self) {
        self.events
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Changes whenever newer events may be in the log.
    pub fn event_writes(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Up to `limit` events after id `after`, oldest first.
    pub async fn events_after(&self, after: i64, limit: i64) -> StoreResult<Vec<EventRecord>> {
        let rows: Vec<EventRow> = on_reader!(self, |pool| {
            sqlx::query_as(
                "SELECT seq, ts_ms, event_type, ref_id, subject FROM events \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(EventRecord::try_from).collect()
    }

    /// The newest event's id (0 before the first).
    pub async fn last_event_seq(&self) -> StoreResult<i64> {
        let seq: Option<i64> = on_reader!(self, |pool| {
            sqlx::query_scalar("SELECT MAX(seq) FROM events")
                .fetch_one(pool)
                .await?
        });
        Ok(seq.unwrap_or(0))
    }

    /// Forgets events, and webhook delivery attempts, older than `before_ms` (unix ms);
    /// returns how many events.
    pub async fn prune_events(&self, before_ms: i64) -> StoreResult<u64> {
        in_write_tx!(self, |tx| {
            sqlx::query("DELETE FROM webhook_deliveries WHERE ts_ms < $1")
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query("DELETE FROM events WHERE ts_ms < $1")
                .bind(before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(deleted)
        })
    }
}
