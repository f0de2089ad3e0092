//! An emulated database host: a Windows server with SQL Server and the Silk agent. It keeps
//! its databases' files on SDP volumes (provisioned through the SDP API if missing), reports
//! real facts and serials, and carries out every command honestly: a freeze holds for a
//! bounded window, a rescan sees exactly what the SDP maps to its IQN, an attach needs its
//! disks and a free name. Fault switches let tests make it misbehave.

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{
    agents::protocol::Reply,
    model::{FileKind, InventoryDatabase},
    sdp::{SdpClient, SdpConfig},
};

mod host;
mod session;
mod tls;

/// One database file, and the SDP volume that holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileSpec {
    pub name: String,
    pub kind: FileKind,
    pub volume: String,
    pub volume_group: String,
    #[serde(default = "default_size_mb")]
    pub size_mb: u64,
}

fn default_size_mb() -> u64 {
    1024
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DatabaseSpec {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub files: Vec<FileSpec>,
}

/// The host's own facts, as its `hello` reports them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostSpec {
    #[serde(default)]
    pub host_name: String,
    #[serde(default)]
    pub iqn: String,
    #[serde(default = "default_os")]
    pub os: String,
    #[serde(default = "default_os_version")]
    pub os_version: String,
    #[serde(default = "default_cloud")]
    pub cloud_vendor: String,
    #[serde(default = "default_engine")]
    pub db_engine_version: String,
}

fn default_os() -> String {
    "Windows".into()
}
fn default_os_version() -> String {
    "Windows Server 2022 Datacenter".into()
}
fn default_cloud() -> String {
    "AZURE".into()
}
fn default_engine() -> String {
    "16.0.1000.6".into()
}

impl Default for HostSpec {
    fn default() -> Self {
        HostSpec {
            host_name: String::new(),
            iqn: String::new(),
            os: default_os(),
            os_version: default_os_version(),
            cloud_vendor: default_cloud(),
            db_engine_version: default_engine(),
        }
    }
}

/// The `--config FILE` of `flex agent-emulator`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HostConfigFile {
    #[serde(default)]
    pub host: HostSpec,
    #[serde(default)]
    pub databases: Vec<DatabaseSpec>,
}

impl HostConfigFile {
    pub fn load(path: &Path) -> std::io::Result<HostConfigFile> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes)
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))
    }
}

/// Ways to make the host misbehave.
#[derive(Clone, Debug, Default)]
pub struct AgentFaults {
    /// Carry out the Nth new command, then drop the connection before its reply is sent
    /// (once): Flex must re-deliver it, and the host must answer without acting again.
    pub disconnect_after_commands: Option<u64>,
    /// Carry out the first new command with this name, then drop the connection before its
    /// reply is sent (once).
    pub disconnect_on: Option<String>,
    /// Wait this long before each reply (only for `slow_commands` when that is not empty).
    pub reply_delay: Duration,
    pub slow_commands: Vec<String>,
    /// Refuse commands with these names.
    pub refuse: Vec<String>,
}

impl AgentFaults {
    fn delay_for(&self, command: &str) -> Duration {
        if self.slow_commands.is_empty() || self.slow_commands.iter().any(|c| c == command) {
            self.reply_delay
        } else {
            Duration::ZERO
        }
    }
}

#[derive(Clone, Debug)]
pub struct AgentEmulatorConfig {
    /// Flex's base URL (`http://…` or `https://…`).
    pub flex_url: String,
    pub host_id: String,
    pub token: String,
    /// Accept Flex's certificate without verification (self-signed).
    pub insecure: bool,
    /// The array holding the databases' volumes; without it, nothing is provisioned or seen.
    pub sdp: Option<SdpConfig>,
    pub host: HostSpec,
    pub databases: Vec<DatabaseSpec>,
    /// How long a freeze holds before the host thaws by itself.
    pub freeze_window: Duration,
    pub reconnect_delay: Duration,
    pub faults: AgentFaults,
    /// How an attached database gets its id.
    pub database_ids: DatabaseIds,
}

/// How the host numbers the databases it attaches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DatabaseIds {
    /// As SQL Server does: the lowest `database_id` not in use, above the system databases
    /// (so a database detached and attached again normally gets its old id back).
    #[default]
    LowestFree,
    /// Always a new, higher id (as when other databases took the free ones in between).
    Ascending,
}

/// SQL Server's system databases hold ids 1 to 4.
const FIRST_USER_DATABASE_ID: u64 = 5;

impl AgentEmulatorConfig {
    pub fn new(flex_url: &str, host_id: &str, token: &str) -> AgentEmulatorConfig {
        AgentEmulatorConfig {
            flex_url: flex_url.to_owned(),
            host_id: host_id.to_owned(),
            token: token.to_owned(),
            insecure: false,
            sdp: None,
            host: HostSpec::default(),
            databases: Vec::new(),
            freeze_window: Duration::from_secs(10),
            reconnect_delay: Duration::from_millis(200),
            faults: AgentFaults::default(),
            database_ids: DatabaseIds::default(),
        }
    }
}

/// What the host has seen and done, for tests to assert on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentStats {
    /// Command messages received, repeats included.
    pub commands_received: u64,
    /// Commands carried out, by name (a repeat answered from memory is not counted).
    pub commands_acted: HashMap<String, u64>,
    /// Repeats of a known command id answered from memory.
    pub repeats_answered: u64,
    pub connections: u64,
    /// The `ref_id` of the last command carried out (the task's `hs-ref-id`).
    pub last_ref_id: String,
}

/// A freeze in force: writes held until the thaw or the end of the window.
struct Freeze {
    expired: Arc<AtomicBool>,
    started: Instant,
}

struct HostState {
    databases: Vec<InventoryDatabase>,
    replies: HashMap<String, Reply>,
    freezes: HashMap<String, Freeze>,
    stats: AgentStats,
    next_db_id: u64,
    /// The faults in force: they start as configured and can be changed while running.
    faults: AgentFaults,
    /// Counts down new commands to the disconnect fault.
    commands_until_disconnect: Option<u64>,
    /// Drive letters in use, by serial.
    drives: HashMap<String, String>,
}

struct Shared {
    config: AgentEmulatorConfig,
    sdp: Option<SdpClient>,
    /// For the SDP emulator's own endpoints.
    http: reqwest::Client,
    state: Mutex<HostState>,
    connected: AtomicBool,
    refused_auth: AtomicBool,
    welcomed: AtomicU64,
}

/// A running emulated host; dropping it does not stop it, [`AgentEmulator::stop`] does.
#[derive(Clone)]
pub struct AgentEmulator {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, thiserror::Error)]
pub enum AgentEmulatorError {
    #[error("provisioning on the SDP failed: {0}")]
    Sdp(#[from] crate::sdp::SdpError),
    #[error("{0}")]
    Config(String),
}

impl AgentEmulator {
    /// Provisions the databases' volumes on the SDP (when given), then connects to Flex in the
    /// background, reconnecting whenever the connection drops.
    pub async fn start(
        mut config: AgentEmulatorConfig,
    ) -> Result<AgentEmulator, AgentEmulatorError> {
        if config.host.host_name.is_empty() {
            config.host.host_name = config.host_id.clone();
        }
        if config.host.iqn.is_empty() {
            config.host.iqn = format!(
                "iqn.1991-05.com.microsoft:{}",
                config.host_id.to_lowercase()
            );
        }
        let sdp = match &config.sdp {
            Some(sdp_config) => Some(SdpClient::new(sdp_config)?),
            None => None,
        };
        let serials = match &sdp {
            Some(sdp) => provision(sdp, &config.databases).await?,
            None => HashMap::new(),
        };
        let mut drives = HashMap::new();
        let databases = config
            .databases
            .iter()
            .map(|db| host::inventory_entry(db, &serials, &mut drives))
            .collect::<Vec<_>>();
        let next_db_id = databases
            .iter()
            .filter_map(|db| db.id.parse::<u64>().ok())
            .max()
            .map_or(FIRST_USER_DATABASE_ID, |max| max + 1);
        let shared = Arc::new(Shared {
            state: Mutex::new(HostState {
                databases,
                replies: HashMap::new(),
                freezes: HashMap::new(),
                stats: AgentStats::default(),
                next_db_id,
                commands_until_disconnect: config.faults.disconnect_after_commands,
                faults: config.faults.clone(),
                drives,
            }),
            config,
            sdp,
            http: {
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|err| AgentEmulatorError::Config(err.to_string()))?
            },
            connected: AtomicBool::new(false),
            refused_auth: AtomicBool::new(false),
            welcomed: AtomicU64::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(session::run(shared.clone(), stop_rx));
        Ok(AgentEmulator { shared, stop })
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Replaces the faults in force (the disconnect countdown restarts from the new value).
    pub fn set_faults(&self, faults: AgentFaults) {
        let mut state = lock(&self.shared.state);
        state.commands_until_disconnect = faults.disconnect_after_commands;
        state.faults = faults;
    }

    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// Times Flex welcomed this host (one per successful connection).
    pub fn welcomes(&self) -> u64 {
        self.shared.welcomed.load(Ordering::SeqCst)
    }

    /// Flex refused the token (the host was unregistered); the emulator stopped retrying.
    pub fn was_refused(&self) -> bool {
        self.shared.refused_auth.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> AgentStats {
        lock(&self.shared.state).stats.clone()
    }

    pub fn databases(&self) -> Vec<InventoryDatabase> {
        lock(&self.shared.state).databases.clone()
    }

    pub fn iqn(&self) -> String {
        self.shared.config.host.iqn.clone()
    }
}

/// Ensures every volume the databases live on exists; returns their serials by volume name.
async fn provision(
    sdp: &SdpClient,
    databases: &[DatabaseSpec],
) -> Result<HashMap<String, String>, AgentEmulatorError> {
    let mut serials = HashMap::new();
    for file in databases.iter().flat_map(|db| &db.files) {
        if serials.contains_key(&file.volume) {
            continue;
        }
        let volume = if let Some(volume) = sdp.find_volume(&file.volume).await? {
            volume
        } else {
            let group = match sdp.find_volume_group(&file.volume_group).await? {
                Some(group) => group,
                None => sdp.create_volume_group(&file.volume_group, 0).await?,
            };
            let size_kib = databases
                .iter()
                .flat_map(|db| &db.files)
                .filter(|f| f.volume == file.volume)
                .map(|f| f.size_mb * 1024)
                .sum::<u64>()
                .max(1024 * 1024);
            sdp.create_volume(&file.volume, size_kib, group.id).await?
        };
        serials.insert(file.volume.clone(), volume.scsi_sn);
    }
    Ok(serials)
}
