//! The array from the operator's side: `GET /api/v1/sdp/reconcile` reports how the ledger and
//! the array differ, `POST` the same path applies the report (see `workflows::reconcile`).
//! Both are an administrator's: the report names every object on the array.

use axum::{Json, Router, extract::State, routing::get};

use super::{AppState, error::ApiError};
use crate::{
    sdp::SdpClient,
    workflows::{
        reconcile::{self, ReconcileError, Report},
        validate::IssueCode,
    },
};

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/sdp/reconcile",
        get(reconcile_report).post(reconcile_apply),
    )
}

fn array(state: &AppState) -> Result<&SdpClient, ApiError> {
    state.sdp.as_ref().ok_or_else(|| {
        ApiError::conflict(
            IssueCode::SdpNotConfigured.as_str(),
            "Flex has no SDP configured (--sdp-url)",
        )
    })
}

impl From<ReconcileError> for ApiError {
    fn from(err: ReconcileError) -> ApiError {
        match err {
            ReconcileError::Store(err) => err.into(),
            ReconcileError::Sdp(err) => ApiError::SdpUnavailable(err.to_string()),
        }
    }
}

async fn reconcile_report(State(state): State<AppState>) -> Result<Json<Report>, ApiError> {
    let sdp = array(&state)?;
    Ok(Json(
        reconcile::survey(&state.store, sdp, &state.names).await?,
    ))
}

async fn reconcile_apply(State(state): State<AppState>) -> Result<Json<Report>, ApiError> {
    let sdp = array(&state)?;
    Ok(Json(
        reconcile::apply(&state.store, sdp, &state.names).await?,
    ))
}
