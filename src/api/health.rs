//! Probes for orchestrators: `/healthz` says the process serves, `/readyz` that it can do its
//! work (the database answers and carries every migration this binary expects).

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use super::{AppState, error::ApiError};
use crate::metrics::{self, Levels};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let (ledger_objects, tasks_running) = state.store.metric_levels().await?;
    let levels = Levels {
        agents_connected: i64::try_from(state.agents.connected_here()).unwrap_or(i64::MAX),
        tasks_running,
        ledger_objects,
    };
    Ok((
        [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(&levels),
    )
        .into_response())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if let Some(gate) = &state.config.ready_gate
        && !gate.load(std::sync::atomic::Ordering::SeqCst)
    {
        return not_ready("still starting up");
    }
    match state.store.is_ready().await {
        Ok(true) => {
            Json(json!({"status": "ready", "database": state.store.backend_name()})).into_response()
        }
        Ok(false) => not_ready("database migrations are not applied"),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            not_ready("the database is unreachable")
        }
    }
}

fn not_ready(reason: &str) -> Response {
    // Shaped like every other error; the middleware adds the ref id.
    let mut response = ApiError::Unavailable.into_response();
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response.extensions_mut().insert(super::error::ErrorBody {
        code: "NOT_READY",
        message: reason.to_owned(),
    });
    response
}
