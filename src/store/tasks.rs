//! Tasks: every long operation is a row that clients poll through its `location`.

use super::{Store, StoreResult, in_write_tx, on_reader};

/// A task as stored and served.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct TaskRecord {
    pub request_id: String,
    pub state: String,
    pub create_ts: i64,
    pub update_ts: i64,
    pub owner: String,
    pub command_type: String,
    pub ref_id: String,
    pub error: String,
    /// JSON document, present once the task produced a result.
    pub result: Option<String>,
    pub location: String,
    /// The request body that created the task, as JSON.
    pub request: String,
}

/// A task about to be created, and the hosts it involves.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub record: TaskRecord,
    pub host_ids: Vec<String>,
}

/// Optional filters of the task list; an empty filter lists every task.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub state: Option<String>,
    pub command_type: Option<String>,
    pub ref_id: Option<String>,
}

macro_rules! task_columns {
    () => {
        "request_id, state, create_ts, update_ts, owner, command_type, \
     ref_id, error, result, location, request"
    };
}

impl Store {
    pub async fn insert_task(&self, task: &NewTask) -> StoreResult<()> {
        let t = &task.record;
        in_write_tx!(self, |tx| {
            sqlx::query(concat!(
                "INSERT INTO tasks (",
                task_columns!(),
                ") \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ))
            .bind(&t.request_id)
            .bind(&t.state)
            .bind(t.create_ts)
            .bind(t.update_ts)
            .bind(&t.owner)
            .bind(&t.command_type)
            .bind(&t.ref_id)
            .bind(&t.error)
            .bind(&t.result)
            .bind(&t.location)
            .bind(&t.request)
            .execute(&mut *tx)
            .await?;
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
            Ok(())
        })
    }

    pub async fn get_task(&self, request_id: &str) -> StoreResult<Option<TaskRecord>> {
        let sql = concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE request_id = $1"
        );
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(request_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Tasks oldest first. Absent filters match everything (`$n IS NULL OR …`), which keeps one
    /// SQL text for every combination.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<TaskRecord>> {
        let sql = concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks \
             WHERE ($1 IS NULL OR state = $1) \
               AND ($2 IS NULL OR command_type = $2) \
               AND ($3 IS NULL OR ref_id = $3) \
             ORDER BY create_ts, request_id"
        );
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(&filter.state)
                .bind(&filter.command_type)
                .bind(&filter.ref_id)
                .fetch_all(pool)
                .await?
        }))
    }
}
