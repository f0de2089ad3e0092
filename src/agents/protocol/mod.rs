//! The agent channel's wire format, version 1: JSON text frames tagged by `type`
//! (`docs/agent-protocol.md`). Shared by Flex's hub and the agent emulator; the commands and
//! their replies are typed in [`commands`].

pub mod commands;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::model::{HostFacts, InventoryDatabase, InventoryFile, MountPoint};

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
    pub facts: HostFacts,
}

/// A command for the agent: the envelope of one of [`commands`]. `id` is deterministic for
/// (task, step, attempt kind): an agent that sees a known id answers with its stored reply
/// instead of acting again. `name` stays a string here so that a receiver can answer a
/// command it does not know (`UNKNOWN_COMMAND`) instead of dropping the message.
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

/// The answer to a command: `result` is the command's reply type when `ok`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: String,
    pub ok: bool,
    #[serde(default)]
    pub result: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

impl Reply {
    /// A successful reply carrying `result`.
    pub fn success(id: &str, result: &impl Serialize) -> Reply {
        Reply {
            id: id.to_owned(),
            ok: true,
            result: serde_json::to_value(result).unwrap_or(Value::Null),
            error: None,
        }
    }

    pub fn failure(id: &str, failure: Failure) -> Reply {
        Reply {
            id: id.to_owned(),
            ok: false,
            result: Value::Null,
            error: Some(failure),
        }
    }
}

/// Why a command failed, and whether trying again may work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub retryable: bool,
}
