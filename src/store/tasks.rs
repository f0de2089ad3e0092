//! Tasks: every long operation is a row that clients poll through its `location`.

use super::{Store, StoreResult, corrupt, on_reader, read_rows};
use crate::model::{CommandType, Phase, TaskState};

/// A task as stored and served.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskRecord {
    pub request_id: String,
    pub state: TaskState,
    pub create_ts: i64,
    pub update_ts: i64,
    pub owner: String,
    pub command_type: CommandType,
    pub ref_id: String,
    pub error: String,
    /// JSON document, present once the task produced a result.
    pub result: Option<String>,
    pub location: String,
    /// The request body that created the task, as JSON (its workflow reads it typed).
    pub request: String,
    /// Where its workflow is: the next step to run (or undo), and in which direction.
    pub position: StepPosition,
}

/// A task's place in its workflow, as its last checkpoint left it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepPosition {
    pub step_index: usize,
    pub phase: Phase,
}

impl Default for StepPosition {
    /// A new task's: its first step, forward.
    fn default() -> Self {
        StepPosition {
            step_index: 0,
            phase: Phase::Forward,
        }
    }
}

/// The row as the database returns it; enums are decoded at this boundary.
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct TaskRow {
    request_id: String,
    state: String,
    create_ts: i64,
    update_ts: i64,
    owner: String,
    command_type: String,
    ref_id: String,
    error: String,
    result: Option<String>,
    location: String,
    request: String,
    step_index: i64,
    phase: String,
}

impl TryFrom<TaskRow> for TaskRecord {
    type Error = super::StoreError;

    fn try_from(row: TaskRow) -> StoreResult<TaskRecord> {
        let unreadable = |err: crate::model::UnknownValue| corrupt("tasks", &row.request_id, err);
        let position = StepPosition {
            step_index: usize::try_from(row.step_index).unwrap_or_default(),
            phase: row.phase.parse().map_err(unreadable)?,
        };
        Ok(TaskRecord {
            state: row.state.parse().map_err(unreadable)?,
            command_type: row.command_type.parse().map_err(unreadable)?,
            request_id: row.request_id,
            create_ts: row.create_ts,
            update_ts: row.update_ts,
            owner: row.owner,
            ref_id: row.ref_id,
            error: row.error,
            result: row.result,
            location: row.location,
            request: row.request,
            position,
        })
    }
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
    pub state: Option<TaskState>,
    pub command_type: Option<CommandType>,
    pub ref_id: Option<String>,
}

macro_rules! task_columns {
    () => {
        "request_id, state, create_ts, update_ts, owner, command_type, \
     ref_id, error, result, location, request"
    };
}
pub(super) use task_columns;

/// What a task read selects: its columns and its place in the workflow.
macro_rules! task_select {
    () => {
        concat!($crate::store::tasks::task_columns!(), ", step_index, phase")
    };
}
pub(super) use task_select;

/// A [`TaskFilter`] as SQL: `$1` state, `$2` command type, `$3` ref id, each absent (NULL)
/// matching everything, which keeps one SQL text for every combination.
macro_rules! task_filters {
    () => {
        "($1 IS NULL OR state = $1) AND ($2 IS NULL OR command_type = $2) \
         AND ($3 IS NULL OR ref_id = $3)"
    };
}

impl Store {
    /// Stores a task unconditionally (see [`Store::create_task`] for the conditional kinds).
    pub async fn insert_task(&self, task: &NewTask) -> StoreResult<()> {
        self.create_task(task, &super::Once::Always).await.map(drop)
    }

    pub async fn get_task(&self, request_id: &str) -> StoreResult<Option<TaskRecord>> {
        let sql = concat!(
            "SELECT ",
            task_select!(),
            " FROM tasks WHERE request_id = $1"
        );
        let row: Option<TaskRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(request_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(TaskRecord::try_from).transpose()
    }

    /// A number that every change to what a task's view shows moves, in that change's own
    /// transaction (a trigger of each backend's migration 0013): a list rendered after
    /// reading it holds every change up to it.
    pub async fn task_list_generation(&self) -> StoreResult<i64> {
        self.generation("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM task_list_generation")
            .await
    }

    /// Tasks oldest first, as `filter` (`task_filters!`) asks.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<TaskRecord>> {
        let rows = read_rows!(
            self,
            TaskRow,
            "tasks",
            task_select!(),
            from: concat!("tasks WHERE ", task_filters!()),
            order: "create_ts, request_id",
            |query| query
                .bind(filter.state.map(TaskState::as_str))
                .bind(filter.command_type.map(CommandType::as_str))
                .bind(&filter.ref_id)
        );
        rows.into_iter().map(TaskRecord::try_from).collect()
    }

    /// A page of tasks, newest first: at most `limit` of those created before the task
    /// `before` (none if it does not exist), or the newest ones without it.
    pub async fn list_tasks_page(
        &self,
        filter: &TaskFilter,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<TaskRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = read_rows!(
            self,
            TaskRow,
            "tasks",
            task_select!(),
            from: concat!(
                "(SELECT * FROM tasks WHERE ",
                task_filters!(),
                " AND ($4 IS NULL OR (create_ts, request_id) < \
                  (SELECT create_ts, request_id FROM tasks WHERE request_id = $4)) \
                 ORDER BY create_ts DESC, request_id DESC LIMIT $5) AS page"
            ),
            order: "create_ts DESC, request_id DESC",
            |query| query
                .bind(filter.state.map(TaskState::as_str))
                .bind(filter.command_type.map(CommandType::as_str))
                .bind(&filter.ref_id)
                .bind(before)
                .bind(limit)
        );
        rows.into_iter().map(TaskRecord::try_from).collect()
    }
}
