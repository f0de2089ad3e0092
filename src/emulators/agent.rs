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

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
};

use crate::{
    agents::protocol::{
        AgentMessage, Command, Failure, FlexMessage, Hello, InventoryDatabase, InventoryFile,
        MountPoint, PROTOCOL_VERSION, Reply,
    },
    sdp::{SdpClient, SdpConfig},
};

/// One database file, and the SDP volume that holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileSpec {
    pub name: String,
    /// `data` or `log`.
    pub kind: String,
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
}

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
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
            .map(|db| inventory_entry(db, &serials, &mut drives))
            .collect::<Vec<_>>();
        let next_db_id = databases
            .iter()
            .filter_map(|db| db.id.parse::<u64>().ok())
            .max()
            .unwrap_or(4)
            + 1;
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
        tokio::spawn(run(shared.clone(), stop_rx));
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
        let volume = match sdp.find_volume(&file.volume).await? {
            Some(volume) => volume,
            None => {
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
            }
        };
        serials.insert(file.volume.clone(), volume.scsi_sn);
    }
    Ok(serials)
}

fn drive_for(serial: &str, drives: &mut HashMap<String, String>) -> String {
    if let Some(drive) = drives.get(serial) {
        return drive.clone();
    }
    // C: is the system disk; data disks take the letters after it, then mount folders.
    let used = drives.len();
    let drive = if used < 22 {
        format!("{}:\\", (b'E' + used as u8) as char)
    } else {
        format!("C:\\SilkMounts\\{serial}\\")
    };
    drives.insert(serial.to_owned(), drive.clone());
    drive
}

fn inventory_entry(
    db: &DatabaseSpec,
    serials: &HashMap<String, String>,
    drives: &mut HashMap<String, String>,
) -> InventoryDatabase {
    let mut mount_points: Vec<MountPoint> = Vec::new();
    let files = db
        .files
        .iter()
        .enumerate()
        .map(|(n, file)| {
            let serial = serials.get(&file.volume).cloned().unwrap_or_default();
            let drive = drive_for(&serial, drives);
            if !mount_points.iter().any(|m| m.serial == serial) {
                mount_points.push(MountPoint {
                    kind: "disk".into(),
                    path: drive.clone(),
                    serial,
                });
            }
            let extension = if file.kind == "log" { "ldf" } else { "mdf" };
            InventoryFile {
                name: file.name.clone(),
                file_id: n as u32 + 1,
                kind: file.kind.clone(),
                path: format!("{drive}{}\\{}.{extension}", db.name, file.name),
                size_mb: file.size_mb,
            }
        })
        .collect();
    InventoryDatabase {
        id: db.id.clone(),
        name: db.name.clone(),
        status: "ONLINE".into(),
        files,
        mount_points,
    }
}

fn tls_connector(insecure: bool) -> tokio_tungstenite::Connector {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = if insecure {
        rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyCertificate))
            .with_no_client_auth()
    } else {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth()
    };
    tokio_tungstenite::Connector::Rustls(Arc::new(config))
}

/// Connects, serves, and reconnects until stopped or refused.
async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let config = &shared.config;
    let url = format!(
        "{}/api/v1/agent/ws",
        config
            .flex_url
            .trim_end_matches('/')
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1)
    );
    loop {
        if *stop.borrow() {
            return;
        }
        match connect(&url, config).await {
            Ok(socket) => {
                lock(&shared.state).stats.connections += 1;
                serve(&shared, socket, &mut stop).await;
                shared.connected.store(false, Ordering::SeqCst);
            }
            Err(refused) if refused => {
                tracing::warn!(host_id = %config.host_id, "Flex refused the host token; stopping");
                shared.refused_auth.store(true, Ordering::SeqCst);
                return;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(config.reconnect_delay) => {}
            _ = stop.changed() => return,
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Err(true) when Flex refused the token (401/403), Err(false) for anything worth a retry.
async fn connect(url: &str, config: &AgentEmulatorConfig) -> Result<Socket, bool> {
    let mut request = url.into_client_request().map_err(|_| false)?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", config.token)).map_err(|_| true)?;
    request.headers_mut().insert("authorization", bearer);
    let connector = url
        .starts_with("wss://")
        .then(|| tls_connector(config.insecure));
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_message_size(Some(1 << 20));
    // Nagle off: an attach answers with two messages back to back (inventory, then reply),
    // and with Nagle the reply waits for the first one's delayed ACK, 40 ms.
    match tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(ws_config),
        true,
        connector,
    )
    .await
    {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response))
            if matches!(response.status().as_u16(), 401 | 403) =>
        {
            Err(true)
        }
        Err(err) => {
            tracing::debug!(error = %err, "agent cannot connect");
            Err(false)
        }
    }
}

fn text(message: &AgentMessage) -> Message {
    Message::text(serde_json::to_string(message).unwrap_or_default())
}

async fn serve(shared: &Arc<Shared>, socket: Socket, stop: &mut watch::Receiver<bool>) {
    let config = &shared.config;
    let (mut sink, mut stream) = socket.split();
    let hello = AgentMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        host_name: config.host.host_name.clone(),
        host_iqn: config.host.iqn.clone(),
        host_os: config.host.os.clone(),
        host_os_version: config.host.os_version.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        cloud_vendor: config.host.cloud_vendor.clone(),
        db_engine_version: config.host.db_engine_version.clone(),
        facts: json!({"vm_id": format!("vm-{}", config.host_id), "cidrs": ["10.0.0.10/24"], "instance_type": "emulated", "cpus": 4, "memory": 16384, "location": "local", "zone": "1"}),
    });
    if sink.send(text(&hello)).await.is_err() {
        return;
    }
    // Replies and inventory updates come from command tasks through this queue.
    let (out_tx, mut out_rx) = mpsc::channel::<AgentMessage>(64);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
    heartbeat.tick().await;
    loop {
        tokio::select! {
            frame = stream.next() => {
                let Some(Ok(frame)) = frame else { return };
                let Message::Text(body) = frame else { continue };
                match serde_json::from_str::<FlexMessage>(&body) {
                    Ok(FlexMessage::Welcome { heartbeat_secs, .. }) => {
                        shared.connected.store(true, Ordering::SeqCst);
                        shared.welcomed.fetch_add(1, Ordering::SeqCst);
                        heartbeat = tokio::time::interval(Duration::from_secs(heartbeat_secs.max(1)));
                        heartbeat.tick().await;
                        let databases = lock(&shared.state).databases.clone();
                        if sink.send(text(&AgentMessage::Inventory { databases })).await.is_err() {
                            return;
                        }
                    }
                    Ok(FlexMessage::Command(command)) => {
                        if should_drop_connection(shared, &command) {
                            // Carried out, but the connection breaks before the reply leaves.
                            let _ = execute(shared, command).await;
                            tracing::info!(host_id = %config.host_id, "fault: connection dropped before the reply");
                            return;
                        }
                        let shared = shared.clone();
                        let out_tx = out_tx.clone();
                        tokio::spawn(async move {
                            let delay = lock(&shared.state).faults.delay_for(&command.name);
                            let (reply, inventory) = execute(&shared, command).await;
                            tokio::time::sleep(delay).await;
                            if let Some(databases) = inventory {
                                let _ = out_tx.send(AgentMessage::Inventory { databases }).await;
                            }
                            let _ = out_tx.send(AgentMessage::Reply(reply)).await;
                        });
                    }
                    Ok(FlexMessage::Error { code, message }) => {
                        tracing::warn!(host_id = %config.host_id, %code, %message, "Flex reported an error");
                    }
                    Err(err) => tracing::warn!(error = %err, "unreadable message from Flex"),
                }
            }
            Some(outgoing) = out_rx.recv() => {
                if sink.send(text(&outgoing)).await.is_err() {
                    return;
                }
            }
            _ = heartbeat.tick() => {
                if sink.send(text(&AgentMessage::Heartbeat {})).await.is_err() {
                    return;
                }
            }
            _ = stop.changed() => {
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

/// The disconnect fault: fires once, on the Nth command id the host has not seen before.
fn should_drop_connection(shared: &Shared, command: &Command) -> bool {
    let mut state = lock(&shared.state);
    state.stats.commands_received += 1;
    if state.replies.contains_key(&command.id) {
        return false;
    }
    if state.faults.disconnect_on.as_deref() == Some(command.name.as_str()) {
        state.faults.disconnect_on = None;
        return true;
    }
    match state.commands_until_disconnect {
        Some(remaining) if remaining <= 1 => {
            state.commands_until_disconnect = None;
            true
        }
        Some(remaining) => {
            state.commands_until_disconnect = Some(remaining - 1);
            false
        }
        None => false,
    }
}

fn failure(id: &str, code: &str, message: impl Into<String>, retryable: bool) -> Reply {
    Reply {
        id: id.to_owned(),
        ok: false,
        result: Value::Null,
        error: Some(Failure {
            code: code.to_owned(),
            message: message.into(),
            retryable,
        }),
    }
}

fn success(id: &str, result: Value) -> Reply {
    Reply {
        id: id.to_owned(),
        ok: true,
        result,
        error: None,
    }
}

/// Carries out a command once: a known id gets its stored reply. Returns the reply and, when
/// the databases changed, the new inventory.
async fn execute(
    shared: &Arc<Shared>,
    command: Command,
) -> (Reply, Option<Vec<InventoryDatabase>>) {
    {
        let mut state = lock(&shared.state);
        if let Some(reply) = state.replies.get(&command.id).cloned() {
            state.stats.repeats_answered += 1;
            return (reply, None);
        }
    }
    let id = command.id.clone();
    tracing::debug!(ref_id = %command.ref_id, %id, name = %command.name, "carrying out a command");
    let refused = lock(&shared.state).faults.refuse.contains(&command.name);
    let (reply, inventory) = if refused {
        (
            failure(
                &id,
                "REFUSED",
                format!("this host refuses '{}'", command.name),
                false,
            ),
            None,
        )
    } else {
        match command.name.as_str() {
            "freeze" => (freeze(shared, &id, &command.args), None),
            "thaw" => (thaw(shared, &id, &command.args), None),
            "rescan" => (rescan(shared, &id, &command.args).await, None),
            "attach" => attach(shared, &id, &command.args).await,
            "detach" => detach(shared, &id, &command.args),
            other => (
                failure(
                    &id,
                    "UNKNOWN_COMMAND",
                    format!("no command '{other}'"),
                    false,
                ),
                None,
            ),
        }
    };
    let mut state = lock(&shared.state);
    state.stats.last_ref_id = command.ref_id.clone();
    *state
        .stats
        .commands_acted
        .entry(command.name.clone())
        .or_default() += 1;
    state.replies.insert(id, reply.clone());
    (reply, inventory)
}

fn string_list(args: &Value, field: &str) -> Vec<String> {
    args.get(field)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .or_else(|| v.as_u64().map(|n| n.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn freeze(shared: &Arc<Shared>, id: &str, args: &Value) -> Reply {
    let db_ids = string_list(args, "db_ids");
    let mut state = lock(&shared.state);
    let missing: Vec<&String> = db_ids
        .iter()
        .filter(|db| !state.databases.iter().any(|d| &&d.id == db))
        .collect();
    if db_ids.is_empty() || !missing.is_empty() {
        return failure(
            id,
            "DB_NOT_FOUND",
            format!("cannot freeze unknown databases {missing:?}"),
            false,
        );
    }
    let freeze_id = format!("frz-{}", uuid::Uuid::new_v4().simple());
    let expired = Arc::new(AtomicBool::new(false));
    let window = shared.config.freeze_window;
    let timer = expired.clone();
    tokio::spawn(async move {
        tokio::time::sleep(window).await;
        // SQL Server resumes writes by itself when the window ends.
        timer.store(true, Ordering::SeqCst);
    });
    state.freezes.insert(
        freeze_id.clone(),
        Freeze {
            expired,
            started: Instant::now(),
        },
    );
    success(
        id,
        json!({"freeze_id": freeze_id, "db_ids": db_ids, "window_ms": window.as_millis() as u64}),
    )
}

fn thaw(shared: &Arc<Shared>, id: &str, args: &Value) -> Reply {
    let freeze_id = args
        .get("freeze_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(freeze) = lock(&shared.state).freezes.remove(freeze_id) else {
        return failure(
            id,
            "FREEZE_NOT_FOUND",
            format!("no freeze '{freeze_id}'"),
            false,
        );
    };
    let held = !freeze.expired.load(Ordering::SeqCst);
    success(
        id,
        json!({"held": held, "frozen_ms": freeze.started.elapsed().as_millis() as u64}),
    )
}

/// The serials the SDP maps to this host's IQN right now.
async fn visible_serials(shared: &Shared) -> Result<Vec<String>, String> {
    let Some(sdp) = &shared.sdp else {
        return Ok(Vec::new());
    };
    // A real host's rescan asks its own disks, not the array: the SDP emulator answers what the
    // host would find in one call. Against an array without that endpoint, ask the API.
    if let Some(config) = &shared.config.sdp {
        let answer = shared
            .http
            .get(format!("{}/emulator/visible_serials", config.url))
            .basic_auth(&config.user, Some(&config.password))
            .query(&[("iqn", &shared.config.host.iqn)])
            .send()
            .await;
        if let Ok(response) = answer
            && response.status().is_success()
            && let Ok(serials) = response.json::<Vec<String>>().await
        {
            return Ok(serials);
        }
    }
    let lookup = async {
        let Some(host) = sdp.find_host_by_iqn(&shared.config.host.iqn).await? else {
            return Ok(Vec::new());
        };
        let mut serials = Vec::new();
        for mapping in sdp.list_mappings_of_host(host.id).await? {
            if let Some(volume) = mapping.volume.id()
                && let Some(volume) = sdp.get_volume(volume).await?
            {
                serials.push(volume.scsi_sn);
            }
        }
        Ok::<_, crate::sdp::SdpError>(serials)
    };
    lookup.await.map_err(|err| err.to_string())
}

async fn rescan(shared: &Arc<Shared>, id: &str, args: &Value) -> Reply {
    let wanted = string_list(args, "serials");
    match visible_serials(shared).await {
        Ok(all) => {
            let visible: Vec<&String> = wanted.iter().filter(|s| all.contains(s)).collect();
            success(id, json!({"visible": visible, "all": all}))
        }
        Err(err) => failure(id, "RESCAN_FAILED", err, true),
    }
}

async fn attach(
    shared: &Arc<Shared>,
    id: &str,
    args: &Value,
) -> (Reply, Option<Vec<InventoryDatabase>>) {
    let db_name = args
        .get("db_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let target_state = args
        .get("target_state")
        .and_then(Value::as_str)
        .unwrap_or("online");
    let files = args
        .get("files")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if db_name.is_empty() || files.is_empty() {
        return (
            failure(id, "BAD_ARGS", "attach needs db_name and files", false),
            None,
        );
    }
    let serials: Vec<String> = files
        .iter()
        .filter_map(|f| f.get("serial").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let visible = match visible_serials(shared).await {
        Ok(visible) => visible,
        Err(err) => return (failure(id, "RESCAN_FAILED", err, true), None),
    };
    let missing: Vec<&String> = serials.iter().filter(|s| !visible.contains(s)).collect();
    if !missing.is_empty() {
        return (
            failure(
                id,
                "DISKS_NOT_VISIBLE",
                format!("disks not visible yet: {missing:?}"),
                true,
            ),
            None,
        );
    }
    let mut state = lock(&shared.state);
    if state
        .databases
        .iter()
        .any(|db| db.name.eq_ignore_ascii_case(&db_name))
    {
        return (
            failure(
                id,
                "DB_NAME_IN_USE",
                format!("a database named '{db_name}' exists"),
                false,
            ),
            None,
        );
    }
    let db_id = state.next_db_id.to_string();
    state.next_db_id += 1;
    let mut mount_points: Vec<MountPoint> = Vec::new();
    let mut inventory_files = Vec::new();
    for (n, file) in files.iter().enumerate() {
        let serial = file
            .get("serial")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let drive = drive_for(serial, &mut state.drives);
        if !mount_points.iter().any(|m| m.serial == serial) {
            mount_points.push(MountPoint {
                kind: "disk".into(),
                path: drive.clone(),
                serial: serial.to_owned(),
            });
        }
        let name = file
            .get("logical_name")
            .and_then(Value::as_str)
            .unwrap_or("file")
            .to_owned();
        let kind = file
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("data")
            .to_owned();
        let extension = if kind == "log" { "ldf" } else { "mdf" };
        inventory_files.push(InventoryFile {
            path: format!("{drive}{db_name}\\{name}.{extension}"),
            name,
            file_id: n as u32 + 1,
            kind,
            size_mb: file.get("size_mb").and_then(Value::as_u64).unwrap_or(0),
        });
    }
    state.databases.push(InventoryDatabase {
        id: db_id.clone(),
        name: db_name,
        status: if target_state == "recovery" {
            "RESTORING".into()
        } else {
            "ONLINE".into()
        },
        files: inventory_files,
        mount_points,
    });
    (
        success(id, json!({"db_id": db_id})),
        Some(state.databases.clone()),
    )
}

fn detach(shared: &Arc<Shared>, id: &str, args: &Value) -> (Reply, Option<Vec<InventoryDatabase>>) {
    let db_id = args
        .get("db_id")
        .and_then(|v| {
            v.as_str()
                .map(str::to_owned)
                .or_else(|| v.as_u64().map(|n| n.to_string()))
        })
        .unwrap_or_default();
    let mut state = lock(&shared.state);
    let Some(position) = state.databases.iter().position(|db| db.id == db_id) else {
        // Already gone: detaching is idempotent.
        return (success(id, json!({"detached": false})), None);
    };
    let removed = state.databases.remove(position);
    for mount in &removed.mount_points {
        let still_used = state
            .databases
            .iter()
            .any(|db| db.mount_points.iter().any(|m| m.serial == mount.serial));
        if !still_used {
            state.drives.remove(&mount.serial);
        }
    }
    (
        success(id, json!({"detached": true})),
        Some(state.databases.clone()),
    )
}

/// Certificate checks switched off, for `--insecure` against a self-signed Flex.
mod insecure {
    use rustls::{
        DigitallySignedStruct, SignatureScheme,
        client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        pki_types::{CertificateDer, ServerName, UnixTime},
    };

    #[derive(Debug)]
    pub struct AcceptAnyCertificate;

    impl ServerCertVerifier for AcceptAnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &rustls::crypto::ring::default_provider().signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &rustls::crypto::ring::default_provider().signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}
