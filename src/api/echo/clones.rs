//! Echo DBs: snapshot + clone, clone from an existing snapshot, refresh, delete, and their dry
//! runs. Each handler translates its body, checks it, and creates the task.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{
    bodies::{
        CloneBody, DeleteEchoBody, ImportBody, RefreshBody, destinations_of, new_lifecycle,
        target_state, ttl_secs,
    },
    checker, dry_run,
    tasks::{TaskOrigin, submit},
};
use crate::{
    api::{
        AppState,
        error::ApiError,
        extract::{JsonBody, PathParams},
        tasks::TaskView,
    },
    workflows::{
        requests::{CloneRequest, DeleteEchoDbRequest, ImportRequest, RefreshRequest},
        validate::{Issue, IssueCode},
    },
};

async fn clone_issues(
    state: &AppState,
    body: CloneBody,
) -> Result<(CloneRequest, Vec<Issue>), ApiError> {
    let parsed = body.into_request();
    let request = parsed.request;
    let mut issues = parsed.issues;
    let checks = checker(state);
    issues.extend(checks.snapshot(&request.snapshot).await?);
    issues.extend(
        checks
            .destinations(&request.destinations, &request.snapshot.database_ids)
            .await?,
    );
    Ok((request, issues))
}

pub async fn create_clone(
    State(state): State<AppState>,
    origin: TaskOrigin,
    JsonBody(body): JsonBody<CloneBody>,
) -> Result<Json<TaskView>, ApiError> {
    let checked = clone_issues(&state, body).await?;
    Ok(Json(submit(&state, &origin, checked).await?))
}

pub async fn validate_clone(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CloneBody>,
) -> Result<Json<Value>, ApiError> {
    dry_run(&clone_issues(&state, body).await?.1)
}

async fn import_issues(
    state: &AppState,
    snapshot_id: String,
    body: ImportBody,
) -> Result<(ImportRequest, Vec<Issue>), ApiError> {
    let checks = checker(state);
    let mut issues = Vec::new();
    let target_state = target_state(body.target_state, &mut issues);
    let sources = checks.snapshot_sources(&snapshot_id, &mut issues).await?;
    let source_ids: Vec<String> = sources.iter().flatten().map(|s| s.db_id.clone()).collect();
    // db_id may be omitted when the snapshot holds exactly one database.
    let only = (source_ids.len() == 1).then(|| source_ids[0].clone());
    let request = ImportRequest {
        snapshot_id,
        destinations: destinations_of(body.destinations, only.as_deref()),
        target_state,
        lifecycle: new_lifecycle(body.ttl_secs, body.protected, &mut issues),
    };
    let destination_issues = checks
        .destinations(&request.destinations, &source_ids)
        .await?;
    // Without the snapshot, which databases it holds is unknown: keep the other checks.
    issues.extend(
        destination_issues
            .into_iter()
            .filter(|issue| sources.is_some() || issue.issue_type != IssueCode::DbNotFound),
    );
    Ok((request, issues))
}

pub async fn import_snapshot(
    State(state): State<AppState>,
    origin: TaskOrigin,
    PathParams(snapshot_id): PathParams<String>,
    JsonBody(body): JsonBody<ImportBody>,
) -> Result<Json<TaskView>, ApiError> {
    let checked = import_issues(&state, snapshot_id, body).await?;
    Ok(Json(submit(&state, &origin, checked).await?))
}

pub async fn validate_import(
    State(state): State<AppState>,
    PathParams(snapshot_id): PathParams<String>,
    JsonBody(body): JsonBody<ImportBody>,
) -> Result<Json<Value>, ApiError> {
    dry_run(&import_issues(&state, snapshot_id, body).await?.1)
}

pub async fn delete_echo_db(
    State(state): State<AppState>,
    origin: TaskOrigin,
    JsonBody(body): JsonBody<DeleteEchoBody>,
) -> Result<Response, ApiError> {
    let request = DeleteEchoDbRequest {
        host_id: body.host_id,
        database_id: body.database_id.into_string(),
    };
    let issues = checker(&state)
        .delete_echo_db(&request.host_id, &request.database_id)
        .await?;
    let task = submit(&state, &origin, (request, issues)).await?;
    Ok((StatusCode::ACCEPTED, Json(task)).into_response())
}

pub async fn validate_delete_echo_db(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<DeleteEchoBody>,
) -> Result<Json<Value>, ApiError> {
    let db_id = body.database_id.into_string();
    dry_run(
        &checker(&state)
            .delete_echo_db(&body.host_id, &db_id)
            .await?,
    )
}

async fn refresh_issues(
    state: &AppState,
    host_id: String,
    body: RefreshBody,
) -> Result<(RefreshRequest, Vec<Issue>), ApiError> {
    let mut issues = Vec::new();
    if body.keep_backup {
        issues.push(Issue::new(
            IssueCode::KeepBackupUnsupported,
            "keep_backup: true is not supported: a refresh replaces the echo DB and keeps no \
             copy of it; take a db snapshot first to keep one",
        ));
    }
    let request = RefreshRequest {
        target_state: target_state(body.target_state, &mut issues),
        host_id,
        snapshot_id: body.snapshot_id,
        db_names: body.db_names,
        ttl_secs: ttl_secs(body.ttl_secs, &mut issues),
    };
    issues.extend(
        checker(state)
            .refresh(&request.host_id, &request.snapshot_id, &request.db_names)
            .await?,
    );
    Ok((request, issues))
}

pub async fn refresh(
    State(state): State<AppState>,
    origin: TaskOrigin,
    PathParams(host_id): PathParams<String>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Json<TaskView>, ApiError> {
    let checked = refresh_issues(&state, host_id, body).await?;
    Ok(Json(submit(&state, &origin, checked).await?))
}

pub async fn validate_refresh(
    State(state): State<AppState>,
    PathParams(host_id): PathParams<String>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Json<Value>, ApiError> {
    dry_run(&refresh_issues(&state, host_id, body).await?.1)
}
