//! The audit trail's two ends in the API: the layer that records every mutating request and
//! every login (see `store::audit` for how a change and its row commit together), and
//! `GET /api/v1/audit` (admin) that reads it.

use axum::{
    Json, Router,
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::Response,
    routing::get,
};
use serde::{Deserialize, Serialize};

use super::{
    AppState,
    context::RefId,
    error::ApiError,
    extract::{QueryParams, client_addr, limit_param},
};
use crate::{
    clock::now_ms,
    store::{AuditEntry, AuditQuery, AuditScope},
};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;
/// The largest integer every JSON client reads exactly.
const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;
/// The longest path a row keeps (ids in paths are short; anything longer is noise).
const MAX_PATH_LEN: usize = 2048;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/audit", get(list_audit))
}

/// Whether a request is recorded: everything but reads.
fn is_audited(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Records the request once answered, or with the change it made (inside the scope).
pub async fn record_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !is_audited(req.method()) {
        return next.run(req).await;
    }
    let client_addr = client_addr(req.extensions());
    let ref_id = req
        .extensions()
        .get::<RefId>()
        .map(|RefId(id)| id.clone())
        .unwrap_or_default();
    let scope = AuditScope::new(AuditEntry {
        ts_ms: now_ms(),
        client_addr,
        method: req.method().to_string(),
        path: req.uri().path().chars().take(MAX_PATH_LEN).collect(),
        ref_id,
        ..AuditEntry::default()
    });
    let response = scope.clone().run(next.run(req)).await;
    // Outside the scope: this write must not take the row as its own.
    if let Err(err) = state
        .store
        .finish_audit(&scope, response.status().as_u16())
        .await
    {
        tracing::warn!(error = %err, "recording the audit row failed");
    }
    response
}

#[derive(Deserialize)]
struct AuditParams {
    /// Unix ms, inclusive.
    since: Option<i64>,
    /// Unix ms, exclusive.
    until: Option<i64>,
    ref_id: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct AuditView {
    id: i64,
    /// Unix ms.
    ts: i64,
    token_id: String,
    token_name: String,
    role: String,
    user_name: String,
    client_addr: String,
    method: String,
    path: String,
    /// Null when the change committed but the answer was never recorded.
    status: Option<u16>,
    ref_id: String,
    task_id: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(entry: AuditEntry) -> AuditView {
        AuditView {
            id: entry.seq,
            ts: entry.ts_ms,
            token_id: entry.token_id,
            token_name: entry.token_name,
            role: entry.role,
            user_name: entry.user_name,
            client_addr: entry.client_addr,
            method: entry.method,
            path: entry.path,
            status: entry.status,
            ref_id: entry.ref_id,
            task_id: entry.task_id,
        }
    }
}

async fn list_audit(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<AuditParams>,
) -> Result<Json<Vec<AuditView>>, ApiError> {
    let limit = limit_param(params.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    for (name, value) in [("since", params.since), ("until", params.until)] {
        if value.is_some_and(|ms| !(0..=MAX_SAFE_INTEGER).contains(&ms)) {
            return Err(ApiError::bad_request(
                "INVALID_QUERY",
                format!("query '{name}' must be unix milliseconds, 0 to {MAX_SAFE_INTEGER}"),
            ));
        }
    }
    let query = AuditQuery {
        since_ms: params.since,
        until_ms: params.until,
        ref_id: params.ref_id,
        limit: u32::try_from(limit).expect("checked: 1 to 1000"),
    };
    let entries = state.store.audit_entries(&query).await?;
    Ok(Json(entries.into_iter().map(AuditView::from).collect()))
}
