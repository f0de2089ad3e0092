//! An emulated Silk Data Platform: the REST subset Flex uses (`docs/sdp-api.md`), with
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

mod faults;
pub mod model;
mod query;
mod render;
mod rules;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path as UrlPath, Query, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub use faults::{CallRecord, FaultAction, FaultRule};
use faults::{Faults, inject_faults};
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
            Some(path) if path.exists() => load_state(path).await?,
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
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn add_fault(inner: &Inner, mut rule: FaultRule) -> u64 {
    let mut faults = lock(&inner.faults);
    faults.next_id += 1;
    rule.id = faults.next_id;
    faults.rules.push(rule);
    faults.next_id
}

async fn load_state(path: &Path) -> std::io::Result<ArrayState> {
    let bytes = tokio::fs::read(path).await?;
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

fn envelope(hits: &[Value], total: usize, limit: usize, offset: usize) -> Json<Value> {
    Json(json!({"hits": hits, "total": total, "limit": limit, "offset": offset}))
}

async fn system_state(State(inner): State<Shared>) -> Json<Value> {
    let state = lock(&inner.array).system_state();
    envelope(&[state], 1, 100, 0)
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
            .render_all(&collection, model::now_ms(), &query::Narrowing(&params))
            .unwrap_or_default();
        let (hits, total, limit, offset) = query::query(objects, &params)?;
        Ok(envelope(&hits, total, limit, offset).into_response())
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
        let clone_delay = u64::try_from(inner.config.clone_delay.as_millis()).unwrap_or(u64::MAX);
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
