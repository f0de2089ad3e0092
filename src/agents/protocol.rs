//! The agent channel's wire format, version 1: JSON text frames tagged by `type`
//! (`docs/agent-protocol.md`). Shared by Flex's hub and the agent emulator.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const PROTOCOL_VERSION: u32 = 1;

/// Messages an agent sends.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    Hello(Hello),
    Heartbeat {},
    Inventory { databases: Vec<InventoryDatabase> },
    Reply(Reply),
}

/// Messages Flex sends.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FlexMessage {
    Welcome {
        protocol: u32,
        host_id: String,
        heartbeat_secs: u64,
    },
    Command(Command),
    Error {
        code: String,
        message: String,
    },
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    #[serde(default)]
    pub host_name: String,
    #[serde(default)]
    pub host_iqn: String,
    #[serde(default)]
    pub host_os: String,
    #[serde(default)]
    pub host_os_version: String,
    #[serde(default)]
    pub agent_version: String,
    #[serde(default)]
    pub cloud_vendor: String,
    #[serde(default)]
    pub db_engine_version: String,
    /// vm_id, cidrs, instance_type, cpus, memory, location, zone.
    #[serde(default)]
    pub facts: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InventoryDatabase {
    pub id: String,
    pub name: String,
    #[serde(default = "online")]
    pub status: String,
    #[serde(default)]
    pub files: Vec<InventoryFile>,
    #[serde(default)]
    pub mount_points: Vec<MountPoint>,
}

fn online() -> String {
    "ONLINE".to_owned()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InventoryFile {
    pub name: String,
    #[serde(default)]
    pub file_id: u32,
    /// `data` or `log`.
    pub kind: String,
    pub path: String,
    #[serde(default)]
    pub size_mb: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MountPoint {
    #[serde(default = "disk")]
    pub kind: String,
    pub path: String,
    /// The SCSI serial of the disk: joins the database to its SDP volume.
    pub serial: String,
}

fn disk() -> String {
    "disk".to_owned()
}

/// A command for the agent. `id` is deterministic for (task, step, attempt kind): an agent
/// that sees a known id answers with its stored reply instead of acting again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub args: Value,
    /// Unix milliseconds after which Flex no longer waits for the reply.
    pub deadline_ms: i64,
    /// The `hs-ref-id` of the task the command serves, for the host's own logs.
    #[serde(default)]
    pub ref_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: String,
    pub ok: bool,
    #[serde(default)]
    pub result: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub retryable: bool,
}
