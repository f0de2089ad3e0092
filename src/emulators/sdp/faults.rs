//! Fault injection: the rules that make chosen calls fail, hang or answer late, the call log
//! the fault matrix reads, and the middleware that applies both to every API call.

use std::{
    collections::{BTreeMap, VecDeque},
    time::Duration,
};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method, header},
    middleware::Next,
    response::Response,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{SdpFault, Shared, lock, model, sdp_error};

/// What a matching call gets instead of (or on top of) its normal answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Refuse the call with this status and error code; nothing happens on the array.
    Error,
    /// Carry the call out, then answer `status` (502 by default): the write happened.
    AfterWrite,
    /// Carry the call out, then hold the answer for `delay_ms` (a client timeout).
    Hang,
    /// Wait `delay_ms`, then serve the call normally.
    Delay,
}

/// A fault injection rule. `method`, `collection` and `ref_id` (the call's `hs-ref-id`) narrow
/// what it matches (absent: any); `skip` lets that many matching calls through first; `times`
/// is how many matching calls it then affects (absent: all); `rate` the probability that a
/// matching call is affected.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub collection: Option<String>,
    pub action: FaultAction,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_msg: Option<String>,
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub times: Option<u64>,
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub ref_id: Option<String>,
    #[serde(default)]
    pub skip: Option<u64>,
}

impl FaultRule {
    /// A rule for every call, once; narrow it with struct-update syntax.
    pub fn new(action: FaultAction) -> FaultRule {
        FaultRule {
            id: 0,
            method: None,
            collection: None,
            action,
            status: None,
            error_code: None,
            error_msg: None,
            retry_after_secs: None,
            delay_ms: None,
            times: Some(1),
            rate: None,
            ref_id: None,
            skip: None,
        }
    }

    fn matches(&self, call: &CallRecord) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(&call.method))
            && self
                .collection
                .as_deref()
                .is_none_or(|c| c == call.collection)
            && self
                .ref_id
                .as_deref()
                .is_none_or(|r| Some(r) == call.ref_id.as_deref())
            && self.times != Some(0)
    }
}

/// One API call, as the call log keeps it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallRecord {
    pub method: String,
    pub collection: String,
    /// `METHOD /collection[/{id}]`, as `/emulator/calls` counts it.
    pub key: String,
    pub ref_id: Option<String>,
    /// When the call arrived, in milliseconds since the epoch.
    pub at_ms: i64,
}

/// The call log keeps the most recent calls only, so a long-running emulator stays small.
pub(super) const CALL_LOG_CAPACITY: usize = 4096;

#[derive(Default)]
pub(super) struct Faults {
    pub(super) next_id: u64,
    pub(super) rules: Vec<FaultRule>,
    pub(super) latency_ms: u64,
    pub(super) calls: BTreeMap<String, u64>,
    pub(super) log: VecDeque<CallRecord>,
}

/// `/api/v2/volumes/12` → (`volumes`, `DELETE /volumes/{id}`).
fn call_key(method: &Method, path: &str) -> (String, String) {
    let rest = path.trim_start_matches("/api/v2/");
    let mut parts = rest.splitn(2, '/');
    let collection = parts.next().unwrap_or_default().to_owned();
    let key = match parts.next() {
        Some(tail) if collection != "system" && !tail.is_empty() => {
            format!("{method} /{collection}/{{id}}")
        }
        _ => format!("{method} /{rest}"),
    };
    (collection, key)
}

pub(super) async fn inject_faults(
    State(inner): State<Shared>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let (collection, key) = call_key(&method, req.uri().path());
    let call = CallRecord {
        method: method.to_string(),
        collection,
        key,
        ref_id: req
            .headers()
            .get("hs-ref-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        at_ms: i64::try_from(model::now_ms()).unwrap_or(i64::MAX),
    };
    let (latency, rule) = {
        let mut faults = lock(&inner.faults);
        *faults.calls.entry(call.key.clone()).or_default() += 1;
        if faults.log.len() == CALL_LOG_CAPACITY {
            faults.log.pop_front();
        }
        faults.log.push_back(call.clone());
        let latency = faults.latency_ms;
        let rule = faults
            .rules
            .iter_mut()
            .find(|rule| rule.matches(&call))
            .and_then(|rule| {
                if let Some(skip) = rule.skip.as_mut().filter(|skip| **skip > 0) {
                    *skip -= 1;
                    return None;
                }
                if rule.rate.is_some_and(|rate| rand::random::<f64>() >= rate) {
                    return None;
                }
                if let Some(times) = rule.times.as_mut() {
                    *times -= 1;
                }
                Some(rule.clone())
            });
        (latency, rule)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let Some(rule) = rule else {
        return next.run(req).await;
    };
    let delay = Duration::from_millis(rule.delay_ms.unwrap_or(0));
    match rule.action {
        FaultAction::Error => {
            let status = rule.status.unwrap_or(503);
            let fault = SdpFault {
                status,
                code: "MC_ERR_INJECTED",
                message: rule
                    .error_msg
                    .clone()
                    .unwrap_or_else(|| "injected fault".to_owned()),
            };
            let mut response = sdp_error(&fault);
            if let Some(code) = &rule.error_code {
                *response.body_mut() = axum::body::Body::from(
                    json!({"error_code": code, "error_msg": fault.message}).to_string(),
                );
            }
            if let Some(secs) = rule.retry_after_secs {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        FaultAction::AfterWrite => {
            let _ = next.run(req).await;
            let status = rule.status.unwrap_or(502);
            sdp_error(&SdpFault::new(
                status,
                "MC_ERR_INJECTED",
                "bad gateway (the operation may have completed)",
            ))
        }
        FaultAction::Hang => {
            let response = next.run(req).await;
            tokio::time::sleep(delay).await;
            response
        }
        FaultAction::Delay => {
            tokio::time::sleep(delay).await;
            next.run(req).await
        }
    }
}
