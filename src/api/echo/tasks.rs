//! Creating a task for an accepted Echo request: the row the executor will claim, with its
//! typed request stored as JSON and the hosts it involves, and the executor woken at once.

use axum::extract::OriginalUri;

use super::super::{AppState, context::RefId, error::ApiError, tasks::TaskView};
use crate::{
    auth::random_alphanumeric,
    clock::now_ts,
    model::TaskState,
    store::{NewTask, TaskRecord},
    workflows::{requests::TaskRequest, validate::Issue},
};

/// Which path family a request came by, so its task's `location` resolves there.
fn tasks_prefix(uri: &OriginalUri) -> &'static str {
    let path = uri.path();
    if path.starts_with("/flex/") {
        "/flex/api/v1/ocie/tasks"
    } else if path.starts_with("/api/ocie/") {
        "/api/ocie/v1/tasks"
    } else {
        "/api/echo/v1/tasks"
    }
}

/// A checked request: refused with its issues if it has any, else stored as a running task.
pub async fn submit<R: TaskRequest>(
    state: &AppState,
    uri: &OriginalUri,
    ref_id: &RefId,
    (request, issues): (R, Vec<Issue>),
) -> Result<TaskView, ApiError> {
    super::check(&issues)?;
    create_task(state, uri, ref_id, &request).await
}

/// Stores a running task for `request`, involving the hosts it names.
pub async fn create_task<R: TaskRequest>(
    state: &AppState,
    uri: &OriginalUri,
    ref_id: &RefId,
    request: &R,
) -> Result<TaskView, ApiError> {
    let command_type = R::COMMAND;
    let mut host_ids = request.host_ids();
    let request_id = random_alphanumeric(30);
    let now = now_ts();
    let request = serde_json::to_string(request)
        .map_err(|err| ApiError::Internal(format!("cannot store the request: {err}")))?;
    let record = TaskRecord {
        location: format!("{}/{request_id}", tasks_prefix(uri)),
        request_id,
        state: TaskState::Running,
        create_ts: now,
        update_ts: now,
        owner: state.config.instance_id.clone(),
        command_type,
        ref_id: ref_id.0.clone(),
        error: String::new(),
        result: None,
        request,
    };
    host_ids.sort();
    host_ids.dedup();
    state
        .store
        .insert_task(&NewTask {
            record: record.clone(),
            host_ids,
        })
        .await?;
    state.executor.wake();
    tracing::info!(request_id = %record.request_id, %command_type, "task created");
    Ok(record.into())
}
