//! Extractors whose rejections are our JSON errors.
//!
//! `JsonBody` reads JSON whatever the `Content-Type` says: the published examples use
//! `curl -d '{…}'`, which sends `application/x-www-form-urlencoded`, and those must work. Its
//! errors name the offending field (`destinations[0].host_id: invalid type …`). `FormBody`
//! likewise reads a form whatever the `Content-Type` (PowerShell's `Invoke-RestMethod` sends a
//! string body with none), and JSON when the client says it is JSON.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

use super::{BODY_LIMIT_BYTES, error::ApiError};

/// A JSON request body, deserialized with field-naming errors.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        parse_json(&body_bytes(req, state).await?).map(JsonBody)
    }
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
                limit: BODY_LIMIT_BYTES,
            },
            _ => ApiError::bad_request("INVALID_BODY", rejection.body_text()),
        })
}

/// A form body (`username=…&password=…`), as login takes; JSON when the `Content-Type` says so.
pub struct FormBody<T>(pub T);

impl<S, T> FromRequest<S> for FormBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        let bytes = body_bytes(req, state).await?;
        if json {
            return parse_json(&bytes).map(FormBody);
        }
        serde_urlencoded::from_bytes(&bytes)
            .map(FormBody)
            .map_err(|err| {
                ApiError::bad_request("INVALID_FIELD", format!("the form is not valid: {err}"))
            })
    }
}

/// A JSON body that may be left out: no body (or `null`) is `None`.
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        parse_json::<Option<T>>(&bytes).map(OptionalJson)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "INVALID_JSON",
            "the request body is empty; expected a JSON object",
        ));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let detail = inner.to_string().replace('`', "'");
        if inner.is_data() {
            let message = if path == "." {
                detail
            } else {
                format!("field '{path}': {detail}")
            };
            ApiError::bad_request("INVALID_FIELD", message)
        } else {
            ApiError::bad_request(
                "INVALID_JSON",
                format!("the request body is not valid JSON: {detail}"),
            )
        }
    })
}

/// Path parameters; a malformed one is a 400 in our error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathParams<T>(pub T);

/// The client's IP address, or empty where the server was not given it (an app driven
/// without a listener).
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<ClientAddr, Self::Rejection> {
        Ok(ClientAddr(client_addr(&parts.extensions)))
    }
}

pub fn client_addr(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string())
        .unwrap_or_default()
}

/// A list's `limit` query parameter: `default` when absent, else 1 to `max`.
pub fn limit_param(given: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let limit = given.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(
            "INVALID_QUERY",
            format!("query 'limit': {limit} must be from 1 to {max}"),
        ))
    }
}

/// Query parameters; unknown ones are ignored, ill-typed ones are a 400 in our error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct QueryParams<T>(pub T);

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Destination {
        host_id: String,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        destinations: Vec<Destination>,
    }

    fn message(err: &ApiError) -> String {
        err.to_string()
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse_json::<Body>(br#"{"destinations":[{"host_id":5}]}"#).unwrap_err();
        assert_eq!(err.code(), "INVALID_FIELD");
        assert!(message(&err).starts_with("field 'destinations[0].host_id'"));

        let err = parse_json::<Body>(br#"{"other":1}"#).unwrap_err();
        assert!(message(&err).contains("missing field 'destinations'"));
    }

    #[test]
    fn syntax_errors_and_empty_bodies_are_invalid_json() {
        assert_eq!(parse_json::<Body>(b"{").unwrap_err().code(), "INVALID_JSON");
        assert_eq!(
            parse_json::<Body>(b"  ").unwrap_err().code(),
            "INVALID_JSON"
        );
    }
}
