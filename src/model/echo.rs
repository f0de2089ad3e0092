//! Echo's own terms: how consistent a snapshot is, what state a clone is attached in, what a
//! db snapshot holds, which array volumes an echo DB lives on, and the kinds of SDP objects
//! Flex accounts for in its ledger.

use serde::{Deserialize, Serialize};

use super::FileKind;

crate::wire_enum! {
    /// How a db snapshot is taken.
    pub enum ConsistencyLevel ("consistency level") {
        /// Databases frozen (writes held) while the array snapshots their volumes.
        Application = "application",
        /// The array's snapshots only, as after a power cut.
        Crash = "crash",
    }
}

crate::wire_enum! {
    /// The state a clone is attached in.
    pub enum TargetState ("target state") {
        Online = "online",
        /// Restoring: ready for log shipping or further restores.
        Recovery = "recovery",
    }
}

crate::wire_enum! {
    /// The kinds of SDP object Flex creates, and so keeps in its ledger until they are gone.
    pub enum LedgerKind ("ledger kind") {
        VgSnapshot = "vg_snapshot",
        /// A thin clone.
        Volume = "volume",
        Mapping = "mapping",
        Host = "host",
        HostIqn = "host_iqn",
    }
}

/// A file of a source database as a snapshot froze it, and the SDP volume under it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceFile {
    pub name: String,
    pub kind: FileKind,
    pub path: String,
    pub size_mb: u64,
    pub serial: String,
    pub volume_id: u64,
    pub vg_id: u64,
}

/// A database a db snapshot holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceDb {
    pub db_id: String,
    pub db_name: String,
    pub files: Vec<SourceFile>,
}

impl SourceDb {
    /// The distinct source volumes (with their volume group) the database's files live on.
    pub fn volumes(&self) -> Vec<(u64, u64)> {
        let mut volumes: Vec<(u64, u64)> =
            self.files.iter().map(|f| (f.volume_id, f.vg_id)).collect();
        volumes.sort_unstable();
        volumes.dedup();
        volumes
    }
}

/// The SDP snapshot of one volume group, taken for a db snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VgSnapshot {
    pub vg_id: u64,
    pub sdp_snapshot_id: u64,
}

/// A thin clone an echo DB lives on, with what maps it to its host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EchoVolume {
    pub volume_id: u64,
    #[serde(default)]
    pub serial: String,
    #[serde(default)]
    pub mapping_id: Option<u64>,
    #[serde(default)]
    pub sdp_host_id: Option<u64>,
}

/// When an echo DB goes away by itself, and whether it may be taken away at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Epoch seconds after which Flex deletes it; `None`: never.
    #[serde(default)]
    pub expires_ts: Option<i64>,
    /// What a keep-alive adds to now when it names no ttl of its own.
    #[serde(default)]
    pub ttl_secs: Option<i64>,
    /// Refuses every delete (and a refresh) and never expires.
    #[serde(default)]
    pub protected: bool,
}

impl Lifecycle {
    /// A new echo DB's: it expires `ttl_secs` from `now` when given one.
    pub fn starting(now: i64, ttl_secs: Option<i64>, protected: bool) -> Lifecycle {
        Lifecycle {
            expires_ts: ttl_secs.map(|ttl| now + ttl),
            ttl_secs,
            protected,
        }
    }
}
