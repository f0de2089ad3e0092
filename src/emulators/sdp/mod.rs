//! An emulated Silk Data Platform: the REST subset Flex uses (`reference/sdp-api.md`), with
//! the array's rules (see [`model`]), optional persistence, and fault injection so tests can
//! put Flex through what a real array does on a bad day.
//!
//! Admin endpoints live off the `/api/v2` tree, under `/emulator/` (same Basic credentials):
//! - `POST /emulator/faults` adds a [`FaultRule`]; `DELETE /emulator/faults` clears them;
//!   `GET /emulator/faults` lists them with the calls each has left.
//! - `PUT /emulator/latency` `{"ms": N}` adds latency to every API call.
//! - `GET /emulator/calls` counts API calls by `METHOD /collection[/{id}]`;
//!   `DELETE /emulator/calls` resets the counters and the call log.
//! - `GET /emulator/visible_serials?iqn=…` lists the serials mapped to that initiator (what
//!   a host's rescan would find).

pub mod model;

use std::{
    collections::{BTreeMap, VecDeque},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path as UrlPath, Query, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub use model::{ArrayState, SdpFault};

/// How the emulator is set up.
#[derive(Clone, Debug)]
pub struct SdpEmulatorConfig {
    pub user: String,
    pub password: String,
    /// Keep the array's state in this file (written atomically after every change).
    pub state_file: Option<PathBuf>,
    /// How long a new thin clone takes to appear in `/volumes`.
    pub clone_delay: Duration,
    pub system_id: String,
}

impl Default for SdpEmulatorConfig {
    fn default() -> Self {
        SdpEmulatorConfig {
            user: "admin".into(),
            password: "admin".into(),
            state_file: None,
            clone_delay: Duration::from_millis(0),
            system_id: "134409".into(),
        }
    }
}

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
const CALL_LOG_CAPACITY: usize = 4096;

#[derive(Default)]
struct Faults {
    next_id: u64,
    rules: Vec<FaultRule>,
    latency_ms: u64,
    calls: BTreeMap<String, u64>,
    log: VecDeque<CallRecord>,
}

struct Inner {
    config: SdpEmulatorConfig,
    array: Mutex<ArrayState>,
    faults: Mutex<Faults>,
}

/// A handle on a running emulator.
#[derive(Clone)]
pub struct SdpEmulator {
    inner: Arc<Inner>,
    pub url: String,
}

impl SdpEmulator {
    /// Loads (or creates) the array and serves it on `listener` in the background.
    pub async fn start(
        config: SdpEmulatorConfig,
        listener: TcpListener,
    ) -> std::io::Result<SdpEmulator> {
        let array = match &config.state_file {
            Some(path) if path.exists() => load_state(path)?,
            _ => ArrayState::new(&config.system_id, "sdp-emulator"),
        };
        let inner = Arc::new(Inner {
            config,
            array: Mutex::new(array),
            faults: Mutex::new(Faults::default()),
        });
        let url = format!("http://{}", listener.local_addr()?);
        let app = router(inner.clone());
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(error = %err, "SDP emulator stopped");
            }
        });
        Ok(SdpEmulator { inner, url })
    }

    /// A copy of the array as it is now (for tests that check what Flex left behind).
    pub fn snapshot_state(&self) -> ArrayState {
        lock(&self.inner.array).clone()
    }

    /// Changes the array directly, as an operator at the array's console would.
    pub fn with_array<T>(&self, change: impl FnOnce(&mut ArrayState) -> T) -> T {
        let mut array = lock(&self.inner.array);
        let out = change(&mut array);
        persist(&self.inner, &array);
        out
    }

    /// API calls served so far, by `METHOD /collection[/{id}]`.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        lock(&self.inner.faults).calls.clone()
    }

    /// The most recent API calls, oldest first.
    pub fn call_log(&self) -> Vec<CallRecord> {
        lock(&self.inner.faults).log.iter().cloned().collect()
    }

    pub fn add_fault(&self, rule: FaultRule) -> u64 {
        add_fault(&self.inner, rule)
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.faults).rules.clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn add_fault(inner: &Inner, mut rule: FaultRule) -> u64 {
    let mut faults = lock(&inner.faults);
    faults.next_id += 1;
    rule.id = faults.next_id;
    faults.rules.push(rule);
    faults.next_id
}

fn load_state(path: &Path) -> std::io::Result<ArrayState> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))
}

/// Writes the state to a temporary file, syncs it, and renames it over the old one, so a crash
/// leaves either the old state or the new one.
fn persist(inner: &Inner, array: &ArrayState) {
    let Some(path) = &inner.config.state_file else {
        return;
    };
    let write = || -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(array).map_err(std::io::Error::other)?;
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    };
    if let Err(err) = write() {
        tracing::error!(error = %err, path = %path.display(), "cannot save the emulator state");
    }
}

type Shared = Arc<Inner>;

fn router(inner: Shared) -> Router {
    let api = Router::new()
        .route("/api/v2/system/state", get(system_state))
        .route("/api/v2/{collection}", get(list).post(create))
        .route(
            "/api/v2/{collection}/{id}",
            get(get_one).patch(update).delete(remove),
        )
        .layer(middleware::from_fn_with_state(inner.clone(), inject_faults));
    let admin = Router::new()
        .route(
            "/emulator/faults",
            get(list_faults).post(post_fault).delete(clear_faults),
        )
        .route("/emulator/latency", axum::routing::put(set_latency))
        .route("/emulator/calls", get(get_calls).delete(reset_calls))
        .route("/emulator/visible_serials", get(visible_serials));
    Router::new()
        .merge(api)
        .merge(admin)
        .fallback(|| async { sdp_error(&SdpFault::new(404, "MC_ERR_NOT_FOUND", "no such path")) })
        .layer(middleware::from_fn_with_state(inner.clone(), basic_auth))
        .with_state(inner)
}

fn sdp_error(fault: &SdpFault) -> Response {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(json!({"error_code": fault.code, "error_msg": fault.message})),
    )
        .into_response()
}

async fn basic_auth(State(inner): State<Shared>, req: Request, next: Next) -> Response {
    let expected = format!("{}:{}", inner.config.user, inner.config.password);
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    if presented.is_some_and(|p| crate::auth::secrets_equal(&p, &expected)) {
        return next.run(req).await;
    }
    let mut response = sdp_error(&SdpFault::new(401, "MC_ERR_UNAUTHORIZED", "Unauthorized"));
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"sdp\""),
    );
    response
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

async fn inject_faults(State(inner): State<Shared>, req: Request, next: Next) -> Response {
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
        at_ms: model::now_ms() as i64,
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

fn envelope(hits: Vec<Value>, total: usize, limit: usize, offset: usize) -> Json<Value> {
    Json(json!({"hits": hits, "total": total, "limit": limit, "offset": offset}))
}

async fn system_state(State(inner): State<Shared>) -> Json<Value> {
    let state = lock(&inner.array).system_state();
    envelope(vec![state], 1, 100, 0)
}

fn known_collection(collection: &str) -> Result<(), SdpFault> {
    if model::COLLECTIONS.contains(&collection) {
        Ok(())
    } else {
        Err(SdpFault::new(
            404,
            "MC_ERR_NOT_FOUND",
            format!("no collection '{collection}'"),
        ))
    }
}

fn parse_id(raw: &str) -> Result<u64, SdpFault> {
    raw.parse()
        .map_err(|_| SdpFault::new(404, "MC_ERR_NOT_FOUND", "no such object"))
}

fn parse_body(body: &Bytes) -> Result<Value, SdpFault> {
    serde_json::from_slice(body)
        .map_err(|err| SdpFault::new(400, "MC_ERR_BAD_PARAMS", format!("invalid JSON: {err}")))
}

/// Answers a handler's outcome: its response, or the array's error body.
fn answer(outcome: Result<Response, SdpFault>) -> Response {
    outcome.unwrap_or_else(|fault| sdp_error(&fault))
}

async fn list(
    State(inner): State<Shared>,
    UrlPath(collection): UrlPath<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    answer((|| {
        known_collection(&collection)?;
        let objects = lock(&inner.array)
            .render_all(&collection, model::now_ms())
            .unwrap_or_default();
        let (hits, total, limit, offset) = model::query(objects, &params)?;
        Ok(envelope(hits, total, limit, offset).into_response())
    })())
}

async fn get_one(
    State(inner): State<Shared>,
    UrlPath((collection, id)): UrlPath<(String, String)>,
) -> Response {
    answer((|| {
        known_collection(&collection)?;
        let id = parse_id(&id)?;
        let object = lock(&inner.array).render_one(&collection, id, model::now_ms())?;
        Ok(Json(object).into_response())
    })())
}

async fn create(
    State(inner): State<Shared>,
    UrlPath(collection): UrlPath<String>,
    body: Bytes,
) -> Response {
    answer((|| {
        known_collection(&collection)?;
        let body = parse_body(&body)?;
        let mut array = lock(&inner.array);
        let clone_delay = inner.config.clone_delay.as_millis() as u64;
        let id = array.create(&collection, &body, clone_delay)?;
        persist(&inner, &array);
        // A thin clone is not listed yet; the POST still answers with the object.
        let object = array.render_one(&collection, id, u64::MAX)?;
        Ok((StatusCode::CREATED, Json(object)).into_response())
    })())
}

async fn update(
    State(inner): State<Shared>,
    UrlPath((collection, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    answer((|| {
        known_collection(&collection)?;
        let id = parse_id(&id)?;
        let body = parse_body(&body)?;
        let mut array = lock(&inner.array);
        array.update(&collection, id, &body)?;
        persist(&inner, &array);
        Ok(Json(array.render_one(&collection, id, u64::MAX)?).into_response())
    })())
}

async fn remove(
    State(inner): State<Shared>,
    UrlPath((collection, id)): UrlPath<(String, String)>,
) -> Response {
    answer((|| {
        known_collection(&collection)?;
        let id = parse_id(&id)?;
        let mut array = lock(&inner.array);
        array.delete(&collection, id)?;
        persist(&inner, &array);
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

async fn list_faults(State(inner): State<Shared>) -> Json<Vec<FaultRule>> {
    Json(lock(&inner.faults).rules.clone())
}

async fn post_fault(State(inner): State<Shared>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultRule>(&body) {
        Ok(rule) => {
            let id = add_fault(&inner, rule);
            (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
        }
        Err(err) => sdp_error(&SdpFault::new(
            400,
            "MC_ERR_BAD_PARAMS",
            format!("invalid fault rule: {err}"),
        )),
    }
}

async fn clear_faults(State(inner): State<Shared>) -> StatusCode {
    lock(&inner.faults).rules.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Latency {
    ms: u64,
}

async fn set_latency(State(inner): State<Shared>, body: Bytes) -> Response {
    match serde_json::from_slice::<Latency>(&body) {
        Ok(latency) => {
            lock(&inner.faults).latency_ms = latency.ms;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => sdp_error(&SdpFault::new(
            400,
            "MC_ERR_BAD_PARAMS",
            format!("expected {{\"ms\": N}}: {err}"),
        )),
    }
}

async fn get_calls(State(inner): State<Shared>) -> Json<BTreeMap<String, u64>> {
    Json(lock(&inner.faults).calls.clone())
}

async fn reset_calls(State(inner): State<Shared>) -> StatusCode {
    let mut faults = lock(&inner.faults);
    faults.calls.clear();
    faults.log.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct IqnQuery {
    iqn: String,
}

async fn visible_serials(
    State(inner): State<Shared>,
    Query(query): Query<IqnQuery>,
) -> Json<Vec<String>> {
    Json(lock(&inner.array).serials_visible_to(&query.iqn))
}
