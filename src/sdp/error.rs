//! What went wrong on an SDP call, classified by what the caller must do next: retry, give up,
//! or look the object up first because the write may have happened.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum SdpError {
    /// Busy, overloaded, briefly unreachable: the same call may succeed later.
    #[error("SDP temporarily unavailable on {call}: {message}")]
    Transient {
        call: String,
        status: Option<u16>,
        code: Option<String>,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The array refused the request; repeating it will not help. `message` is its `error_msg`.
    #[error("SDP refused {call}: {message} (HTTP {status})")]
    Permanent {
        call: String,
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// The call may have taken effect although no success came back (502, or a write that
    /// timed out): look the object up before creating it again.
    #[error("SDP outcome unknown on {call}: {message}")]
    Ambiguous { call: String, message: String },
    /// A create refused because the name is taken: by an earlier attempt whose answer was
    /// lost, or by a task creating the same shared object at the same moment. Look it up.
    #[error("SDP refused {call}: {message} (the name is taken)")]
    NameTaken { call: String, message: String },
    /// The client cannot be built from its configuration.
    #[error("SDP client configuration: {0}")]
    Config(String),
}

/// Error codes the array uses on a 400 that means "busy, try again".
const RETRYABLE_CODES: [&str; 4] = [
    "MC_ERR_BUSY",
    "MC_ERR_BUSY_SPECIFIC",
    "MC_ERR_INPROGRESS",
    "MC_ERR_START_TIMEOUT",
];

impl SdpError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SdpError::Transient { .. } | SdpError::Ambiguous { .. } | SdpError::NameTaken { .. }
        )
    }

    pub fn may_have_happened(&self) -> bool {
        matches!(
            self,
            SdpError::Ambiguous { .. } | SdpError::NameTaken { .. }
        )
    }

    /// The create found its name taken: what to create is to be looked up instead.
    pub fn is_name_taken(&self) -> bool {
        matches!(self, SdpError::NameTaken { .. })
    }

    /// How `/metrics` labels a call that ended in this error.
    pub fn outcome(&self) -> &'static str {
        match self {
            _ if self.is_not_found() => "not_found",
            SdpError::Transient { .. } => "transient",
            SdpError::Ambiguous { .. } => "ambiguous",
            SdpError::NameTaken { .. } => "name_taken",
            SdpError::Permanent { .. } => "refused",
            SdpError::Config(_) => "config",
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, SdpError::Permanent { status: 404, .. })
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            SdpError::Transient { status, .. } => *status,
            SdpError::Permanent { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            SdpError::Transient { code, .. } | SdpError::Permanent { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// How long the array asked us to wait (429 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SdpError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Classifies an HTTP error answer of the array.
    pub fn from_response(
        call: String,
        method: &Method,
        status: u16,
        retry_after: Option<Duration>,
        body: &str,
    ) -> SdpError {
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let code = field("error_code").or_else(|| field("code"));
        let message = field("error_msg")
            .or_else(|| field("message"))
            .unwrap_or_else(|| format!("HTTP {status}"));
        let busy_code = code
            .as_deref()
            .is_some_and(|c| RETRYABLE_CODES.contains(&c));
        match status {
            // Only a write can leave something behind; a failed read is simply retried.
            502 if *method != Method::GET => SdpError::Ambiguous { call, message },
            // The name is taken: by an earlier attempt whose answer was lost, or by a task
            // creating the same shared object (a destination's SDP host) at the same moment.
            // Either way, look it up instead of creating it.
            409 if *method == Method::POST && code.as_deref() == Some("MC_ERR_OBJECT_EXISTS") => {
                SdpError::NameTaken { call, message }
            }
            429 | 500..=599 => SdpError::Transient {
                call,
                status: Some(status),
                code,
                message,
                retry_after,
            },
            400 if busy_code => SdpError::Transient {
                call,
                status: Some(status),
                code,
                message,
                retry_after,
            },
            _ => SdpError::Permanent {
                call,
                status,
                code,
                message,
            },
        }
    }

    /// Classifies a failure to get any answer at all.
    pub fn from_transport(call: String, method: &Method, err: &reqwest::Error) -> SdpError {
        let message = err.to_string();
        // A request that was never sent cannot have done anything; one that timed out after
        // being sent may have.
        if err.is_timeout() && *method != Method::GET {
            return SdpError::Ambiguous { call, message };
        }
        SdpError::Transient {
            call,
            status: None,
            code: None,
            message,
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(method: &Method, status: u16, body: &str) -> SdpError {
        SdpError::from_response("call".into(), method, status, None, body)
    }

    #[test]
    fn answers_are_classified_by_what_to_do_next() {
        assert!(matches!(
            classify(&Method::POST, 503, ""),
            SdpError::Transient { .. }
        ));
        assert!(classify(&Method::GET, 429, "").is_retryable());
        assert!(classify(&Method::POST, 502, "").may_have_happened());
        assert!(!classify(&Method::GET, 502, "").may_have_happened());
        assert!(classify(&Method::GET, 502, "").is_retryable());
        let busy = classify(
            &Method::POST,
            400,
            r#"{"error_code":"MC_ERR_BUSY","error_msg":"system busy"}"#,
        );
        assert!(busy.is_retryable());
        let refused = classify(
            &Method::POST,
            400,
            r#"{"error_code":"MC_ERR_BAD_PARAMS","error_msg":"size must be positive"}"#,
        );
        assert!(!refused.is_retryable());
        assert!(refused.to_string().contains("size must be positive"));
        assert_eq!(refused.code(), Some("MC_ERR_BAD_PARAMS"));
        assert!(classify(&Method::GET, 404, "").is_not_found());
        assert!(!classify(&Method::DELETE, 409, "").is_retryable());
        assert!(
            classify(
                &Method::POST,
                409,
                r#"{"error_code":"MC_ERR_OBJECT_EXISTS"}"#
            )
            .is_name_taken()
        );
    }
}
