//! The HTTP API: one handler per operation, mounted under every path family that serves it.
//!
//! The seed generation (`/flex/api/v1/…`) is the contract; the current generation and the
//! legacy aliases are the same handlers under other prefixes (`docs/architecture.md`). Every request goes
//! through [`context::request_context`] (ref id, request id, log span, error bodies) and every
//! API route through [`auth::require_api_token`].

mod agent;
mod audit;
pub mod auth;
pub mod console;
pub mod context;
mod echo;
pub mod error;
pub mod events;
pub mod extract;
mod flex;
mod health;
mod hosts;
pub mod roles;
mod sdp;
mod steps;
mod tasks;
mod topology;
mod webhooks;

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware,
};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    set_header::SetResponseHeaderLayer,
};

use crate::{agents::AgentHub, config::Config, executor::Waker, sdp::SdpClient, store::Store};
pub use error::ApiError;
pub use tasks::TaskListCache;
pub use topology::TopologyCache;

/// Bodies above this size are refused with 413 before they are parsed.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// What every handler can reach, behind one `Arc`: axum clones the state for each request's
/// handler and each middleware that takes it, and cloning the fields one by one (the store's
/// handles, the SDP client, the agents' hub, the deployment's names) took 4 % of a
/// single-row read.
#[derive(Clone)]
pub struct AppState(Arc<AppContext>);

impl AppState {
    pub fn new(context: AppContext) -> AppState {
        AppState(Arc::new(context))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppContext;

    fn deref(&self) -> &AppContext {
        &self.0
    }
}

/// The state's fields.
pub struct AppContext {
    pub store: Store,
    pub config: Arc<Config>,
    /// The array, when one is configured.
    pub sdp: Option<SdpClient>,
    /// The agents' sockets and the command outbox.
    pub agents: AgentHub,
    /// Wakes the executor when the API creates a task or asks one to abort.
    pub executor: Waker,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How this deployment names its SDP objects (reconcile recognises them by it).
    pub names: crate::workflows::names::ObjectNames,
    /// Turns true when the server begins to stop (long-polls answer at once).
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The estate's databases as the topology last rendered them.
    pub topology: Arc<TopologyCache>,
    /// Task lists as they were last rendered, one per query.
    pub task_lists: Arc<TaskListCache>,
}

/// Path prefixes under which the host routes are served: seed, current, legacy.
const HOST_PREFIXES: [&str; 3] = ["/flex/api/v1", "/api/v1", "/api/hostess/v1"];
/// Path prefixes under which the task routes are served: seed, current, legacy.
const TASK_PREFIXES: [&str; 3] = ["/flex/api/v1/ocie", "/api/echo/v1", "/api/ocie/v1"];
/// Topology: seed and current.
const TOPOLOGY_PREFIXES: [&str; 2] = ["/api/ocie/v1", "/api/echo/v1"];

pub fn router(state: AppState) -> Router {
    let mut api = Router::new()
        .nest("/api/v1", hosts::database_routes())
        .merge(auth::app_token_routes())
        .merge(flex::routes())
        .merge(echo::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(audit::routes())
        .merge(sdp::routes());
    for prefix in HOST_PREFIXES {
        api = api.nest(prefix, hosts::routes());
    }
    for prefix in TASK_PREFIXES {
        api = api.nest(prefix, tasks::routes());
    }
    for prefix in TOPOLOGY_PREFIXES {
        api = api.nest(prefix, topology::routes());
    }
    let api = api.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_api_token,
    ));

    let request_id = HeaderName::from_static("x-request-id");
    let metrics = state.metrics.clone();
    // Over TLS, browsers are told to keep to it; over plain HTTP the header would be ignored
    // (and a lie).
    let hsts = state.config.tls.is_some().then(|| {
        SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        )
    });
    Router::new()
        .merge(api)
        .merge(auth::login_routes())
        .merge(agent::routes())
        .merge(health::routes())
        .merge(console::routes())
        .route_layer(middleware::from_fn(context::note_route))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .method_not_allowed_fallback(|| async { StatusCode::METHOD_NOT_ALLOWED })
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::record_requests,
        ))
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            metrics,
            context::request_context,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
        ]))
        // Answers carry tokens and the state of the estate: never cached, never sniffed.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(tower::util::option_layer(hsts))
}
