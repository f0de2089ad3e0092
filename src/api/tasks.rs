//! Tasks, read side: what clients poll while an operation runs. Served under the seed, current
//! and legacy prefixes; a task's own `location` always names the family that created it.

use axum::{Json, Router, extract::State, routing::get};
use serde::{Deserialize, Serialize};

use super::{
    AppState,
    error::ApiError,
    extract::{PathParams, QueryParams},
};
use crate::{
    model::{CommandType, TaskState},
    store::{TaskFilter, TaskRecord},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list_tasks))
        .route("/tasks/{request_id}", get(get_task))
        .route("/tasks/{request_id}/abort", axum::routing::post(abort_task))
}

/// A task in the documented shape.
#[derive(Serialize)]
pub struct TaskView {
    pub state: TaskState,
    pub create_ts: i64,
    pub update_ts: i64,
    pub request_id: String,
    pub owner: String,
    pub command_type: CommandType,
    pub ref_id: String,
    pub error: String,
    /// Stored JSON, passed through as it is (null until the task has a result).
    pub result: Option<Box<serde_json::value::RawValue>>,
    pub location: String,
}

impl From<TaskRecord> for TaskView {
    fn from(task: TaskRecord) -> TaskView {
        TaskView {
            result: task
                .result
                .and_then(|json| serde_json::value::RawValue::from_string(json).ok()),
            state: task.state,
            create_ts: task.create_ts,
            update_ts: task.update_ts,
            request_id: task.request_id,
            owner: task.owner,
            command_type: task.command_type,
            ref_id: task.ref_id,
            error: task.error,
            location: task.location,
        }
    }
}

#[derive(Deserialize)]
struct TaskListQuery {
    state: Option<String>,
    command_type: Option<String>,
    ref_id: Option<String>,
}

/// A query value that must be one of an enum's values.
fn query_value<T: std::str::FromStr<Err = crate::model::UnknownValue>>(
    name: &str,
    value: Option<&str>,
) -> Result<Option<T>, ApiError> {
    value
        .map(|text| {
            text.parse().map_err(|err| {
                ApiError::bad_request("INVALID_QUERY", format!("query '{name}': {err}"))
            })
        })
        .transpose()
}

async fn list_tasks(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<TaskListQuery>,
) -> Result<Json<Vec<TaskView>>, ApiError> {
    let wanted_state = query_value("state", query.state.as_deref())?;
    // A command type no task can have matches nothing: other systems' tasks carry types
    // this Flex has never heard of, and asking for them is not an error.
    let command_type = match query.command_type.as_deref().map(str::parse::<CommandType>) {
        None => None,
        Some(Ok(command_type)) => Some(command_type),
        Some(Err(_)) => return Ok(Json(Vec::new())),
    };
    let filter = TaskFilter {
        state: wanted_state,
        command_type,
        ref_id: query.ref_id,
    };
    let tasks = state.store.list_tasks(&filter).await?;
    Ok(Json(tasks.into_iter().map(TaskView::from).collect()))
}

async fn get_task(
    State(state): State<AppState>,
    PathParams(request_id): PathParams<String>,
) -> Result<Json<TaskView>, ApiError> {
    let task = state.store.get_task(&request_id).await?.ok_or_else(|| {
        ApiError::not_found(
            "TASK_NOT_FOUND",
            format!("task '{request_id}' does not exist"),
        )
    })?;
    Ok(Json(task.into()))
}

/// Asks a running task to stop at its next step boundary; it then undoes what it did and ends
/// `aborted`. Answers the task as it is now (still `running` while it compensates).
async fn abort_task(
    State(state): State<AppState>,
    PathParams(request_id): PathParams<String>,
) -> Result<(axum::http::StatusCode, Json<TaskView>), ApiError> {
    let task = state.store.get_task(&request_id).await?.ok_or_else(|| {
        ApiError::not_found(
            "TASK_NOT_FOUND",
            format!("task '{request_id}' does not exist"),
        )
    })?;
    if !state.store.request_abort(&request_id).await? {
        return Err(ApiError::conflict(
            "TASK_NOT_RUNNING",
            format!(
                "task '{request_id}' is {}; only running tasks can be aborted",
                task.state
            ),
        ));
    }
    tracing::info!(%request_id, "abort requested");
    state.executor.wake();
    Ok((axum::http::StatusCode::ACCEPTED, Json(task.into())))
}
