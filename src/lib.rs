//! Flex, the control plane of Silk Echo.
//!
//! [`run`] starts the whole server on a listener it is given, so `main` and the integration
//! tests start exactly the same program (tests bind port 0).

pub mod agents;
pub mod api;
pub mod auth;
pub mod automation;
pub mod cli;
pub mod clock;
pub mod config;
pub mod defaults;
pub mod demo;
pub mod emulators;
pub mod executor;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod sdp;
pub mod server;
pub mod store;
pub mod timing;
pub mod tls;
pub mod webhooks;
pub mod workflows;

use std::{future::Future, sync::Arc};

use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;

pub use config::Config;
use store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FlexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error(transparent)]
    Sdp(#[from] sdp::SdpError),
}

/// Builds the SDP client and probes the array once. An unreachable array does not stop Flex
/// from starting (it may come back); a configuration that cannot work does.
async fn connect_sdp(config: &sdp::SdpConfig) -> Result<sdp::SdpClient, FlexError> {
    let client = sdp::SdpClient::new(config)?;
    match client.system_state().await {
        Ok(state) => {
            client.remember_system_id(&state.system_id);
            tracing::info!(
                url = %config.url,
                system_id = %state.system_id,
                version = %state.system_version,
                state = %state.state,
                "SDP reachable"
            );
            // Every snapshot needs it: asked now, so that the first one does not wait for it,
            // and an array without it is reported before anyone asks for a snapshot.
            match client.retention_policy(sdp::BEST_EFFORT_RETENTION).await {
                Ok(Some(_)) => {}
                Ok(None) => tracing::warn!(
                    policy = sdp::BEST_EFFORT_RETENTION,
                    "the SDP has no such retention policy: snapshots will fail"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the SDP's retention policies");
                }
            }
        }
        Err(err) => tracing::warn!(url = %config.url, error = %err, "SDP not reachable at start"),
    }
    Ok(client)
}

/// Opens the store, applies migrations, makes sure an admin token exists, then serves the API
/// on `listener` until `shutdown` resolves (see `server::serve` for how it stops).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), FlexError> {
    let store = Store::connect_with(&config.database_url, config.db_acquire_timeout).await?;
    store.migrate().await?;
    if let Some(token) = auth::bootstrap_admin_token(&store, config.admin_token.as_deref()).await? {
        // Shown once, on stdout and not in the logs: only its hash is kept.
        println!("Generated admin token (shown once, store it now): {token}");
    }
    let names = workflows::names::ObjectNames::new(store.deployment().await?);
    let metrics = Arc::new(metrics::Metrics::default());
    let sdp = match &config.sdp {
        Some(sdp_config) => Some(connect_sdp(sdp_config).await?.with_metrics(metrics.clone())),
        None => None,
    };
    let agents = agents::AgentHub::new(
        store.clone(),
        &config.instance_id,
        config.agent_heartbeat,
        config.agent_silence,
    )
    .with_sdp(sdp.clone())
    .with_metrics(metrics.clone());
    agents.start().await?;
    // The workflows own what their steps talk to; the executor only runs them.
    let catalogue = workflows::catalogue(workflows::EchoDeps {
        store: store.clone(),
        sdp: sdp.clone(),
        agents: agents.clone(),
        metrics: metrics.clone(),
        freeze_window: config.freeze_window,
        instance_id: config.instance_id.clone(),
        names: names.clone(),
    });
    let executor = executor::Executor::new(
        store.clone(),
        catalogue,
        &config.instance_id,
        config.executor.clone(),
        metrics.clone(),
    );
    executor.start().await?;
    let automation = automation::Automation::start(
        store.clone(),
        executor.waker(),
        config.instance_id.clone(),
        config.expiry_check,
        automation::Retention {
            events: config.event_retention,
            audit: config.audit_retention,
        },
    );
    let agent_silence = config.agent_silence;
    let deliverer = webhooks::Deliverer::start(
        store.clone(),
        config.instance_id.clone(),
        config.webhook_retry_base,
        Arc::new(move |event| api::events::event_body(event, agent_silence)),
    );
    let tls = config.tls.clone();
    let limits = config.limits.clone();
    let task_ends = store.relay_announcements();
    let (stop_waiters, stopping) = tokio::sync::watch::channel(false);
    let state = api::AppState::new(api::AppContext {
        stopping,
        agents: agents.clone(),
        executor: executor.waker(),
        metrics,
        names,
        store: store.clone(),
        config: Arc::new(config),
        sdp,
        topology: Arc::default(),
        task_lists: Arc::default(),
    });
    let app = api::router(state);
    let address = listener.local_addr()?;
    // On shutdown, running steps first reach their checkpoint (agents still connected, since
    // steps may be waiting for them), then the agent sockets close, which HTTP's graceful
    // drain would otherwise wait for.
    let hub = agents.clone();
    let shutdown = async move {
        shutdown.await;
        let _ = stop_waiters.send(true);
        automation.stop().await;
        deliverer.stop().await;
        executor.drain().await;
        hub.shutdown().await;
    };

    let tls = match tls {
        None => None,
        Some(files) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = RustlsConfig::from_pem_file(&files.cert, &files.key)
                .await
                .map_err(|err| FlexError::Tls(err.to_string()))?;
            Some(config)
        }
    };
    let scheme = if tls.is_some() { "HTTPS" } else { "HTTP" };
    tracing::info!(%address, backend = store.backend_name(), "serving {scheme}");
    server::serve(app, listener, tls, &limits, shutdown).await?;
    agents.shutdown().await;
    if let Some(relay) = task_ends {
        relay.abort();
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
