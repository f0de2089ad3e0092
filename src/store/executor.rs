//! The executor's bookkeeping: claiming a task with a lease, fencing every write on the
//! lease's epoch, checkpoints, the step log, and ending a task.

use super::{Backend, Store, StoreResult, TaskRecord, in_write_tx, now_ts, on_reader};

/// A claimed task: the row plus where its workflow stands.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClaimedTask {
    pub request_id: String,
    pub command_type: String,
    pub ref_id: String,
    pub create_ts: i64,
    pub location: String,
    pub request: String,
    pub epoch: i64,
    pub step_index: i64,
    pub checkpoint: String,
    pub phase: String,
    pub abort_requested: i64,
}

/// Command types the executor runs; other rows (imported history) are left alone.
macro_rules! runnable_types {
    () => {
        "('CreateCloneCommand', 'CreateDBSnapshotCommand', 'ImportDBSnapshotCommand', \
         'ReplaceDBCommand', 'DeleteCommand', 'DeleteDBSnapshotCommand')"
    };
}

macro_rules! claim_candidate {
    ($lock:expr) => {
        concat!(
            "UPDATE tasks SET lease_owner = $1, lease_expires_ms = $2, epoch = epoch + 1 \
             WHERE request_id = (SELECT request_id FROM tasks \
               WHERE state = 'running' AND lease_expires_ms < $3 AND next_run_ms <= $3 \
               AND command_type IN ",
            runnable_types!(),
            " ORDER BY create_ts, request_id LIMIT 1",
            $lock,
            ") RETURNING request_id, command_type, ref_id, create_ts, location, request, \
             epoch, step_index, checkpoint, phase, abort_requested"
        )
    };
}

impl Store {
    /// Takes the oldest runnable task whose lease is free or expired: `owner` holds it until
    /// `lease_ms` from now, and its epoch goes up, so a former holder's writes are refused.
    pub async fn claim_task(
        &self,
        owner: &str,
        lease_ms: i64,
        now_ms: i64,
    ) -> StoreResult<Option<ClaimedTask>> {
        let expires = now_ms + lease_ms;
        match &self.backend {
            Backend::Sqlite { writer, .. } => {
                let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
                let claimed = sqlx::query_as(claim_candidate!(""))
                    .bind(owner)
                    .bind(expires)
                    .bind(now_ms)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(claimed)
            }
            Backend::Postgres(pool) => {
                Ok(sqlx::query_as(claim_candidate!(" FOR UPDATE SKIP LOCKED"))
                    .bind(owner)
                    .bind(expires)
                    .bind(now_ms)
                    .fetch_optional(pool)
                    .await?)
            }
        }
    }

    /// A restarted process frees the leases its previous incarnation held, so its unfinished
    /// tasks resume at once instead of after the lease expires. Fencing still guards them.
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
    #[allow(clippy::too_many_arguments)]
    pub async fn checkpoint_step(
        &self,
        request_id: &str,
        epoch: i64,
        next_index: i64,
        phase: &str,
        checkpoint: &str,
        step: &StepLogEntry,
    ) -> StoreResult<bool> {
        let now = now_ts();
        in_write_tx!(self, |tx| {
            let moved = sqlx::query(
                "UPDATE tasks SET step_index = $3, phase = $4, checkpoint = $5, update_ts = $6 \
                 WHERE request_id = $1 AND epoch = $2 AND state = 'running'",
            )
            .bind(request_id)
            .bind(epoch)
            .bind(next_index)
            .bind(phase)
            .bind(checkpoint)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 0 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO task_steps (request_id, seq, name, direction, started_ms, finished_ms, detail) \
                 VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM task_steps WHERE request_id = $1), \
                 $2, $3, $4, $5, $6)",
            )
            .bind(request_id)
            .bind(&step.name)
            .bind(&step.direction)
            .bind(step.started_ms)
            .bind(step.finished_ms)
            .bind(&step.detail)
            .execute(&mut *tx)
            .await?;
            Ok(true)
        })
    }

    /// Ends a task (fenced on the epoch).
    pub async fn finish_task(
        &self,
        request_id: &str,
        epoch: i64,
        state: &str,
        error: &str,
        result: Option<&str>,
    ) -> StoreResult<bool> {
        let now = now_ts();
        in_write_tx!(self, |tx| {
            let done = sqlx::query(
                "UPDATE tasks SET state = $3, error = $4, result = $5, update_ts = $6, \
                 lease_owner = NULL, lease_expires_ms = 0 \
                 WHERE request_id = $1 AND epoch = $2 AND state = 'running'",
            )
            .bind(request_id)
            .bind(epoch)
            .bind(state)
            .bind(error)
            .bind(result)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done > 0 {
                sqlx::query("DELETE FROM sdp_intents WHERE task_id = $1")
                    .bind(request_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(done > 0)
        })
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
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(
                "SELECT name, direction, started_ms, finished_ms, detail FROM task_steps \
                 WHERE request_id = $1 ORDER BY seq",
            )
            .bind(request_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Running tasks, for the overall-deadline check and for tests.
    pub async fn running_tasks(&self) -> StoreResult<Vec<TaskRecord>> {
        self.list_tasks(&super::TaskFilter {
            state: Some("running".into()),
            ..Default::default()
        })
        .await
    }
}

/// One line of a task's step log.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct StepLogEntry {
    pub name: String,
    /// `do` or `undo`.
    pub direction: String,
    pub started_ms: i64,
    pub finished_ms: i64,
    /// JSON object: what the step measured (e.g. `frozen_ms`).
    pub detail: String,
}
