//! Echo operations: snapshots, clones ("echo DBs"), clone from a snapshot, refresh, delete,
//! their `…/__validate` dry runs, the db snapshot listing, an echo DB's lifecycle (keep-alive,
//! expiry, protection) and snapshot schedules. Each mutating call reads its
//! body ([`bodies`]), runs the checks of `workflows::validate` (a request that cannot succeed
//! is a 4xx before any task exists), then creates its task ([`tasks`]) and returns it at once;
//! the executor does the work.
//!
//! This file is the routing table of every generation: the handlers are the same, the paths
//! differ.

mod bodies;
mod clones;
mod lifecycle;
mod schedules;
mod snapshots;
mod tasks;

pub use snapshots::snapshot_view;

use axum::{
    Json, Router,
    routing::{delete, get, patch, post},
};
use serde_json::{Value, json};

use super::{AppState, error::ApiError};
use crate::workflows::validate::{Checker, Issue};

pub fn routes() -> Router<AppState> {
    let clone = post(clones::create_clone).delete(clones::delete_echo_db);
    let clone_check = post(clones::validate_clone).delete(clones::validate_delete_echo_db);
    let list_or_snapshot = get(snapshots::list_snapshots).post(snapshots::create_snapshot);
    let import = post(clones::import_snapshot);
    Router::new()
        // Seed generation.
        .route("/flex/api/v1/ocie/clone", clone.clone())
        .merge(refresh_routes("/flex/api/v1"))
        .route(
            "/flex/api/v1/db_snapshots",
            post(snapshots::create_snapshot),
        )
        .route(
            "/flex/api/v1/db_snapshots/{id}",
            delete(snapshots::delete_snapshot_now),
        )
        .route(
            "/flex/api/v1/db_snapshots/{id}/clone",
            import.clone().get(clones::import_snapshot),
        )
        // Current generation.
        .route("/api/echo/v1/echo_dbs", clone.clone())
        .route("/api/echo/v1/echo_dbs/__validate", clone_check)
        .route("/api/echo/v1/db_snapshots", list_or_snapshot.clone())
        .route(
            "/api/echo/v1/db_snapshots/__validate",
            post(snapshots::validate_snapshot),
        )
        .route(
            "/api/echo/v1/db_snapshots/{id}",
            delete(snapshots::delete_snapshot_task),
        )
        .route(
            "/api/echo/v1/db_snapshots/{id}/__validate",
            delete(snapshots::validate_delete_snapshot),
        )
        .route("/api/echo/v1/db_snapshots/{id}/echo_db", import.clone())
        .route(
            "/api/echo/v1/db_snapshots/{id}/echo_db/__validate",
            post(clones::validate_import),
        )
        .merge(refresh_routes("/api/echo/v1"))
        .route(
            "/api/echo/v1/hosts/{host_id}/databases/{db_id}",
            patch(lifecycle::update),
        )
        .route(
            "/api/echo/v1/hosts/{host_id}/databases/{db_id}/_keepalive",
            post(lifecycle::keep_alive),
        )
        .route(
            "/api/echo/v1/snapshot_schedules",
            get(schedules::list_schedules).post(schedules::create_schedule),
        )
        .route(
            "/api/echo/v1/snapshot_schedules/{id}",
            get(schedules::get_schedule).delete(schedules::delete_schedule),
        )
        // Legacy aliases.
        .route("/api/ocie/v1/clone", clone)
        .merge(refresh_routes("/api/ocie/v1"))
        .route("/api/ocie/v1/db_snapshots", list_or_snapshot)
        .route(
            "/api/ocie/v1/db_snapshots/{id}",
            delete(snapshots::delete_snapshot_task),
        )
        .route("/api/ocie/v1/db_snapshots/{id}/clone", import)
}

/// Refresh under a prefix: `_refresh` and its older name `_replace`, each with its dry run.
fn refresh_routes(prefix: &str) -> Router<AppState> {
    let mut routes = Router::new();
    for verb in ["_refresh", "_replace"] {
        let path = format!("{prefix}/hosts/{{host_id}}/databases/{verb}");
        routes = routes.route(&path, post(clones::refresh)).route(
            &format!("{path}/__validate"),
            post(clones::validate_refresh),
        );
    }
    routes
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
    let code = first.issue_type.as_str();
    match first.issue_type.status() {
        404 => ApiError::not_found(code, message),
        409 => ApiError::conflict(code, message),
        _ => ApiError::bad_request(code, message),
    }
}

/// Refuses a request that has issues; lets one that has none through.
pub(super) fn check(issues: &[Issue]) -> Result<(), ApiError> {
    if issues.is_empty() {
        Ok(())
    } else {
        Err(refuse(issues))
    }
}

/// A dry run's answer: 200 with the issues the request would hit. A request that is malformed
/// in itself (an issue that would be a 400: a bad name prefix, an empty list, an unknown enum
/// value) is refused with that 400, as the real request would be; the verdict is about what
/// the current state allows.
fn dry_run(issues: &[Issue]) -> Result<Json<Value>, ApiError> {
    if let Some(malformed) = issues.iter().find(|i| i.issue_type.is_malformed()) {
        return Err(refuse(std::slice::from_ref(malformed)));
    }
    Ok(Json(json!({"valid": issues.is_empty(), "issues": issues})))
}
