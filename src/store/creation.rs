//! Creating a task at most once. A pipeline's retry of a timed-out POST (its `Idempotency-Key`),
//! two replicas expiring the same echo DB, two replicas running the same due schedule: each
//! creates its task in one write transaction with the row that says it exists, so whoever
//! comes second learns about the first task instead of making another.

use super::{
    NewTask, Store, StoreResult,
    echo::fetch_echo_db,
    events::{EventSubject, record_event},
    in_write_tx,
};
use crate::model::EventType;

/// How long an idempotency key holds its first request's task.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// An idempotency key and the digest of what the request under it asked.
#[derive(Clone, Debug)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

/// The condition an automatic task is created under, checked and moved in its transaction.
#[derive(Clone, Debug)]
pub enum TaskGuard {
    /// An expiry delete: only while the echo DB is still expired and unprotected, and its
    /// expiry task is still the one the caller saw (`seen`, `None` for none).
    Expires {
        host_id: String,
        db_id: String,
        now: i64,
        seen: Option<String>,
    },
    /// A schedule's run: only while its next run is still `due`; it moves to `next`.
    RunsSchedule {
        schedule_id: String,
        due: i64,
        next: i64,
        now: i64,
    },
}

/// What makes a creation happen once.
#[derive(Clone, Debug)]
pub enum Once {
    /// Nothing: every call creates a task.
    Always,
    Key(Idempotency),
    Guard(TaskGuard),
}

/// What [`Store::create_task`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Creation {
    Created,
    /// The key was used before by the same request: its task.
    Repeated {
        request_id: String,
    },
    /// The key was used before by a different request.
    KeyReused,
    /// The guard no longer holds (another replica acted, or the state changed).
    NotDue,
}

impl Store {
    /// The task an idempotency key already holds, if the key is in its window: its
    /// fingerprint and request id.
    pub async fn idempotent_task(
        &self,
        key: &str,
        now_ms: i64,
    ) -> StoreResult<Option<(String, String)>> {
        let row: Option<(String, String)> = super::on_reader!(self, |pool| {
            sqlx::query_as(
                "SELECT fingerprint, request_id FROM idempotency_keys \
                 WHERE key = $1 AND created_ms >= $2",
            )
            .bind(key)
            .bind(now_ms - IDEMPOTENCY_WINDOW_MS)
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    /// Stores `task` unless `once` says it exists already or is no longer due.
    pub async fn create_task(&self, task: &NewTask, once: &Once) -> StoreResult<Creation> {
        let t = &task.record;
        let now_ms = crate::clock::now_ms();
        let postgres = self.is_postgres();
        let creation = in_write_tx!(self, |tx| {
            match once {
                Once::Always => {}
                Once::Key(idem) => {
                    sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND created_ms < $2")
                        .bind(&idem.key)
                        .bind(now_ms - IDEMPOTENCY_WINDOW_MS)
                        .execute(&mut *tx)
                        .await?;
                    let inserted = sqlx::query(
                        "INSERT INTO idempotency_keys (key, fingerprint, request_id, created_ms) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
                    )
                    .bind(&idem.key)
                    .bind(&idem.fingerprint)
                    .bind(&t.request_id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 0 {
                        let (fingerprint, request_id): (String, String) = sqlx::query_as(
                            "SELECT fingerprint, request_id FROM idempotency_keys WHERE key = $1",
                        )
                        .bind(&idem.key)
                        .fetch_one(&mut *tx)
                        .await?;
                        return Ok(if fingerprint == idem.fingerprint {
                            Creation::Repeated { request_id }
                        } else {
                            Creation::KeyReused
                        });
                    }
                }
                Once::Guard(TaskGuard::Expires {
                    host_id,
                    db_id,
                    now,
                    seen,
                }) => {
                    let moved = sqlx::query(
                        "UPDATE echo_dbs SET expiry_task_id = $1 \
                         WHERE host_id = $2 AND db_id = $3 AND expires_ts IS NOT NULL \
                           AND expires_ts <= $4 AND protected = 0 \
                           AND COALESCE(expiry_task_id, '') = $5",
                    )
                    .bind(&t.request_id)
                    .bind(host_id)
                    .bind(db_id)
                    .bind(now)
                    .bind(seen.as_deref().unwrap_or_default())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if moved == 0 {
                        return Ok(Creation::NotDue);
                    }
                }
                Once::Guard(TaskGuard::RunsSchedule {
                    schedule_id,
                    due,
                    next,
                    now,
                }) => {
                    let moved = sqlx::query(
                        "UPDATE snapshot_schedules \
                         SET next_run_ts = $1, last_run_ts = $2, last_task_id = $3 \
                         WHERE id = $4 AND next_run_ts = $5",
                    )
                    .bind(next)
                    .bind(now)
                    .bind(&t.request_id)
                    .bind(schedule_id)
                    .bind(due)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if moved == 0 {
                        return Ok(Creation::NotDue);
                    }
                }
            }
            sqlx::query(concat!(
                "INSERT INTO tasks (",
                super::tasks::task_columns!(),
                ") \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ))
            .bind(&t.request_id)
            .bind(t.state.as_str())
            .bind(t.create_ts)
            .bind(t.update_ts)
            .bind(&t.owner)
            .bind(t.command_type.as_str())
            .bind(&t.ref_id)
            .bind(&t.error)
            .bind(&t.result)
            .bind(&t.location)
            .bind(&t.request)
            .execute(&mut *tx)
            .await?;
            super::audit::note_task(&t.request_id);
            for host_id in &task.host_ids {
                sqlx::query(
                    "INSERT INTO task_hosts (request_id, host_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&t.request_id)
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
            }
            // Events last: see `events.rs` on the order lock.
            if let Once::Guard(TaskGuard::Expires { host_id, db_id, .. }) = once
                && let Some(echo_db) = fetch_echo_db!(tx, host_id, db_id)
            {
                let subject = EventSubject::EchoDb(echo_db);
                record_event!(
                    tx,
                    postgres,
                    EventType::EchoDbExpiring,
                    &t.request_id,
                    subject
                );
            }
            let subject = EventSubject::Task(t.clone());
            record_event!(tx, postgres, EventType::TaskCreated, &t.request_id, subject);
            Ok(Creation::Created)
        })?;
        if matches!(creation, Creation::Created) {
            self.announce_events();
        }
        Ok(creation)
    }
}
