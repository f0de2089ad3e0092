//! The agent channel's door: `GET /api/v1/agent/ws`, a WebSocket upgrade authenticated by the
//! host's own token (and no other). The conversation itself is `crate::agents`.

use axum::{
    Router,
    extract::{State, WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection},
    http::{HeaderMap, header},
    response::Response,
    routing::get,
};

use super::{AppState, error::ApiError};
use crate::{auth, store::TokenKind};

/// Largest message an agent may send (an inventory of many databases fits easily).
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Small buffers keep an idle connection cheap: thousands of agents stay connected at once.
const READ_BUFFER_BYTES: usize = 1024;
const WRITE_BUFFER_BYTES: usize = 4 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/agent/ws", get(agent_socket))
}

async fn agent_socket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the agent channel needs 'Authorization: Bearer <host token>'".into(),
            )
        })?;
    let record = auth::authenticate(&state.store, token)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("invalid or revoked host token".into()))?;
    let (TokenKind::Host, Some(host_id)) = (record.kind, record.host_id.clone()) else {
        return Err(ApiError::Forbidden(
            "the agent channel takes a host token (returned by host registration), not an API token".into(),
        ));
    };
    let upgrade = upgrade
        .map_err(|rejection| ApiError::bad_request("WEBSOCKET_EXPECTED", rejection.body_text()))?;
    let hub = state.agents.clone();
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| crate::agents::serve_socket(hub, host_id, record.id, socket)))
}
