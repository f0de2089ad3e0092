//! Tasks, read side: what clients poll while an operation runs. Served under the seed, current
//! and legacy prefixes; a task's own `location` always names the family that created it.
//!
//! `?wait_secs=N` long-polls: the answer comes as soon as the task ends, or after N seconds.
//! A waiting request reads the task twice (before and after) and otherwise waits on the
//! store's task-end announcements, which on Postgres also carry other replicas' ends.
//!
//! Lists are kept rendered until a task changes (`kept_lists`).

mod kept_lists;

pub use kept_lists::TaskListCache;

use std::time::Duration;

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::{
    AppState,
    error::ApiError,
    extract::{PathParams, QueryParams, limit_param},
};
use kept_lists::ListQuery;

use crate::{
    model::{CommandType, Phase, TaskState},
    store::{TaskFilter, TaskRecord},
};

/// The longest a long-poll waits.
pub const MAX_WAIT_SECS: u64 = 60;

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
    /// The hosts its request involves (empty for command types Flex does not run).
    pub hosts: Vec<String>,
    /// Where the task is in its workflow (absent for command types Flex does not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Each step of its workflow, with `?steps=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<super::steps::StepView>>,
}

/// `{"step", "done", "total", "phase"}`: the step running (or undone) now, or the last one.
#[derive(Serialize)]
pub struct Progress {
    pub step: &'static str,
    /// Steps done so far (all of them once the task completed).
    pub done: usize,
    pub total: usize,
    /// `forward`, or `undo` while an aborted or failed task undoes its steps.
    pub phase: Phase,
}

pub(super) fn progress_of(task: &TaskRecord) -> Option<Progress> {
    let (_, steps) = crate::workflows::WORKFLOWS
        .iter()
        .find(|(command, _)| *command == task.command_type)?;
    let total = steps.len();
    let position = task.position;
    let done = if task.state == TaskState::Completed {
        total
    } else {
        position.step_index.min(total)
    };
    let at = match position.phase {
        Phase::Forward => done.min(total.saturating_sub(1)),
        // Undoing walks back: the step being undone is the one before the index.
        Phase::Undo => position
            .step_index
            .saturating_sub(1)
            .min(total.saturating_sub(1)),
    };
    Some(Progress {
        step: steps.get(at)?.name,
        done,
        total,
        phase: position.phase,
    })
}

impl From<TaskRecord> for TaskView {
    fn from(task: TaskRecord) -> TaskView {
        TaskView {
            progress: progress_of(&task),
            hosts: crate::workflows::requests::EchoRequest::decode(
                task.command_type,
                &task.request,
            )
            .map(|request| request.host_ids())
            .unwrap_or_default(),
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
            steps: None,
        }
    }
}

#[derive(Deserialize)]
struct TaskListQuery {
    state: Option<String>,
    command_type: Option<String>,
    ref_id: Option<String>,
    /// Opt-in paging: at most this many, newest first.
    limit: Option<i64>,
    /// Only tasks created before this one (the last of the previous page); pages by 100
    /// without `limit`.
    before: Option<String>,
}

/// The most tasks one page may ask for.
const MAX_PAGE: i64 = 1000;
/// A page's size when `before` comes without `limit`.
const DEFAULT_PAGE: i64 = 100;

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
) -> Result<Response, ApiError> {
    let wanted_state = query_value("state", query.state.as_deref())?;
    // A cursor alone asks for a page too, of the default size; an empty one is no cursor.
    let before = query.before.filter(|before| !before.is_empty());
    let limit = match (query.limit, &before) {
        (None, None) => None,
        (given, _) => Some(limit_param(given, DEFAULT_PAGE, MAX_PAGE)?),
    };
    // A command type no task can have matches nothing: other systems' tasks carry types
    // this Flex has never heard of, and asking for them is not an error.
    let command_type = match query.command_type.as_deref().map(str::parse::<CommandType>) {
        None => None,
        Some(Ok(command_type)) => Some(command_type),
        Some(Err(_)) => return Ok(json_body(Bytes::from_static(b"[]"))),
    };
    let wanted = ListQuery {
        state: wanted_state,
        command_type,
        ref_id: query.ref_id,
        page: limit.map(|limit| (usize::try_from(limit).expect("checked: 1 to 1000"), before)),
    };
    // Read before the rows: a list kept at this generation or later holds every change
    // committed before this request.
    let generation = state.store.task_list_generation().await?;
    if let Some(body) = state.task_lists.get(&wanted, generation) {
        return Ok(json_body(body));
    }
    let filter = TaskFilter {
        state: wanted.state,
        command_type: wanted.command_type,
        ref_id: wanted.ref_id.clone(),
    };
    let tasks = match &wanted.page {
        None => state.store.list_tasks(&filter).await?,
        Some((limit, before)) => {
            let before = before.as_deref();
            state.store.list_tasks_page(&filter, before, *limit).await?
        }
    };
    let views: Vec<TaskView> = tasks.into_iter().map(TaskView::from).collect();
    let body =
        Bytes::from(serde_json::to_vec(&views).map_err(|err| ApiError::Internal(err.to_string()))?);
    state.task_lists.keep(wanted, generation, body.clone());
    Ok(json_body(body))
}

/// Bytes that are JSON already, answered as `Json` answers.
fn json_body(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Resolves once the server begins to stop.
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    loop {
        let stop = *stopping.borrow_and_update();
        if stop || stopping.changed().await.is_err() {
            return;
        }
    }
}

#[derive(Deserialize)]
struct TaskQuery {
    wait_secs: Option<u64>,
    #[serde(default)]
    steps: bool,
}

/// The task as the API shows it, with its steps when they were asked for.
async fn answer(
    state: &AppState,
    task: TaskRecord,
    steps: bool,
) -> Result<Json<TaskView>, ApiError> {
    let log = if steps {
        Some(state.store.task_steps(&task.request_id).await?)
    } else {
        None
    };
    let steps = log.map(|log| super::steps::steps_of(&task, &log));
    let mut view = TaskView::from(task);
    view.steps = steps;
    Ok(Json(view))
}

async fn read_task(state: &AppState, request_id: &str) -> Result<TaskRecord, ApiError> {
    state.store.get_task(request_id).await?.ok_or_else(|| {
        ApiError::not_found(
            "TASK_NOT_FOUND",
            format!("task '{request_id}' does not exist"),
        )
    })
}

async fn get_task(
    State(state): State<AppState>,
    PathParams(request_id): PathParams<String>,
    QueryParams(query): QueryParams<TaskQuery>,
) -> Result<Json<TaskView>, ApiError> {
    let wait = query.wait_secs.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(ApiError::bad_request(
            "INVALID_QUERY",
            format!("query 'wait_secs': {wait} must be from 0 to {MAX_WAIT_SECS}"),
        ));
    }
    // Listening before the first read: an end between the two is not missed.
    let mut ends = state.store.task_ends();
    let task = read_task(&state, &request_id).await?;
    if task.state != TaskState::Running || wait == 0 {
        return answer(&state, task, query.steps).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let stopping = stopped(state.stopping.clone());
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            // A server going down answers its waiters now rather than hold the drain.
            () = &mut stopping => break,
            ended = ends.recv() => match ended {
                Ok(id) if id == request_id => break,
                Ok(_) => {}
                // Announcements were missed: the task may be among them.
                Err(RecvError::Lagged(_)) => {
                    let now = read_task(&state, &request_id).await?;
                    if now.state != TaskState::Running {
                        return answer(&state, now, query.steps).await;
                    }
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    answer(&state, read_task(&state, &request_id).await?, query.steps).await
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
