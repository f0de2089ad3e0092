//! Echo operations: snapshots, clones ("echo DBs"), clone from a snapshot, refresh, delete,
//! their `…/__validate` dry runs, and the db snapshot listing. Each mutating call runs the
//! checks of `workflows::validate` first (a request that cannot succeed is a 4xx before any
//! task exists), then creates its task and returns it at once; the executor does the work.

use axum::{
    Json, Router,
    extract::{OriginalUri, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    AppState,
    context::RefId,
    error::ApiError,
    extract::{JsonBody, PathParams},
    tasks::TaskView,
};
use crate::{
    auth::random_alphanumeric,
    store::{NewTask, TaskRecord, now_ts},
    workflows::{
        self, CloneRequest, DeleteEchoDbRequest, DeleteSnapshotRequest, Destination, ImportRequest,
        RefreshRequest, SnapshotSpec,
        validate::{Checker, Issue, status_of},
    },
};

pub fn routes() -> Router<AppState> {
    let clone = post(create_clone).delete(delete_echo_db);
    let clone_check = post(validate_clone).delete(validate_delete_echo_db);
    let snapshots = get(list_snapshots).post(create_snapshot);
    Router::new()
        // Seed generation.
        .route("/flex/api/v1/ocie/clone", clone.clone())
        .route("/flex/api/v1/db_snapshots", post(create_snapshot))
        .route(
            "/flex/api/v1/db_snapshots/{id}",
            delete(delete_snapshot_now),
        )
        .route(
            "/flex/api/v1/db_snapshots/{id}/clone",
            post(import_snapshot).get(import_snapshot),
        )
        // Current generation.
        .route("/api/echo/v1/echo_dbs", clone.clone())
        .route("/api/echo/v1/echo_dbs/__validate", clone_check.clone())
        .route("/api/echo/v1/db_snapshots", snapshots.clone())
        .route(
            "/api/echo/v1/db_snapshots/__validate",
            post(validate_snapshot),
        )
        .route(
            "/api/echo/v1/db_snapshots/{id}",
            delete(delete_snapshot_task),
        )
        .route(
            "/api/echo/v1/db_snapshots/{id}/__validate",
            delete(validate_delete_snapshot),
        )
        .route(
            "/api/echo/v1/db_snapshots/{id}/echo_db",
            post(import_snapshot),
        )
        .route(
            "/api/echo/v1/db_snapshots/{id}/echo_db/__validate",
            post(validate_import),
        )
        .route(
            "/api/echo/v1/hosts/{host_id}/databases/_refresh",
            post(refresh),
        )
        .route(
            "/api/echo/v1/hosts/{host_id}/databases/_replace",
            post(refresh),
        )
        .route(
            "/api/echo/v1/hosts/{host_id}/databases/_refresh/__validate",
            post(validate_refresh),
        )
        .route(
            "/api/echo/v1/hosts/{host_id}/databases/_replace/__validate",
            post(validate_refresh),
        )
        // Legacy aliases.
        .route("/api/ocie/v1/clone", clone)
        .route("/api/ocie/v1/db_snapshots", snapshots)
        .route(
            "/api/ocie/v1/db_snapshots/{id}",
            delete(delete_snapshot_task),
        )
        .route(
            "/api/ocie/v1/db_snapshots/{id}/clone",
            post(import_snapshot),
        )
}

/// Ids arrive as strings (documented) or numbers (some clients).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(SafeInteger),
}

impl Id {
    fn into_string(self) -> String {
        match self {
            Id::Text(text) => text,
            Id::Number(SafeInteger(number)) => number.to_string(),
        }
    }
}

/// A non-negative integer a JSON client can hold exactly (at most 2^53 - 1), as the spec says.
#[derive(Clone, Debug)]
struct SafeInteger(u64);

impl<'de> Deserialize<'de> for SafeInteger {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const MAX_SAFE: u64 = (1 << 53) - 1;
        let number = u64::deserialize(deserializer)?;
        if number > MAX_SAFE {
            return Err(serde::de::Error::custom(
                "an id number must be at most 2^53 - 1",
            ));
        }
        Ok(SafeInteger(number))
    }
}

#[derive(Deserialize)]
struct DestinationBody {
    host_id: String,
    #[serde(default)]
    db_id: Option<Id>,
    db_name: String,
}

#[derive(Deserialize)]
struct SnapshotBody {
    source_host_id: String,
    database_ids: Vec<Id>,
    #[serde(default)]
    name_prefix: Option<String>,
    #[serde(default)]
    consistency_level: Option<String>,
    #[serde(default)]
    force_vss_usage: Option<bool>,
    /// Older clients' name for `force_vss_usage`.
    #[serde(default)]
    use_vss: Option<bool>,
}

#[derive(Deserialize)]
struct CloneBody {
    source_host_id: String,
    #[serde(default)]
    database_ids: Option<Vec<Id>>,
    destinations: Vec<DestinationBody>,
    #[serde(default)]
    name_prefix: Option<String>,
    #[serde(default)]
    consistency_level: Option<String>,
    #[serde(default)]
    target_state: Option<String>,
    #[serde(default)]
    force_vss_usage: Option<bool>,
    #[serde(default)]
    use_vss: Option<bool>,
}

#[derive(Deserialize)]
struct ImportBody {
    destinations: Vec<DestinationBody>,
    #[serde(default)]
    target_state: Option<String>,
}

#[derive(Deserialize)]
struct DeleteEchoBody {
    host_id: String,
    database_id: Id,
}

#[derive(Deserialize)]
struct RefreshBody {
    snapshot_id: String,
    db_names: Vec<String>,
    #[serde(default)]
    target_state: Option<String>,
}

const DEFAULT_NAME_PREFIX: &str = "snap";

fn snapshot_spec(
    source_host_id: String,
    database_ids: Vec<String>,
    name_prefix: Option<String>,
    consistency_level: Option<String>,
    force_vss: Option<bool>,
) -> SnapshotSpec {
    SnapshotSpec {
        source_host_id,
        database_ids,
        name_prefix: name_prefix.unwrap_or_else(|| DEFAULT_NAME_PREFIX.to_owned()),
        consistency_level: consistency_level.unwrap_or_else(|| "application".to_owned()),
        force_vss_usage: force_vss.unwrap_or(false),
    }
}

fn checker(state: &AppState) -> Checker<'_> {
    Checker {
        store: &state.store,
        silence: state.config.agent_silence,
        sdp_configured: state.sdp.is_some(),
    }
}

/// A request that cannot succeed: the first issue decides the status; all are reported.
fn refuse(issues: &[Issue]) -> ApiError {
    let first = &issues[0];
    let message = issues
        .iter()
        .map(|i| i.description.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    match status_of(first) {
        404 => ApiError::not_found(first.issue_type, message),
        409 => ApiError::conflict(first.issue_type, message),
        _ => ApiError::bad_request(first.issue_type, message),
    }
}

/// A dry run's answer: 200 with the issues the request would hit. A request that is malformed
/// in itself (an issue that would be a 400: a bad name prefix, an empty list, an unknown enum
/// value) is refused with that 400, as the real request would be; the verdict is about what
/// the current state allows.
fn dry_run(issues: Vec<Issue>) -> Result<Json<Value>, ApiError> {
    if let Some(malformed) = issues.iter().find(|i| status_of(i) == 400) {
        return Err(refuse(std::slice::from_ref(malformed)));
    }
    Ok(Json(json!({"valid": issues.is_empty(), "issues": issues})))
}

/// Which path family a request came by, so its task's `location` resolves (DESIGN.md §1.2).
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

async fn create_task(
    state: &AppState,
    uri: &OriginalUri,
    ref_id: &RefId,
    command_type: &str,
    request: &impl Serialize,
    host_ids: Vec<String>,
) -> Result<TaskView, ApiError> {
    let request_id = random_alphanumeric(30);
    let now = now_ts();
    let record = TaskRecord {
        location: format!("{}/{request_id}", tasks_prefix(uri)),
        request_id,
        state: "running".to_owned(),
        create_ts: now,
        update_ts: now,
        owner: state.config.instance_id.clone(),
        command_type: command_type.to_owned(),
        ref_id: ref_id.0.clone(),
        error: String::new(),
        result: None,
        request: serde_json::to_string(request).unwrap_or_default(),
    };
    let mut host_ids = host_ids;
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
    tracing::info!(request_id = %record.request_id, command_type, "task created");
    Ok(record.into())
}

fn destinations_of(body: Vec<DestinationBody>, only_source: Option<&str>) -> Vec<Destination> {
    body.into_iter()
        .map(|d| Destination {
            host_id: d.host_id,
            db_id: d
                .db_id
                .map(Id::into_string)
                .or_else(|| only_source.map(str::to_owned))
                .unwrap_or_default(),
            db_name: d.db_name,
        })
        .collect()
}

fn clone_request(body: CloneBody) -> CloneRequest {
    let explicit: Option<Vec<String>> = body
        .database_ids
        .map(|ids| ids.into_iter().map(Id::into_string).collect());
    let only_source = explicit
        .as_ref()
        .filter(|ids| ids.len() == 1)
        .map(|ids| ids[0].clone());
    let destinations = destinations_of(body.destinations, only_source.as_deref());
    // Without database_ids, the sources are the databases the destinations name.
    let database_ids = explicit.unwrap_or_else(|| {
        let mut ids: Vec<String> = destinations.iter().map(|d| d.db_id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    });
    CloneRequest {
        snapshot: snapshot_spec(
            body.source_host_id,
            database_ids,
            body.name_prefix,
            body.consistency_level,
            body.force_vss_usage.or(body.use_vss),
        ),
        destinations,
        target_state: body.target_state.unwrap_or_else(|| "online".to_owned()),
    }
}

async fn clone_issues(state: &AppState, request: &CloneRequest) -> Result<Vec<Issue>, ApiError> {
    let checks = checker(state);
    let mut issues = checks.snapshot(&request.snapshot).await?;
    issues.extend(
        checks
            .destinations(
                &request.destinations,
                &request.snapshot.database_ids,
                &request.target_state,
            )
            .await?,
    );
    Ok(issues)
}

async fn create_clone(
    State(state): State<AppState>,
    uri: OriginalUri,
    axum::Extension(ref_id): axum::Extension<RefId>,
    JsonBody(body): JsonBody<CloneBody>,
) -> Result<Json<TaskView>, ApiError> {
    let request = clone_request(body);
    let issues = clone_issues(&state, &request).await?;
    if !issues.is_empty() {
        return Err(refuse(&issues));
    }
    let mut hosts = vec![request.snapshot.source_host_id.clone()];
    hosts.extend(request.destinations.iter().map(|d| d.host_id.clone()));
    Ok(Json(
        create_task(&state, &uri, &ref_id, workflows::CLONE, &request, hosts).await?,
    ))
}

async fn validate_clone(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CloneBody>,
) -> Result<Json<Value>, ApiError> {
    dry_run(clone_issues(&state, &clone_request(body)).await?)
}

fn snapshot_request(body: SnapshotBody) -> SnapshotSpec {
    snapshot_spec(
        body.source_host_id,
        body.database_ids.into_iter().map(Id::into_string).collect(),
        body.name_prefix,
        body.consistency_level,
        body.force_vss_usage.or(body.use_vss),
    )
}

async fn create_snapshot(
    State(state): State<AppState>,
    uri: OriginalUri,
    axum::Extension(ref_id): axum::Extension<RefId>,
    JsonBody(body): JsonBody<SnapshotBody>,
) -> Result<Json<TaskView>, ApiError> {
    let spec = snapshot_request(body);
    let issues = checker(&state).snapshot(&spec).await?;
    if !issues.is_empty() {
        return Err(refuse(&issues));
    }
    let hosts = vec![spec.source_host_id.clone()];
    Ok(Json(
        create_task(&state, &uri, &ref_id, workflows::SNAPSHOT, &spec, hosts).await?,
    ))
}

async fn validate_snapshot(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SnapshotBody>,
) -> Result<Json<Value>, ApiError> {
    dry_run(checker(&state).snapshot(&snapshot_request(body)).await?)
}

async fn import_request(
    state: &AppState,
    snapshot_id: String,
    body: ImportBody,
) -> Result<(ImportRequest, Vec<Issue>), ApiError> {
    let checks = checker(state);
    let mut issues = Vec::new();
    let sources = checks.snapshot_sources(&snapshot_id, &mut issues).await?;
    let source_ids: Vec<String> = sources.iter().flatten().map(|s| s.db_id.clone()).collect();
    // Decision 1: db_id may be omitted when the snapshot holds exactly one database.
    let only = (source_ids.len() == 1).then(|| source_ids[0].clone());
    let request = ImportRequest {
        snapshot_id,
        destinations: destinations_of(body.destinations, only.as_deref()),
        target_state: body.target_state.unwrap_or_else(|| "online".to_owned()),
    };
    let destination_issues = checks
        .destinations(&request.destinations, &source_ids, &request.target_state)
        .await?;
    // Without the snapshot, which databases it holds is unknown: keep the other checks.
    issues.extend(
        destination_issues
            .into_iter()
            .filter(|issue| sources.is_some() || issue.issue_type != "DB_NOT_FOUND"),
    );
    Ok((request, issues))
}

async fn import_snapshot(
    State(state): State<AppState>,
    uri: OriginalUri,
    axum::Extension(ref_id): axum::Extension<RefId>,
    PathParams(snapshot_id): PathParams<String>,
    JsonBody(body): JsonBody<ImportBody>,
) -> Result<Json<TaskView>, ApiError> {
    let (request, issues) = import_request(&state, snapshot_id, body).await?;
    if !issues.is_empty() {
        return Err(refuse(&issues));
    }
    let hosts = request
        .destinations
        .iter()
        .map(|d| d.host_id.clone())
        .collect();
    Ok(Json(
        create_task(&state, &uri, &ref_id, workflows::IMPORT, &request, hosts).await?,
    ))
}

async fn validate_import(
    State(state): State<AppState>,
    PathParams(snapshot_id): PathParams<String>,
    JsonBody(body): JsonBody<ImportBody>,
) -> Result<Json<Value>, ApiError> {
    dry_run(import_request(&state, snapshot_id, body).await?.1)
}

async fn delete_echo_db(
    State(state): State<AppState>,
    uri: OriginalUri,
    axum::Extension(ref_id): axum::Extension<RefId>,
    JsonBody(body): JsonBody<DeleteEchoBody>,
) -> Result<Response, ApiError> {
    let request = DeleteEchoDbRequest {
        host_id: body.host_id,
        database_id: body.database_id.into_string(),
    };
    let issues = checker(&state)
        .delete_echo_db(&request.host_id, &request.database_id)
        .await?;
    if !issues.is_empty() {
        return Err(refuse(&issues));
    }
    let hosts = vec![request.host_id.clone()];
    let task = create_task(
        &state,
        &uri,
        &ref_id,
        workflows::DELETE_ECHO_DB,
        &request,
        hosts,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(task)).into_response())
}

async fn validate_delete_echo_db(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<DeleteEchoBody>,
) -> Result<Json<Value>, ApiError> {
    let db_id = body.database_id.into_string();
    dry_run(
        checker(&state)
            .delete_echo_db(&body.host_id, &db_id)
            .await?,
    )
}

/// Seed path: synchronous, 204 once deleted (DESIGN.md §1.6).
async fn delete_snapshot_now(
    State(state): State<AppState>,
    PathParams(snapshot_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    use crate::workflows::DeleteSnapshotError as error;
    let sdp = state.sdp.clone().ok_or_else(|| {
        ApiError::conflict(
            "SDP_NOT_CONFIGURED",
            "Flex has no SDP configured (--sdp-url)",
        )
    })?;
    match workflows::delete_snapshot_now(&state.store, &sdp, &snapshot_id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(error::NotFound) => Err(ApiError::not_found(
            "SNAPSHOT_NOT_FOUND",
            format!("db snapshot '{snapshot_id}' does not exist"),
        )),
        Err(error::InUse(users)) => Err(ApiError::conflict(
            "SNAPSHOT_IN_USE",
            format!(
                "db snapshot '{snapshot_id}' is used by echo DBs: {}",
                users.join(", ")
            ),
        )),
        Err(error::Store(err)) => Err(err.into()),
        Err(error::Sdp(err)) if err.is_retryable() => Err(ApiError::Unavailable),
        Err(error::Sdp(err)) => Err(ApiError::conflict("SDP_REFUSED", err.to_string())),
    }
}

/// Current path: a task real clients poll (DESIGN.md §1.6).
async fn delete_snapshot_task(
    State(state): State<AppState>,
    uri: OriginalUri,
    axum::Extension(ref_id): axum::Extension<RefId>,
    PathParams(snapshot_id): PathParams<String>,
) -> Result<Json<TaskView>, ApiError> {
    let issues = checker(&state).delete_snapshot(&snapshot_id).await?;
    if !issues.is_empty() {
        return Err(refuse(&issues));
    }
    let snapshot = state.store.get_db_snapshot(&snapshot_id).await?;
    let hosts = snapshot.map(|s| vec![s.host_id]).unwrap_or_default();
    let request = DeleteSnapshotRequest { snapshot_id };
    Ok(Json(
        create_task(
            &state,
            &uri,
            &ref_id,
            workflows::DELETE_SNAPSHOT,
            &request,
            hosts,
        )
        .await?,
    ))
}

async fn validate_delete_snapshot(
    State(state): State<AppState>,
    PathParams(snapshot_id): PathParams<String>,
) -> Result<Response, ApiError> {
    let issues = checker(&state).delete_snapshot(&snapshot_id).await?;
    // Real clients poll this until valid, and read a 404 as "already gone".
    if issues.iter().any(|i| i.issue_type == "SNAPSHOT_NOT_FOUND") {
        return Err(refuse(&issues));
    }
    Ok(dry_run(issues)?.into_response())
}

async fn refresh_issues(
    state: &AppState,
    host_id: &str,
    body: &RefreshBody,
) -> Result<Vec<Issue>, ApiError> {
    let target_state = body.target_state.as_deref().unwrap_or("online");
    Ok(checker(state)
        .refresh(host_id, &body.snapshot_id, &body.db_names, target_state)
        .await?)
}

async fn refresh(
    State(state): State<AppState>,
    uri: OriginalUri,
    axum::Extension(ref_id): axum::Extension<RefId>,
    PathParams(host_id): PathParams<String>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Json<TaskView>, ApiError> {
    let issues = refresh_issues(&state, &host_id, &body).await?;
    if !issues.is_empty() {
        return Err(refuse(&issues));
    }
    let request = RefreshRequest {
        host_id: host_id.clone(),
        snapshot_id: body.snapshot_id,
        db_names: body.db_names,
        target_state: body.target_state.unwrap_or_else(|| "online".to_owned()),
    };
    Ok(Json(
        create_task(
            &state,
            &uri,
            &ref_id,
            workflows::REFRESH,
            &request,
            vec![host_id],
        )
        .await?,
    ))
}

async fn validate_refresh(
    State(state): State<AppState>,
    PathParams(host_id): PathParams<String>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Json<Value>, ApiError> {
    dry_run(refresh_issues(&state, &host_id, &body).await?)
}

/// The db snapshots, in the documented listing shape.
async fn list_snapshots(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    let snapshots = state.store.list_db_snapshots().await?;
    Ok(Json(snapshots.iter().map(snapshot_view).collect()))
}

pub fn snapshot_view(snapshot: &crate::store::DbSnapshotRecord) -> Value {
    let vgs: Vec<Value> = serde_json::from_str(&snapshot.vg_snapshots).unwrap_or_default();
    let databases: Vec<Value> = serde_json::from_str(&snapshot.databases).unwrap_or_default();
    json!({
        "id": snapshot.id,
        "host_id": snapshot.host_id,
        "host_name": snapshot.host_name,
        "sdp_id": snapshot.sdp_id,
        "vg_snapshot_ids": vgs.iter().map(|v| v["sdp_snapshot_id"].clone()).collect::<Vec<_>>(),
        "databases": databases
            .iter()
            .map(|d| json!({"db_id": d["db_id"], "db_name": d["db_name"]}))
            .collect::<Vec<_>>(),
        "timestamp": snapshot.created_ts,
        "consistency_level": snapshot.consistency_level,
        "db_engine_version": snapshot.db_engine_version,
        "is_vss_based": snapshot.is_vss_based != 0,
    })
}
