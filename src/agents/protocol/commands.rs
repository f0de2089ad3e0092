//! The commands Flex sends to a host's agent, and their replies: one struct each, shared by
//! the sender (Flex's workflows, through the hub) and the receiver (the agent emulator), so
//! the protocol document, the sender and the receiver cannot drift apart.
//!
//! On the wire a command travels in the [`Command`] envelope as `name` and `args`; a reply as
//! the `result` of a [`Reply`](super::Reply). [`HostCommand`] ties each argument struct to its
//! name and reply type; [`Request`] is what a receiver decodes an envelope into.

use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};

use super::{Command, Failure};
use crate::model::{FileKind, TargetState};

crate::wire_enum! {
    /// The commands of protocol version 1.
    pub enum CommandName ("agent command") {
        Freeze = "freeze",
        Thaw = "thaw",
        Rescan = "rescan",
        Attach = "attach",
        Detach = "detach",
    }
}

/// The arguments of one command, its name on the wire and the type of its reply.
pub trait HostCommand: Serialize + DeserializeOwned + Send {
    const NAME: CommandName;
    type Reply: Serialize + DeserializeOwned + Send;
}

crate::wire_enum! {
    /// How a host holds writes for an application-consistent snapshot.
    pub enum FreezeMode ("freeze mode") {
        /// The Volume Shadow Copy Service.
        Vss = "vss",
        /// SQL Server's own `SUSPEND_FOR_SNAPSHOT_BACKUP`.
        Tsql = "tsql",
    }
}

/// Hold writes to these databases; the host thaws by itself when its window ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Freeze {
    pub db_ids: Vec<String>,
    pub mode: FreezeMode,
    /// The longest Flex wants writes held; the host holds them at most this long (and at most
    /// its own window). 0 or absent: the host's own window.
    #[serde(default)]
    pub window_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FreezeReply {
    pub freeze_id: String,
    /// How long the host will hold writes.
    pub window_ms: u64,
    #[serde(default)]
    pub db_ids: Vec<String>,
}

impl HostCommand for Freeze {
    const NAME: CommandName = CommandName::Freeze;
    type Reply = FreezeReply;
}

/// Resume writes held by a freeze.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thaw {
    pub freeze_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThawReply {
    /// False when the window ended before the thaw: the snapshot is not application-consistent.
    pub held: bool,
    /// How long writes were held.
    pub frozen_ms: u64,
}

impl HostCommand for Thaw {
    const NAME: CommandName = CommandName::Thaw;
    type Reply = ThawReply;
}

/// Look for new disks; report which of `serials` the host sees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rescan {
    pub serials: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RescanReply {
    /// Those of `serials` the host sees as disks now.
    pub visible: Vec<String>,
    /// Every disk mapped to the host.
    #[serde(default)]
    pub all: Vec<String>,
}

impl HostCommand for Rescan {
    const NAME: CommandName = CommandName::Rescan;
    type Reply = RescanReply;
}

/// Attach a database from cloned disks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attach {
    pub db_name: String,
    pub target_state: TargetState,
    pub files: Vec<AttachFile>,
}

/// A file of the database to attach, on the disk with `serial`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachFile {
    pub logical_name: String,
    pub kind: FileKind,
    pub serial: String,
    /// Where the file lived on the source host.
    pub source_path: String,
    #[serde(default)]
    pub size_mb: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachReply {
    /// The new database's id on the host (the agent may send it as a number).
    #[serde(deserialize_with = "string_or_number")]
    pub db_id: String,
}

impl HostCommand for Attach {
    const NAME: CommandName = CommandName::Attach;
    type Reply = AttachReply;
}

/// Detach a database and release its disks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detach {
    #[serde(deserialize_with = "string_or_number")]
    pub db_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetachReply {
    /// False when the database was already gone.
    pub detached: bool,
}

impl HostCommand for Detach {
    const NAME: CommandName = CommandName::Detach;
    type Reply = DetachReply;
}

/// A command as its receiver reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Freeze(Freeze),
    Thaw(Thaw),
    Rescan(Rescan),
    Attach(Attach),
    Detach(Detach),
}

impl Request {
    /// Reads an envelope's arguments by its name. An unknown name or unreadable arguments is
    /// the failure to answer with (`UNKNOWN_COMMAND`, `BAD_ARGS`).
    pub fn decode(command: &Command) -> Result<Request, Failure> {
        fn args<C: HostCommand>(command: &Command) -> Result<C, Failure> {
            serde_json::from_value(command.args.clone()).map_err(|err| Failure {
                code: "BAD_ARGS".into(),
                message: format!("'{}' arguments: {err}", C::NAME),
                retryable: false,
            })
        }
        let name = CommandName::parse(&command.name).ok_or_else(|| Failure {
            code: "UNKNOWN_COMMAND".into(),
            message: format!("no command '{}'", command.name),
            retryable: false,
        })?;
        Ok(match name {
            CommandName::Freeze => Request::Freeze(args(command)?),
            CommandName::Thaw => Request::Thaw(args(command)?),
            CommandName::Rescan => Request::Rescan(args(command)?),
            CommandName::Attach => Request::Attach(args(command)?),
            CommandName::Detach => Request::Detach(args(command)?),
        })
    }

    pub fn name(&self) -> CommandName {
        match self {
            Request::Freeze(_) => CommandName::Freeze,
            Request::Thaw(_) => CommandName::Thaw,
            Request::Rescan(_) => CommandName::Rescan,
            Request::Attach(_) => CommandName::Attach,
            Request::Detach(_) => CommandName::Detach,
        }
    }
}

/// Ids that some agents send as numbers.
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Number(u64),
    }
    Ok(match Either::deserialize(deserializer)? {
        Either::Text(text) => text,
        Either::Number(number) => number.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope(name: &str, args: serde_json::Value) -> Command {
        Command {
            id: "t:step:0".into(),
            name: name.into(),
            args,
            deadline_ms: 0,
            ref_id: String::new(),
        }
    }

    #[test]
    fn a_receiver_reads_what_a_sender_wrote() {
        let sent = Attach {
            db_name: "sales_copy".into(),
            target_state: TargetState::Recovery,
            files: vec![AttachFile {
                logical_name: "sales_data".into(),
                kind: FileKind::Data,
                serial: "1344090007".into(),
                source_path: "E:\\sales\\sales_data.mdf".into(),
                size_mb: 8,
            }],
        };
        let command = envelope("attach", serde_json::to_value(&sent).unwrap());
        assert_eq!(Request::decode(&command).unwrap(), Request::Attach(sent));
    }

    #[test]
    fn unknown_commands_and_bad_arguments_are_refusals() {
        let unknown = Request::decode(&envelope("reboot", json!({}))).unwrap_err();
        assert_eq!(
            (unknown.code.as_str(), unknown.retryable),
            ("UNKNOWN_COMMAND", false)
        );
        let bad = Request::decode(&envelope("freeze", json!({"db_ids": "5"}))).unwrap_err();
        assert_eq!(bad.code, "BAD_ARGS");
        let detach = Request::decode(&envelope("detach", json!({"db_id": 7}))).unwrap();
        assert_eq!(detach, Request::Detach(Detach { db_id: "7".into() }));
    }
}
