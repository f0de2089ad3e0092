//! The SDP REST client Flex drives the array with (the subset of the SDP API in
//! `docs/architecture.md`).
//!
//! Every call is typed, carries the `hs-ref-id` of the task it serves, and fails with an
//! [`SdpError`] that tells the executor whether to retry, give up, or look the object up
//! before retrying a create. Lookups answer `Option` (absent is not an error); deletes of
//! something already gone succeed, so undo steps can be re-run.

mod config;
mod error;
mod facts;
mod types;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{Method, header::RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use config::SdpConfig;
pub use error::SdpError;
use types::Envelope;

use crate::logging::escaped;
pub use types::{
    Host, HostIqn, Mapping, Ref, RetentionPolicy, Snapshot, SystemState, Volsnap, Volume,
    VolumeGroup,
};

/// The retention policy host-side snapshot tooling uses; Flex's snapshots use it too.
pub const BEST_EFFORT_RETENTION: &str = "Best_Effort_Retention";
/// Objects fetched per page when listing.
const PAGE_SIZE: usize = 100;
/// How often `wait_for_volume` looks for a thin clone that has not appeared yet.
const VOLUME_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A cheap-to-clone handle on one SDP.
#[derive(Clone)]
pub struct SdpClient {
    http: reqwest::Client,
    base: Arc<str>,
    user: Arc<str>,
    password: Arc<str>,
    ref_id: Option<Arc<str>>,
    /// Where each call's duration and outcome go (`/metrics`).
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// What the array never changes, asked once (shared by every clone of this client).
    facts: Arc<facts::ArrayFacts>,
}

impl std::fmt::Debug for SdpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdpClient")
            .field("base", &self.base)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl SdpClient {
    pub fn new(config: &SdpConfig) -> Result<SdpClient, SdpError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|err| SdpError::Config(format!("invalid SDP URL '{}': {err}", config.url)))?;
        match url.scheme() {
            "https" => {}
            "http" if url.host_str().is_some_and(is_loopback) => {}
            "http" => {
                return Err(SdpError::Config(
                    "plain http is only allowed to a loopback address; use https".into(),
                ));
            }
            other => return Err(SdpError::Config(format!("unsupported scheme '{other}'"))),
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .tls_danger_accept_invalid_certs(config.insecure);
        if let Some(ca_file) = &config.ca_file {
            let pem = std::fs::read(ca_file).map_err(|err| {
                SdpError::Config(format!("cannot read CA file {}: {err}", ca_file.display()))
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|err| SdpError::Config(format!("invalid CA file: {err}")))?;
            builder = builder.tls_certs_only(certificates);
        }
        let http = builder
            .build()
            .map_err(|err| SdpError::Config(err.to_string()))?;
        Ok(SdpClient {
            http,
            base: format!("{}/api/v2", config.url.trim_end_matches('/')).into(),
            user: config.user.as_str().into(),
            password: config.password.as_str().into(),
            ref_id: None,
            metrics: None,
            facts: Arc::default(),
        })
    }

    /// The same client, stamping `ref_id` on every call (the task's `hs-ref-id`).
    pub fn with_ref_id(&self, ref_id: &str) -> SdpClient {
        SdpClient {
            ref_id: Some(ref_id.into()),
            ..self.clone()
        }
    }

    /// The same client, recording every call in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> SdpClient {
        self.metrics = Some(metrics);
        self
    }

    /// One HTTP exchange, timed for `/metrics`. `Ok(None)` is an empty answer (a DELETE's 204).
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, SdpError> {
        let started = Instant::now();
        let answer = self.exchange(method.clone(), path, query, body).await;
        if let Some(metrics) = &self.metrics {
            let collection = path.split('/').find(|s| !s.is_empty()).unwrap_or_default();
            let outcome = answer.as_ref().map_or_else(SdpError::outcome, |_| "ok");
            let seconds = started.elapsed().as_secs_f64();
            metrics.sdp_request(method.as_str(), collection, outcome, seconds);
        }
        answer
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, SdpError> {
        let call = format!("{method} {path}");
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .basic_auth(&*self.user, Some(&*self.password))
            .query(query);
        if let Some(ref_id) = &self.ref_id {
            request = request.header("hs-ref-id", &**ref_id);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let ref_id = self.ref_id.as_deref().unwrap_or_default();
        let response = match crate::timing::waiting(request.send()).await {
            Ok(response) => response,
            Err(err) => {
                tracing::warn!(%ref_id, %call, error = %escaped(&err), "SDP call failed");
                return Err(SdpError::from_transport(call, &method, &err));
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = crate::timing::waiting(response.text())
            .await
            .map_err(|err| SdpError::from_transport(call.clone(), &method, &err))?;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::debug!(%ref_id, %call, status, elapsed_ms, "SDP call");
        if !(200..300).contains(&status) {
            let err = SdpError::from_response(call, &method, status, retry_after, &text);
            if status != 404 {
                tracing::warn!(%ref_id, error = %escaped(&err), "SDP call refused");
            }
            return Err(err);
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|err| SdpError::Permanent {
                call,
                status,
                code: None,
                message: format!("unreadable answer: {err}"),
            })
    }

    fn decode<T: DeserializeOwned>(call: &str, value: Value) -> Result<T, SdpError> {
        serde_json::from_value(value).map_err(|err| SdpError::Permanent {
            call: call.to_owned(),
            status: 200,
            code: None,
            message: format!("unexpected object shape: {err}"),
        })
    }

    /// Every object of `collection` matching `filters`, across pages.
    pub async fn list<T: DeserializeOwned>(
        &self,
        collection: &str,
        filters: &[(&str, String)],
    ) -> Result<Vec<T>, SdpError> {
        let path = format!("/{collection}");
        let mut all = Vec::new();
        loop {
            let mut query = filters.to_vec();
            query.push(("__limit", PAGE_SIZE.to_string()));
            query.push(("__offset", all.len().to_string()));
            let answer = self
                .call(Method::GET, &path, &query, None)
                .await?
                .unwrap_or(Value::Null);
            let page: Envelope<T> = Self::decode(&path, answer)?;
            let fetched = page.hits.len();
            all.extend(page.hits);
            let total = page.total.unwrap_or(all.len());
            if fetched == 0 || all.len() >= total {
                return Ok(all);
            }
        }
    }

    async fn find_one<T: DeserializeOwned>(
        &self,
        collection: &str,
        filters: &[(&str, String)],
    ) -> Result<Option<T>, SdpError> {
        Ok(self.list(collection, filters).await?.into_iter().next())
    }

    /// One object by id; `None` when the array has no such object. Accepts the bare object and
    /// the enveloped form some array versions answer with.
    pub async fn get<T: DeserializeOwned>(
        &self,
        collection: &str,
        id: u64,
    ) -> Result<Option<T>, SdpError> {
        let path = format!("/{collection}/{id}");
        match self.call(Method::GET, &path, &[], None).await {
            Ok(Some(value)) => {
                let object = match value.get("hits").and_then(Value::as_array) {
                    Some(hits) => match hits.first() {
                        Some(first) => first.clone(),
                        None => return Ok(None),
                    },
                    None => value,
                };
                Self::decode(&path, object).map(Some)
            }
            Ok(None) => Ok(None),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn create<T: DeserializeOwned>(
        &self,
        collection: &str,
        body: Value,
    ) -> Result<T, SdpError> {
        let path = format!("/{collection}");
        let answer = self
            .call(Method::POST, &path, &[], Some(&body))
            .await?
            .ok_or_else(|| SdpError::Ambiguous {
                call: format!("POST {path}"),
                message: "the array answered a create with no object".into(),
            })?;
        Self::decode(&path, answer)
    }

    /// Deletes an object. Returns false when it was already gone, so undo can be repeated.
    pub async fn delete(&self, collection: &str, id: u64) -> Result<bool, SdpError> {
        match self
            .call(Method::DELETE, &format!("/{collection}/{id}"), &[], None)
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.is_not_found() => Ok(false),
            Err(err) => Err(err),
        }
    }

    // --- System ------------------------------------------------------------------------

    /// The health and login probe.
    pub async fn system_state(&self) -> Result<SystemState, SdpError> {
        self.find_one("system/state", &[])
            .await?
            .ok_or_else(|| SdpError::Permanent {
                call: "GET /system/state".into(),
                status: 200,
                code: None,
                message: "the array reported no system state".into(),
            })
    }

    // --- Volume groups and volumes -----------------------------------------------------

    pub async fn list_volume_groups(&self) -> Result<Vec<VolumeGroup>, SdpError> {
        self.list("volume_groups", &[]).await
    }

    pub async fn get_volume_group(&self, id: u64) -> Result<Option<VolumeGroup>, SdpError> {
        self.get("volume_groups", id).await
    }

    pub async fn find_volume_group(&self, name: &str) -> Result<Option<VolumeGroup>, SdpError> {
        self.find_one("volume_groups", &[("name", name.to_owned())])
            .await
    }

    /// Creates a volume group (`quota` in KiB, 0 = unlimited).
    pub async fn create_volume_group(
        &self,
        name: &str,
        quota: u64,
    ) -> Result<VolumeGroup, SdpError> {
        self.create("volume_groups", json!({"name": name, "quota": quota}))
            .await
    }

    pub async fn get_volume(&self, id: u64) -> Result<Option<Volume>, SdpError> {
        self.get("volumes", id).await
    }

    pub async fn find_volume(&self, name: &str) -> Result<Option<Volume>, SdpError> {
        self.find_one("volumes", &[("name", name.to_owned())]).await
    }

    /// The volume a host sees as the disk with this serial.
    pub async fn find_volume_by_serial(&self, scsi_sn: &str) -> Result<Option<Volume>, SdpError> {
        self.find_one("volumes", &[("scsi_sn", scsi_sn.to_owned())])
            .await
    }

    /// The volumes with any of these serials, in one call.
    pub async fn find_volumes_by_serials(
        &self,
        serials: &[String],
    ) -> Result<Vec<Volume>, SdpError> {
        if serials.is_empty() {
            return Ok(Vec::new());
        }
        self.list("volumes", &[("scsi_sn__in", serials.join(","))])
            .await
    }

    pub async fn list_volumes_in_group(&self, volume_group: u64) -> Result<Vec<Volume>, SdpError> {
        let reference = Ref::to("volume_groups", volume_group).path;
        self.list("volumes", &[("volume_group.ref", reference)])
            .await
    }

    /// Creates a volume of `size` KiB in a volume group.
    pub async fn create_volume(
        &self,
        name: &str,
        size: u64,
        volume_group: u64,
    ) -> Result<Volume, SdpError> {
        let body = json!({
            "name": name,
            "size": size,
            "volume_group": {"ref": Ref::to("volume_groups", volume_group).path},
        });
        self.create("volumes", body).await
    }

    /// Creates a thin clone of `source_volume` as frozen in `snapshot`. The clone may take a
    /// moment to be listed: see [`SdpClient::wait_for_volume`].
    pub async fn create_thin_clone(
        &self,
        name: &str,
        volume_group: u64,
        snapshot: u64,
        source_volume: u64,
    ) -> Result<Volume, SdpError> {
        let body = json!({
            "name": name,
            "volume_group": {"ref": Ref::to("volume_groups", volume_group).path},
            "source_snapshot": {"ref": Ref::to("snapshots", snapshot).path},
            "source_volume": {"ref": Ref::to("volumes", source_volume).path},
            "is_thin_clone": true,
        });
        self.create("volumes", body).await
    }

    /// Polls until a volume of that name is listed, or `timeout` passes (a transient error).
    pub async fn wait_for_volume(&self, name: &str, timeout: Duration) -> Result<Volume, SdpError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(volume) = self.find_volume(name).await? {
                return Ok(volume);
            }
            if Instant::now() >= deadline {
                return Err(SdpError::Transient {
                    call: format!("GET /volumes?name={name}"),
                    status: None,
                    code: None,
                    message: format!("volume '{name}' did not appear within {timeout:?}"),
                    retry_after: None,
                });
            }
            tokio::time::sleep(VOLUME_POLL_INTERVAL).await;
        }
    }

    pub async fn delete_volume(&self, id: u64) -> Result<bool, SdpError> {
        self.delete("volumes", id).await
    }

    // --- Snapshots, views, volsnaps ----------------------------------------------------

    /// A crash-consistent snapshot of every volume of the group, taken now.
    pub async fn create_vg_snapshot(
        &self,
        volume_group: u64,
        short_name: &str,
        retention_policy: u64,
    ) -> Result<Snapshot, SdpError> {
        let body = json!({
            "short_name": short_name,
            "source": {"ref": Ref::to("volume_groups", volume_group).path},
            "retention_policy": {"ref": Ref::to("retention_policies", retention_policy).path},
            "is_auto_deleteable": false,
        });
        self.create("snapshots", body).await
    }

    /// A writable view exposing the volumes of a snapshot.
    pub async fn create_view(
        &self,
        snapshot: u64,
        short_name: &str,
        retention_policy: u64,
    ) -> Result<Snapshot, SdpError> {
        let body = json!({
            "short_name": short_name,
            "source": {"ref": Ref::to("snapshots", snapshot).path},
            "retention_policy": {"ref": Ref::to("retention_policies", retention_policy).path},
            "is_exposable": true,
        });
        self.create("snapshots", body).await
    }

    pub async fn get_snapshot(&self, id: u64) -> Result<Option<Snapshot>, SdpError> {
        self.get("snapshots", id).await
    }

    /// A snapshot of a volume group by its short name (unique within the group).
    pub async fn find_snapshot(
        &self,
        volume_group: u64,
        short_name: &str,
    ) -> Result<Option<Snapshot>, SdpError> {
        let reference = Ref::to("volume_groups", volume_group).path;
        self.find_one(
            "snapshots",
            &[
                ("volume_group.ref", reference),
                ("short_name", short_name.to_owned()),
            ],
        )
        .await
    }

    pub async fn list_snapshots_of_group(
        &self,
        volume_group: u64,
    ) -> Result<Vec<Snapshot>, SdpError> {
        let reference = Ref::to("volume_groups", volume_group).path;
        self.list("snapshots", &[("volume_group.ref", reference)])
            .await
    }

    pub async fn delete_snapshot(&self, id: u64) -> Result<bool, SdpError> {
        self.delete("snapshots", id).await
    }

    /// The volumes frozen in a snapshot or view.
    pub async fn list_volsnaps(&self, snapshot: u64) -> Result<Vec<Volsnap>, SdpError> {
        let reference = Ref::to("snapshots", snapshot).path;
        self.list("volsnaps", &[("snapshot.ref", reference)]).await
    }

    pub async fn find_retention_policy(
        &self,
        name: &str,
    ) -> Result<Option<RetentionPolicy>, SdpError> {
        self.find_one("retention_policies", &[("name", name.to_owned())])
            .await
    }

    // --- Hosts, IQNs, mappings ---------------------------------------------------------

    pub async fn find_host(&self, name: &str) -> Result<Option<Host>, SdpError> {
        self.find_one("hosts", &[("name", name.to_owned())]).await
    }

    /// Creates a host object (`host_type` is `Windows`, `Linux` or `ESX`).
    pub async fn create_host(&self, name: &str, host_type: &str) -> Result<Host, SdpError> {
        self.create("hosts", json!({"name": name, "type": host_type}))
            .await
    }

    pub async fn get_host(&self, id: u64) -> Result<Option<Host>, SdpError> {
        self.get("hosts", id).await
    }

    pub async fn delete_host(&self, id: u64) -> Result<bool, SdpError> {
        self.delete("hosts", id).await
    }

    pub async fn find_host_iqn(&self, iqn: &str) -> Result<Option<HostIqn>, SdpError> {
        self.find_one("host_iqns", &[("iqn", iqn.to_owned())]).await
    }

    /// The host object an initiator belongs to, if the array knows the IQN.
    pub async fn find_host_by_iqn(&self, iqn: &str) -> Result<Option<Host>, SdpError> {
        let Some(host_iqn) = self.find_host_iqn(iqn).await? else {
            return Ok(None);
        };
        match host_iqn.host.id() {
            Some(id) => self.get_host(id).await,
            None => Ok(None),
        }
    }

    pub async fn create_host_iqn(&self, host: u64, iqn: &str) -> Result<HostIqn, SdpError> {
        let body = json!({"iqn": iqn, "host": {"ref": Ref::to("hosts", host).path}});
        self.create("host_iqns", body).await
    }

    pub async fn delete_host_iqn(&self, id: u64) -> Result<bool, SdpError> {
        self.delete("host_iqns", id).await
    }

    /// Maps a volume to a host; the answer carries the LUN.
    pub async fn create_mapping(&self, host: u64, volume: u64) -> Result<Mapping, SdpError> {
        let body = json!({
            "host": {"ref": Ref::to("hosts", host).path},
            "volume": {"ref": Ref::to("volumes", volume).path},
        });
        self.create("mappings", body).await
    }

    pub async fn find_mapping(&self, host: u64, volume: u64) -> Result<Option<Mapping>, SdpError> {
        self.find_one(
            "mappings",
            &[
                ("host.ref", Ref::to("hosts", host).path),
                ("volume.ref", Ref::to("volumes", volume).path),
            ],
        )
        .await
    }

    pub async fn list_mappings_of_host(&self, host: u64) -> Result<Vec<Mapping>, SdpError> {
        self.list("mappings", &[("host.ref", Ref::to("hosts", host).path)])
            .await
    }

    pub async fn delete_mapping(&self, id: u64) -> Result<bool, SdpError> {
        self.delete("mappings", id).await
    }
}
