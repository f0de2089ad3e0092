//! Per-request context: the `hs-ref-id` a client uses to follow an operation, the request id,
//! the log span that carries both, the JSON body of every error response, and the request's
//! duration by route template for `/metrics`.

use std::{
    sync::{Arc, OnceLock},
    time::Instant,
};

use axum::{
    Json,
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument;

use super::error::{ApiError, ErrorBody};
use crate::auth::random_alphanumeric;

pub const REF_ID_HEADER: &str = "hs-ref-id";
const GENERATED_REF_ID_LEN: usize = 10;
const MAX_REF_ID_LEN: usize = 32;

/// The `hs-ref-id` of the request being served; tasks created by it carry it as `ref_id`.
#[derive(Clone, Debug)]
pub struct RefId(pub String);

/// Reads the client's ref id: `[A-Za-z0-9]{1,32}` (the README's decisions). Absent means
/// Flex picks one; anything else is refused, since the id ends up in logs and in other systems.
fn ref_id_from(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(REF_ID_HEADER) else {
        return Ok(random_alphanumeric(GENERATED_REF_ID_LEN));
    };
    let valid = value
        .to_str()
        .ok()
        .filter(|v| (1..=MAX_REF_ID_LEN).contains(&v.len()))
        .filter(|v| v.bytes().all(|b| b.is_ascii_alphanumeric()));
    match valid {
        Some(v) => Ok(v.to_owned()),
        None => Err(ApiError::bad_request(
            "INVALID_HEADER",
            "header 'hs-ref-id' must be 1 to 32 letters or digits",
        )),
    }
}

/// Where the router leaves the matched route's template, for the context (which runs before
/// routing) to read once the request is answered.
#[derive(Clone, Default)]
pub struct RouteSlot(Arc<OnceLock<String>>);

/// Runs after routing (a route layer): tells the context which route template matched.
pub async fn note_route(req: Request, next: Next) -> Response {
    if let (Some(slot), Some(route)) = (
        req.extensions().get::<RouteSlot>(),
        req.extensions().get::<MatchedPath>(),
    ) {
        let _ = slot.0.set(route.as_str().to_owned());
    }
    next.run(req).await
}

pub async fn request_context(
    State(metrics): State<Arc<crate::metrics::Metrics>>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = RouteSlot::default();
    req.extensions_mut().insert(route.clone());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (ref_id, refused) = match ref_id_from(req.headers()) {
        Ok(ref_id) => (ref_id, None),
        Err(err) => (random_alphanumeric(GENERATED_REF_ID_LEN), Some(err)),
    };
    let span = tracing::info_span!("request", %ref_id, %request_id, %method, %path);

    let response = if let Some(err) = refused {
        span.in_scope(|| err.into_response())
    } else {
        req.extensions_mut().insert(RefId(ref_id.clone()));
        next.run(req).instrument(span.clone()).await
    };
    let response = render_error_body(response, &ref_id);
    let route = route.0.get().map_or("unmatched", String::as_str);
    metrics.http_request(
        method.as_str(),
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "served"
        );
    });
    with_ref_id_header(response, &ref_id)
}

/// Gives an error response its JSON body: from the [`ErrorBody`] an [`ApiError`] left, or, for
/// errors raised outside our handlers, one derived from the status.
fn render_error_body(mut response: Response, ref_id: &str) -> Response {
    let status = response.status();
    let body = match response.extensions_mut().remove::<ErrorBody>() {
        Some(body) => body,
        None if status.is_client_error() || status.is_server_error() => {
            let is_json = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if is_json {
                return response;
            }
            ErrorBody::for_status(status)
        }
        None => return response,
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let payload = serde_json::json!({
        "code": body.code,
        "message": body.message,
        "ref_id": ref_id,
    });
    let mut rendered = (status_or_500(parts.status), Json(payload)).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body is never read, so the connection cannot carry another request;
        // say so, or a client's next request on it fails mid-flight.
        rendered
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    rendered
}

fn status_or_500(status: StatusCode) -> StatusCode {
    if status.is_client_error() || status.is_server_error() {
        status
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

fn with_ref_id_header(mut response: Response, ref_id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(ref_id) {
        response.headers_mut().insert(REF_ID_HEADER, value);
    }
    response
}
