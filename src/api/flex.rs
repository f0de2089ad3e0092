//! The Flex core calls that Silk's public tools make before any Echo call: the installer's
//! connectivity probe (`/api/v2/flex/info`), the PowerShell module's version check
//! (`/api/v1/version`) and the dashboard both read for the SDPs Flex manages
//! (`/api/v1/pages/dashboard`). Flex answers them in the shapes those tools read.

use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;

use super::{AppState, error::ApiError};
use crate::sdp::SdpConfig;

/// The Flex release whose API Flex serves. The PowerShell module compares the minor number
/// with the oldest it supports (1.4), so this is the API level, not the crate's version.
pub const FLEX_API_VERSION: &str = "1.5.0";

/// The one cluster Flex reports: the SDPs it is configured for, managed from here.
const CLUSTER_ID: &str = "1";
const CLUSTER_TYPE: &str = "on_premises";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/flex/info", get(info))
        .route("/api/v1/version", get(version))
        .route("/api/v1/pages/dashboard", get(dashboard))
}

#[derive(Serialize)]
struct Info {
    product: &'static str,
    version: &'static str,
    build: &'static str,
    instance_id: String,
    sdp_configured: bool,
}

async fn info(State(state): State<AppState>) -> Json<Info> {
    Json(Info {
        product: "Flex",
        version: FLEX_API_VERSION,
        build: env!("CARGO_PKG_VERSION"),
        instance_id: state.agents.instance_id().to_owned(),
        sdp_configured: state.sdp.is_some(),
    })
}

#[derive(Serialize)]
struct Version {
    version: &'static str,
    build: &'static str,
}

async fn version() -> Json<Version> {
    Json(Version {
        version: FLEX_API_VERSION,
        build: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize)]
struct Dashboard {
    k2xs: Vec<K2x>,
    clusters: Vec<Cluster>,
}

/// An SDP as the dashboard lists it: who it is (from the array) and where its management
/// endpoint is (from the configured URL), which the installer then calls directly.
#[derive(Serialize)]
struct K2x {
    id: String,
    name: String,
    version: String,
    mc_floating_ip: String,
    mc_https_port: u16,
    mc_url: String,
    /// The array's own state (`ONLINE`, ...), or `UNREACHABLE` when it does not answer.
    state: String,
    cluster_id: &'static str,
}

#[derive(Serialize)]
#[allow(clippy::struct_field_names)] // the field names the tools read
struct Cluster {
    id: &'static str,
    name: String,
    cluster_type: &'static str,
}

async fn dashboard(State(state): State<AppState>) -> Result<Json<Dashboard>, ApiError> {
    let (Some(sdp), Some(config)) = (&state.sdp, &state.config.sdp) else {
        return Ok(Json(Dashboard {
            k2xs: Vec::new(),
            clusters: Vec::new(),
        }));
    };
    let endpoint = Endpoint::of(config);
    let k2x = match sdp.system_state().await {
        Ok(system) => K2x {
            id: system.system_id,
            name: system.system_name,
            version: system.system_version,
            state: system.state,
            ..endpoint.k2x()
        },
        Err(err) => {
            tracing::warn!(error = %err, "the SDP did not answer for the dashboard");
            endpoint.k2x()
        }
    };
    let cluster = Cluster {
        id: CLUSTER_ID,
        name: k2x.name.clone(),
        cluster_type: CLUSTER_TYPE,
    };
    Ok(Json(Dashboard {
        k2xs: vec![k2x],
        clusters: vec![cluster],
    }))
}

/// Where the configured SDP is reached.
struct Endpoint {
    host: String,
    port: u16,
    url: String,
}

impl Endpoint {
    fn of(config: &SdpConfig) -> Endpoint {
        let parsed = reqwest::Url::parse(&config.url).ok();
        Endpoint {
            host: parsed
                .as_ref()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default(),
            port: parsed
                .as_ref()
                .and_then(reqwest::Url::port_or_known_default)
                .unwrap_or(443),
            url: config.url.clone(),
        }
    }

    /// The entry as far as the configuration tells it.
    fn k2x(&self) -> K2x {
        K2x {
            id: String::new(),
            name: String::new(),
            version: String::new(),
            mc_floating_ip: self.host.clone(),
            mc_https_port: self.port,
            mc_url: self.url.clone(),
            state: "UNREACHABLE".to_owned(),
            cluster_id: CLUSTER_ID,
        }
    }
}
