//! Db snapshots: take one, list them, delete one (synchronously on the seed path, as a task on
//! the current one), and the dry runs of taking and deleting.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::{
    bodies::SnapshotBody,
    checker, dry_run, refuse,
    tasks::{TaskOrigin, submit},
};
use crate::{
    api::{
        AppState,
        error::ApiError,
        extract::{JsonBody, PathParams},
        tasks::TaskView,
    },
    model::ConsistencyLevel,
    store::DbSnapshotRecord,
    workflows::{
        self, DeleteSnapshotError,
        requests::DeleteSnapshotRequest,
        validate::{Issue, IssueCode},
    },
};

async fn snapshot_issues(
    state: &AppState,
    body: SnapshotBody,
) -> Result<(workflows::requests::SnapshotSpec, Vec<Issue>), ApiError> {
    let parsed = body.into_spec();
    let mut issues = parsed.issues;
    issues.extend(checker(state).snapshot(&parsed.request).await?);
    Ok((parsed.request, issues))
}

pub async fn create_snapshot(
    State(state): State<AppState>,
    origin: TaskOrigin,
    JsonBody(body): JsonBody<SnapshotBody>,
) -> Result<Json<TaskView>, ApiError> {
    let checked = snapshot_issues(&state, body).await?;
    Ok(Json(submit(&state, &origin, checked).await?))
}

pub async fn validate_snapshot(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SnapshotBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    dry_run(&snapshot_issues(&state, body).await?.1)
}

/// Seed path: synchronous, 204 once deleted.
pub async fn delete_snapshot_now(
    State(state): State<AppState>,
    PathParams(snapshot_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let sdp = state.sdp.clone().ok_or_else(|| {
        ApiError::conflict(
            IssueCode::SdpNotConfigured.as_str(),
            "Flex has no SDP configured (--sdp-url)",
        )
    })?;
    match workflows::delete_snapshot_now(&state.store, &sdp, &snapshot_id, "").await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(DeleteSnapshotError::NotFound) => Err(ApiError::not_found(
            IssueCode::SnapshotNotFound.as_str(),
            format!("db snapshot '{snapshot_id}' does not exist"),
        )),
        Err(DeleteSnapshotError::InUse(users)) => Err(ApiError::conflict(
            IssueCode::SnapshotInUse.as_str(),
            format!(
                "db snapshot '{snapshot_id}' is used by echo DBs: {}",
                users.join(", ")
            ),
        )),
        Err(DeleteSnapshotError::Importing(tasks)) => Err(ApiError::conflict(
            IssueCode::SnapshotInUse.as_str(),
            workflows::importing_message(&snapshot_id, &tasks),
        )),
        Err(DeleteSnapshotError::Store(err)) => Err(err.into()),
        Err(DeleteSnapshotError::Sdp(err)) if err.is_retryable() => Err(ApiError::Unavailable),
        Err(DeleteSnapshotError::Sdp(err)) => {
            Err(ApiError::conflict("SDP_REFUSED", err.to_string()))
        }
    }
}

/// Current path: a task real clients poll.
pub async fn delete_snapshot_task(
    State(state): State<AppState>,
    origin: TaskOrigin,
    PathParams(snapshot_id): PathParams<String>,
) -> Result<Json<TaskView>, ApiError> {
    let issues = checker(&state).delete_snapshot(&snapshot_id).await?;
    let snapshot = state.store.get_db_snapshot(&snapshot_id).await?;
    let request = DeleteSnapshotRequest {
        host_id: snapshot.map(|s| s.host_id).unwrap_or_default(),
        snapshot_id,
    };
    Ok(Json(submit(&state, &origin, (request, issues)).await?))
}

pub async fn validate_delete_snapshot(
    State(state): State<AppState>,
    PathParams(snapshot_id): PathParams<String>,
) -> Result<Response, ApiError> {
    let issues = checker(&state).delete_snapshot(&snapshot_id).await?;
    // Real clients poll this until valid, and read a 404 as "already gone".
    if issues
        .iter()
        .any(|i| i.issue_type == IssueCode::SnapshotNotFound)
    {
        return Err(refuse(&issues));
    }
    Ok(dry_run(&issues)?.into_response())
}

/// A db snapshot in the documented listing shape.
#[derive(Serialize)]
pub struct SnapshotView<'a> {
    id: &'a str,
    host_id: &'a str,
    host_name: &'a str,
    sdp_id: &'a str,
    vg_snapshot_ids: Vec<u64>,
    databases: Vec<MemberView<'a>>,
    timestamp: i64,
    consistency_level: ConsistencyLevel,
    db_engine_version: &'a str,
    is_vss_based: bool,
    /// The snapshot schedule that took it, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule_id: Option<&'a str>,
}

#[derive(Serialize)]
struct MemberView<'a> {
    db_id: &'a str,
    db_name: &'a str,
}

pub fn snapshot_view(snapshot: &DbSnapshotRecord) -> SnapshotView<'_> {
    SnapshotView {
        id: &snapshot.id,
        host_id: &snapshot.host_id,
        host_name: &snapshot.host_name,
        sdp_id: &snapshot.sdp_id,
        vg_snapshot_ids: snapshot
            .vg_snapshots
            .iter()
            .map(|v| v.sdp_snapshot_id)
            .collect(),
        databases: snapshot
            .databases
            .iter()
            .map(|d| MemberView {
                db_id: &d.db_id,
                db_name: &d.db_name,
            })
            .collect(),
        timestamp: snapshot.created_ts,
        consistency_level: snapshot.consistency_level,
        db_engine_version: &snapshot.db_engine_version,
        is_vss_based: snapshot.is_vss_based,
        schedule_id: snapshot.schedule_id.as_deref(),
    }
}

/// The db snapshots, in the documented listing shape.
pub async fn list_snapshots(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshots = state.store.list_db_snapshots().await?;
    let views: Vec<SnapshotView<'_>> = snapshots.iter().map(snapshot_view).collect();
    Ok(Json(views).into_response())
}
