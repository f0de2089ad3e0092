//! The one error type of the HTTP API and the JSON body every error gets.
//!
//! Handlers return [`ApiError`]; its response carries an [`ErrorBody`] extension and no body.
//! The request middleware (`api::context`) renders the body, because only it knows the
//! request's `hs-ref-id`. It also turns errors produced outside our handlers (axum's 405, a
//! layer's 413) into the same shape, so every error a client sees is
//! `{"code", "message", "ref_id"}`.

use axum::{
    extract::rejection::{FormRejection, PathRejection, QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    logging::escaped,
    store::{Role, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or a field is missing or invalid.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no credentials, or credentials that match nothing.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: valid credentials that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 403: the token's role may not do this.
    #[error("this needs the '{}' role; this token has '{}'", needed.as_str(), held.as_str())]
    ForbiddenForRole { needed: Role, held: Role },
    /// 404: the named object does not exist.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409: the request conflicts with the current state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 413: the body is larger than the server accepts.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 422: well formed, but it cannot be honoured as asked (an idempotency key reused for a
    /// different request).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 415: a body in a format this route does not read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: too many failed logins for this user name or from this address.
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    TooManyLogins { retry_after_secs: u64 },
    /// 502: the SDP could not be read (the detail says how it failed).
    #[error("{0}")]
    SdpUnavailable(String),
    /// 503: the database cannot be reached; retrying later may succeed.
    #[error("the database is unavailable; retry later")]
    Unavailable,
    /// 500: a fault of ours. The detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::ForbiddenForRole { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyLogins { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::SdpUnavailable(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::Unauthorized(_) => "UNAUTHORIZED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::ForbiddenForRole { .. } => "FORBIDDEN_FOR_ROLE",
            ApiError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            ApiError::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::TooManyLogins { .. } => "TOO_MANY_LOGIN_FAILURES",
            ApiError::SdpUnavailable(_) => "SDP_UNAVAILABLE",
            ApiError::Unavailable => "SERVICE_UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL_ERROR",
        }
    }
}

/// The code and message of an error response, waiting for its `ref_id`.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
}

impl ErrorBody {
    /// The body for an error response that did not come from an [`ApiError`].
    pub fn for_status(status: StatusCode) -> ErrorBody {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("ROUTE_NOT_FOUND", "no such route"),
            StatusCode::METHOD_NOT_ALLOWED => (
                "METHOD_NOT_ALLOWED",
                "this method is not allowed on this path",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "PAYLOAD_TOO_LARGE",
                "request body is larger than 1048576 bytes",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("UNSUPPORTED_MEDIA_TYPE", "unsupported content type")
            }
            s if s.is_server_error() => ("INTERNAL_ERROR", "internal error"),
            _ => ("BAD_REQUEST", "the request could not be processed"),
        };
        ErrorBody {
            code,
            message: message.to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => {
                tracing::error!(detail = %escaped(detail), "internal error");
            }
            ApiError::Unavailable => tracing::warn!("database unavailable"),
            // The message may quote the request (a path parameter, a field): escaped.
            other => {
                tracing::debug!(code = other.code(), message = %escaped(other), "request refused");
            }
        }
        let mut response = self.status().into_response();
        // Pipelines poll; tell them when asking again makes sense.
        let retry_after = match self {
            ApiError::Unavailable => Some(1),
            ApiError::TooManyLogins { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response.extensions_mut().insert(ErrorBody {
            code: self.code(),
            message: self.to_string(),
        });
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => ApiError::Unavailable,
            StoreError::Conflict(message) => ApiError::conflict("CONFLICT", message),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("INVALID_PATH", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request("INVALID_QUERY", rejection.body_text())
    }
}

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(
                "expected a form body (Content-Type: application/x-www-form-urlencoded)".into(),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
                limit: super::BODY_LIMIT_BYTES,
            },
            _ => ApiError::bad_request("INVALID_FORM", rejection.body_text()),
        }
    }
}
