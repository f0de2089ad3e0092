//! The executor's bookkeeping: claiming a task with a lease, fencing every write on the
//! lease's epoch, checkpoints, the step log, and ending a task.

use super::{
    Backend, Store, StoreError, StoreResult, TaskRecord, corrupt,
    events::{EventSubject, record_event},
    in_write_tx, on_reader,
    tasks::{TaskRow, task_select},
};
use crate::{
    clock::now_ts,
    model::{CommandType, EventType, Phase, StepDetail, StepDirection, TaskState},
};

/// A claimed task: the row plus where its workflow stands.
#[derive(Clone, Debug)]
pub struct ClaimedTask {
    pub request_id: String,
    pub command_type: CommandType,
    pub ref_id: String,
    pub create_ts: i64,
    pub request: String,
    pub epoch: i64,
    pub step_index: usize,
    /// The checkpoint document (JSON), as the executor last wrote it.
    pub checkpoint: String,
    pub phase: Phase,
    pub abort_requested: bool,
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    request_id: String,
    command_type: String,
    ref_id: String,
    create_ts: i64,
    request: String,
    epoch: i64,
    step_index: i64,
    checkpoint: String,
    phase: String,
    abort_requested: i64,
}

impl TryFrom<ClaimedRow> for ClaimedTask {
    type Error = StoreError;

    fn try_from(row: ClaimedRow) -> StoreResult<ClaimedTask> {
        let unreadable = |detail: String| corrupt("tasks", &row.request_id, detail);
        Ok(ClaimedTask {
            command_type: row
                .command_type
                .parse()
                .map_err(|e: crate::model::UnknownValue| unreadable(e.to_string()))?,
            phase: row
                .phase
                .parse()
                .map_err(|e: crate::model::UnknownValue| unreadable(e.to_string()))?,
            step_index: usize::try_from(row.step_index)
                .map_err(|_| unreadable(format!("step_index {} is negative", row.step_index)))?,
            request_id: row.request_id,
            ref_id: row.ref_id,
            create_ts: row.create_ts,
            request: row.request,
            epoch: row.epoch,
            checkpoint: row.checkpoint,
            abort_requested: row.abort_requested != 0,
        })
    }
}

/// One line of a task's step log.
#[derive(Clone, Debug, PartialEq)]
pub struct StepLogEntry {
    pub name: String,
    pub direction: StepDirection,
    pub started_ms: i64,
    pub finished_ms: i64,
    /// What the step measured (e.g. `frozen_ms`).
    pub detail: StepDetail,
}

#[derive(sqlx::FromRow)]
struct StepRow {
    request_id: String,
    seq: i64,
    name: String,
    direction: String,
    started_ms: i64,
    finished_ms: i64,
    detail: String,
}

impl TryFrom<StepRow> for StepLogEntry {
    type Error = StoreError;

    fn try_from(row: StepRow) -> StoreResult<StepLogEntry> {
        let key = format!("{}/{}", row.request_id, row.seq);
        Ok(StepLogEntry {
            direction: row
                .direction
                .parse()
                .map_err(|e: crate::model::UnknownValue| corrupt("task_steps", &key, e))?,
            detail: serde_json::from_str(&row.detail)
                .map_err(|e| corrupt("task_steps", &key, e))?,
            name: row.name,
            started_ms: row.started_ms,
            finished_ms: row.finished_ms,
        })
    }
}

/// The claim query: the oldest runnable task whose lease is free or expired. `$4…` are the
/// command types the executor runs (other rows, imported history, are left alone).
fn claim_sql(runnable: &[CommandType], lock: &str) -> String {
    let types: Vec<String> = (0..runnable.len()).map(|n| format!("${}", n + 4)).collect();
    format!(
        "UPDATE tasks SET lease_owner = $1, lease_expires_ms = $2, epoch = epoch + 1 \
         WHERE request_id = (SELECT request_id FROM tasks \
           WHERE state = 'running' AND lease_expires_ms < $3 AND next_run_ms <= $3 \
           AND command_type IN ({}) ORDER BY create_ts, request_id LIMIT 1{lock}) \
         RETURNING request_id, command_type, ref_id, create_ts, request, \
         epoch, step_index, checkpoint, phase, abort_requested",
        types.join(", ")
    )
}

impl Store {
    /// Takes the oldest runnable task whose lease is free or expired: `owner` holds it until
    /// `lease_ms` from now, and its epoch goes up, so a former holder's writes are refused.
    pub async fn claim_task(
        &self,
        owner: &str,
        lease_ms: i64,
        now_ms: i64,
        runnable: &[CommandType],
    ) -> StoreResult<Option<ClaimedTask>> {
        if runnable.is_empty() {
            return Ok(None);
        }
        let expires = now_ms + lease_ms;
        macro_rules! claim {
            ($sql:expr, $conn:expr) => {{
                let sql = $sql;
                let mut query = sqlx::query_as::<_, ClaimedRow>(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(owner)
                    .bind(expires)
                    .bind(now_ms);
                for kind in runnable {
                    query = query.bind(kind.as_str());
                }
                query.fetch_optional($conn).await?
            }};
        }
        let row = match &self.backend {
            Backend::Sqlite { group, .. } => {
                let mut member = group.enter().await?;
                let row = async { Ok(claim!(claim_sql(runnable, ""), member.conn())) }.await;
                member.finish(row).await?
            }
            Backend::Postgres(pool) => claim!(claim_sql(runnable, " FOR UPDATE SKIP LOCKED"), pool),
        };
        row.map(ClaimedTask::try_from).transpose()
    }

    /// A stopping or restarted process frees the leases it holds, so its unfinished tasks
    /// resume at once (on a replica, or after the restart) instead of after the lease expires.
    /// Fencing still guards them.
    pub async fn release_leases_of(&self, owner: &str) -> StoreResult<u64> {
        in_write_tx!(self, |tx| {
            let released = sqlx::query(
                "UPDATE tasks SET lease_expires_ms = 0 WHERE lease_owner = $1 AND state = 'running'",
            )
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok(released)
        })
    }

    /// Extends a lease. False means the task was taken over (or ended): stop working on it.
    pub async fn extend_lease(
        &self,
        request_id: &str,
        epoch: i64,
        until_ms: i64,
    ) -> StoreResult<bool> {
        in_write_tx!(self, |tx| {
            let extended = sqlx::query(
                "UPDATE tasks SET lease_expires_ms = $3 \
                 WHERE request_id = $1 AND epoch = $2 AND state = 'running'",
            )
            .bind(request_id)
            .bind(epoch)
            .bind(until_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok(extended > 0)
        })
    }

    /// Records a finished step and moves the task on, in one transaction fenced on the epoch.
    pub async fn checkpoint_step(
        &self,
        request_id: &str,
        epoch: i64,
        next: (usize, Phase),
        checkpoint: &str,
        step: &StepLogEntry,
    ) -> StoreResult<bool> {
        let now = now_ts();
        let (next_index, phase) = next;
        let detail = serde_json::to_string(&step.detail)
            .map_err(|e| corrupt("task_steps", request_id, e))?;
        let postgres = self.is_postgres();
        let moved = in_write_tx!(self, |tx| {
            let moved: Option<TaskRow> = sqlx::query_as(concat!(
                "UPDATE tasks SET step_index = $3, phase = $4, checkpoint = $5, update_ts = $6 \
                 WHERE request_id = $1 AND epoch = $2 AND state = 'running' RETURNING ",
                task_select!()
            ))
            .bind(request_id)
            .bind(epoch)
            .bind(i64::try_from(next_index).unwrap_or(i64::MAX))
            .bind(phase.as_str())
            .bind(checkpoint)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(task) = moved else {
                return Ok(false);
            };
            sqlx::query(
                "INSERT INTO task_steps (request_id, seq, name, direction, started_ms, finished_ms, detail) \
                 VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM task_steps WHERE request_id = $1), \
                 $2, $3, $4, $5, $6)",
            )
            .bind(request_id)
            .bind(&step.name)
            .bind(step.direction.as_str())
            .bind(step.started_ms)
            .bind(step.finished_ms)
            .bind(&detail)
            .execute(&mut *tx)
            .await?;
            let task = EventSubject::Task(TaskRecord::try_from(task)?);
            record_event!(tx, postgres, EventType::TaskProgress, request_id, task);
            Ok(true)
        })?;
        if moved {
            self.announce_events();
        }
        Ok(moved)
    }

    /// Ends a task (fenced on the epoch).
    pub async fn finish_task(
        &self,
        request_id: &str,
        epoch: i64,
        state: TaskState,
        error: &str,
        result: Option<&str>,
    ) -> StoreResult<bool> {
        let now = now_ts();
        let postgres = self.is_postgres();
        let ended = in_write_tx!(self, |tx| {
            let done: Option<TaskRow> = sqlx::query_as(concat!(
                "UPDATE tasks SET state = $3, error = $4, result = $5, update_ts = $6, \
                 lease_owner = NULL, lease_expires_ms = 0 \
                 WHERE request_id = $1 AND epoch = $2 AND state = 'running' RETURNING ",
                task_select!()
            ))
            .bind(request_id)
            .bind(epoch)
            .bind(state.as_str())
            .bind(error)
            .bind(result)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(task) = done else {
                return Ok(false);
            };
            // What the task intended and claimed ends with it.
            sqlx::query("DELETE FROM sdp_intents WHERE task_id = $1")
                .bind(request_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM resource_claims WHERE task_id = $1")
                .bind(request_id)
                .execute(&mut *tx)
                .await?;
            if postgres {
                // Delivered when the transaction commits, to every replica's relay.
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(super::task_ends::CHANNEL)
                    .bind(request_id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(event_type) = EventType::of_task_end(state) {
                let task = EventSubject::Task(TaskRecord::try_from(task)?);
                record_event!(tx, postgres, event_type, request_id, task);
            }
            Ok(true)
        })?;
        if ended {
            self.announce_end(request_id);
            self.announce_events();
        }
        Ok(ended)
    }

    /// Asks a running task to stop at its next step boundary. False when it is not running.
    pub async fn request_abort(&self, request_id: &str) -> StoreResult<bool> {
        in_write_tx!(self, |tx| {
            let flagged = sqlx::query(
                "UPDATE tasks SET abort_requested = 1 WHERE request_id = $1 AND state = 'running'",
            )
            .bind(request_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok(flagged > 0)
        })
    }

    pub async fn abort_requested(&self, request_id: &str) -> StoreResult<bool> {
        let flag: Option<i64> = on_reader!(self, |pool| {
            sqlx::query_scalar("SELECT abort_requested FROM tasks WHERE request_id = $1")
                .bind(request_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(flag.unwrap_or(0) != 0)
    }

    pub async fn task_steps(&self, request_id: &str) -> StoreResult<Vec<StepLogEntry>> {
        let rows: Vec<StepRow> = on_reader!(self, |pool| {
            sqlx::query_as(
                "SELECT request_id, seq, name, direction, started_ms, finished_ms, detail \
                 FROM task_steps WHERE request_id = $1 ORDER BY seq",
            )
            .bind(request_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(StepLogEntry::try_from).collect()
    }

    /// Running tasks, for the overall-deadline check and for tests.
    pub async fn running_tasks(&self) -> StoreResult<Vec<TaskRecord>> {
        self.list_tasks(&super::TaskFilter {
            state: Some(TaskState::Running),
            ..Default::default()
        })
        .await
    }
}
