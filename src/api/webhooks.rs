//! Webhook endpoints: register (201, with the signing secret, shown this once), list, show,
//! delete (204), and the attempts to deliver to one. Delivery itself is `webhooks`'s.

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde::{Deserialize, Serialize};

use super::{
    AppState,
    error::ApiError,
    extract::{JsonBody, PathParams, QueryParams, limit_param},
};
use crate::{
    auth::random_alphanumeric,
    clock::now_ts,
    model::EventType,
    store::{DeliveryRecord, WebhookRecord},
    webhooks::{policy, signing},
};

const MAX_DESCRIPTION: usize = 500;
const DEFAULT_DELIVERIES: i64 = 100;
const MAX_DELIVERIES: i64 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/api/v1/webhooks/{id}",
            get(get_webhook).delete(delete_webhook),
        )
        .route("/api/v1/webhooks/{id}/deliveries", get(list_deliveries))
}

#[derive(Deserialize)]
struct WebhookBody {
    url: String,
    event_types: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

/// An endpoint as the API shows it (never with its secret, but when it is created).
#[derive(Serialize)]
struct WebhookView {
    id: String,
    url: String,
    event_types: Vec<EventType>,
    description: String,
    created_ts: i64,
    /// Events up to this id have been delivered (or did not match).
    delivered_event_id: i64,
    /// Failed attempts at the next event.
    failed_attempts: i64,
    /// When the next event is tried again after a failure (unix ms), if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookView {
    fn new(webhook: WebhookRecord, with_secret: bool) -> WebhookView {
        WebhookView {
            secret: with_secret.then_some(webhook.secret),
            next_attempt_ms: (webhook.attempts > 0).then_some(webhook.next_attempt_ms),
            id: webhook.id,
            url: webhook.url,
            event_types: webhook.event_types,
            description: webhook.description,
            created_ts: webhook.created_ts,
            delivered_event_id: webhook.delivered_seq,
            failed_attempts: webhook.attempts,
        }
    }
}

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

async fn create_webhook(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<WebhookBody>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    let url = policy::check_url(&body.url)
        .map_err(|why| invalid("INVALID_WEBHOOK_URL", format!("field 'url': {why}")))?;
    if body.event_types.is_empty() {
        return Err(invalid(
            "INVALID_FIELD",
            format!(
                "field 'event_types': name at least one of {}",
                EventType::NAMES.join(", ")
            ),
        ));
    }
    let mut event_types = Vec::new();
    for name in &body.event_types {
        let event_type: EventType = name
            .parse()
            .map_err(|err| invalid("INVALID_FIELD", format!("field 'event_types': {err}")))?;
        if !event_types.contains(&event_type) {
            event_types.push(event_type);
        }
    }
    let description = body.description.unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(invalid(
            "INVALID_FIELD",
            format!("field 'description': at most {MAX_DESCRIPTION} characters"),
        ));
    }
    let secret = match body.secret {
        Some(secret) => {
            signing::secret_key(&secret)
                .map_err(|why| invalid("INVALID_SECRET", format!("field 'secret': {why}")))?;
            secret
        }
        None => signing::generate_secret(),
    };
    let webhook = WebhookRecord {
        id: format!("wh_{}", random_alphanumeric(16).to_lowercase()),
        url: url.to_string(),
        event_types,
        description,
        secret,
        created_ts: now_ts(),
        delivered_seq: 0,
        attempts: 0,
        next_attempt_ms: 0,
    };
    let stored = state.store.insert_webhook(&webhook).await?;
    tracing::info!(webhook_id = %stored.id, url = %stored.url, "webhook registered");
    Ok((StatusCode::CREATED, Json(WebhookView::new(stored, true))))
}

async fn list_webhooks(State(state): State<AppState>) -> Result<Json<Vec<WebhookView>>, ApiError> {
    let webhooks = state.store.list_webhooks().await?;
    Ok(Json(
        webhooks
            .into_iter()
            .map(|w| WebhookView::new(w, false))
            .collect(),
    ))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "WEBHOOK_NOT_FOUND",
        format!("webhook '{id}' does not exist"),
    )
}

async fn get_webhook(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let webhook = state
        .store
        .get_webhook(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(WebhookView::new(webhook, false)))
}

async fn delete_webhook(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_webhook(&id).await? {
        tracing::info!(webhook_id = %id, "webhook deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    limit: Option<i64>,
}

/// One attempt as the API shows it.
#[derive(Serialize)]
struct DeliveryView {
    event_id: i64,
    attempt: i64,
    /// When it was made (unix ms).
    ts: i64,
    /// The endpoint's HTTP status; null when it did not answer.
    status: Option<i64>,
    succeeded: bool,
    error: String,
    duration_ms: i64,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> DeliveryView {
        DeliveryView {
            succeeded: d.succeeded(),
            event_id: d.event_seq,
            attempt: d.attempt,
            ts: d.ts_ms,
            status: d.status,
            error: d.error,
            duration_ms: d.duration_ms,
        }
    }
}

async fn list_deliveries(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<DeliveriesQuery>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let limit = limit_param(query.limit, DEFAULT_DELIVERIES, MAX_DELIVERIES)?;
    if state.store.get_webhook(&id).await?.is_none() {
        return Err(not_found(&id));
    }
    let deliveries = state.store.webhook_deliveries(&id, limit).await?;
    Ok(Json(
        deliveries.into_iter().map(DeliveryView::from).collect(),
    ))
}
