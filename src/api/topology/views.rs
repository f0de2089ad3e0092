//! The topology's JSON shapes, as borrowed, typed views of the store's records: with a
//! thousand hosts the document runs to megabytes, so it must not be assembled as a tree of
//! `serde_json::Value`s.

use std::collections::HashMap;

use serde::Serialize;

use crate::{
    api::error::ApiError,
    model::{ConsistencyLevel, FileKind, Lifecycle, SourceDb, serial_for_path},
    store::{DatabaseRecord, DbSnapshotRecord, EchoDbRecord, HostRecord},
};

#[derive(Serialize)]
pub(super) struct HostView<'a> {
    id: &'a str,
    name: &'a str,
    last_seen_ts: i64,
    is_connected: bool,
    os: &'a str,
    os_version: &'a str,
    agent_version: &'a str,
    iqn: &'a str,
    cloud_vendor: &'a str,
    db_vendor: &'a str,
    db_engine_version: &'a str,
    vm_id: &'a str,
    cidrs: &'a [String],
    instance_type: &'a str,
    cpus: u64,
    memory: u64,
    location: &'a str,
    zone: &'a str,
}

pub(super) fn host_view(host: &HostRecord, connected: bool) -> HostView<'_> {
    let facts = &host.facts;
    HostView {
        id: &host.host_id,
        name: &host.host_name,
        last_seen_ts: host.last_seen_ts,
        is_connected: connected,
        os: &host.host_os,
        os_version: &host.host_os_version,
        agent_version: &host.agent_version,
        iqn: &host.host_iqn,
        cloud_vendor: &host.cloud_vendor,
        db_vendor: &host.db_vendor,
        db_engine_version: &host.db_engine_version,
        vm_id: &facts.vm_id,
        cidrs: &facts.cidrs,
        instance_type: &facts.instance_type,
        cpus: facts.cpus,
        memory: facts.memory,
        location: &facts.location,
        zone: &facts.zone,
    }
}

/// A database's fields before `db_snapshot_allowed` and `db_snapshot_disallowed_reason`, which
/// depend on whether its host's agent is connected at the moment of the request.
#[derive(Serialize)]
pub(super) struct DatabaseHead<'a> {
    id: &'a str,
    name: &'a str,
    vendor: &'a str,
    status: &'a str,
    files: Vec<FileView<'a>>,
    db_snapshots: &'a [SnapshotRef<'a>],
}

/// A database's fields after the two that depend on the moment.
#[derive(Serialize)]
pub(super) struct DatabaseTail<'a> {
    parent: Option<&'a Parent<'a>>,
    /// An echo DB's `expires_ts`, `ttl_secs` and `protected`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    lifecycle: Option<Lifecycle>,
}

/// A file as the agent reported it, with the SDP columns joined when its inventory arrived.
#[derive(Serialize)]
struct FileView<'a> {
    sdp_id: &'a str,
    name: &'a str,
    size_mb: u64,
    kind: FileKind,
    path: &'a str,
    volume_id: Option<u64>,
    volume_name: Option<&'a str>,
    volume_group_id: Option<u64>,
    volume_group_name: Option<&'a str>,
    volume_scsi_sn: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct SnapshotRef<'a> {
    id: &'a str,
    timestamp: i64,
    consistency_level: ConsistencyLevel,
    deletable: bool,
    /// The ids of the databases the snapshot holds (clients pick a snapshot by them).
    #[serde(rename = "db_ids", serialize_with = "db_ids")]
    databases: &'a [SourceDb],
    /// The echo DBs made from it, wherever they are: why it is not deletable (absent when
    /// none: a large estate's topology carries a hundred thousand snapshot entries).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    echo_dbs: &'a [EchoDbRef<'a>],
    /// The task that took it: its steps say how long the databases were frozen.
    task_id: &'a str,
}

#[derive(Serialize)]
pub(super) struct EchoDbRef<'a> {
    host_id: &'a str,
    db_id: &'a str,
    name: &'a str,
}

/// The echo DBs made from each snapshot, by snapshot id.
pub(super) fn made_from(echo_dbs: &[EchoDbRecord]) -> HashMap<&str, Vec<EchoDbRef<'_>>> {
    let mut made_from: HashMap<&str, Vec<EchoDbRef<'_>>> = HashMap::new();
    for echo in echo_dbs {
        made_from
            .entry(echo.snapshot_id.as_str())
            .or_default()
            .push(EchoDbRef {
                host_id: &echo.host_id,
                db_id: &echo.db_id,
                name: &echo.name,
            });
    }
    made_from
}

fn db_ids<S: serde::Serializer>(databases: &[SourceDb], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(databases.iter().map(|db| db.db_id.as_str()))
}

#[derive(Serialize)]
#[allow(clippy::struct_field_names)] // the documented field names
pub(super) struct Parent<'a> {
    src_host_id: &'a str,
    src_db_id: &'a str,
    snap_id: &'a str,
}

/// Snapshots by the databases they hold, and the parents of echo DBs: built once per render.
pub(super) struct EchoFacts<'a> {
    snapshots: HashMap<(&'a str, &'a str), Vec<SnapshotRef<'a>>>,
    parents: HashMap<(&'a str, &'a str), Parent<'a>>,
    lifecycles: HashMap<(&'a str, &'a str), Lifecycle>,
}

impl<'a> EchoFacts<'a> {
    pub(super) fn new(
        snapshots: &'a [DbSnapshotRecord],
        echo_dbs: &'a [EchoDbRecord],
        made_from: &'a HashMap<&'a str, Vec<EchoDbRef<'a>>>,
    ) -> EchoFacts<'a> {
        let mut by_db: HashMap<(&'a str, &'a str), Vec<SnapshotRef<'a>>> = HashMap::new();
        for snapshot in snapshots {
            let echo_dbs = made_from
                .get(snapshot.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            for member in &snapshot.databases {
                by_db
                    .entry((snapshot.host_id.as_str(), member.db_id.as_str()))
                    .or_default()
                    .push(SnapshotRef {
                        id: &snapshot.id,
                        timestamp: snapshot.created_ts,
                        consistency_level: snapshot.consistency_level,
                        deletable: echo_dbs.is_empty(),
                        databases: &snapshot.databases,
                        echo_dbs,
                        task_id: &snapshot.task_id,
                    });
            }
        }
        let parents = echo_dbs
            .iter()
            .map(|echo| {
                (
                    (echo.host_id.as_str(), echo.db_id.as_str()),
                    Parent {
                        src_host_id: &echo.src_host_id,
                        src_db_id: &echo.src_db_id,
                        snap_id: &echo.snapshot_id,
                    },
                )
            })
            .collect();
        let lifecycles = echo_dbs
            .iter()
            .map(|echo| ((echo.host_id.as_str(), echo.db_id.as_str()), echo.lifecycle))
            .collect();
        EchoFacts {
            snapshots: by_db,
            parents,
            lifecycles,
        }
    }

    /// `db`'s fields, but for the two that depend on the moment.
    pub(super) fn database(
        &'a self,
        db: &'a DatabaseRecord,
    ) -> (DatabaseHead<'a>, DatabaseTail<'a>) {
        let key = (db.host_id.as_str(), db.db_id.as_str());
        let files = db
            .files
            .iter()
            .map(|stored| {
                let file = &stored.file;
                let sdp = stored.sdp.as_ref();
                FileView {
                    volume_scsi_sn: serial_for_path(&file.path, &db.mount_points),
                    sdp_id: sdp.map_or("", |s| s.sdp_id.as_str()),
                    name: &file.name,
                    size_mb: file.size_mb,
                    kind: file.kind,
                    path: &file.path,
                    volume_id: sdp.map(|s| s.volume_id),
                    volume_name: sdp.map(|s| s.volume_name.as_str()),
                    volume_group_id: sdp.and_then(|s| s.volume_group_id),
                    volume_group_name: sdp.and_then(|s| s.volume_group_name.as_deref()),
                }
            })
            .collect();
        let head = DatabaseHead {
            id: &db.db_id,
            name: &db.name,
            vendor: &db.vendor,
            status: &db.status,
            files,
            db_snapshots: self
                .snapshots
                .get(&key)
                .map(Vec::as_slice)
                .unwrap_or_default(),
        };
        let tail = DatabaseTail {
            parent: self.parents.get(&key),
            lifecycle: self.lifecycles.get(&key).copied(),
        };
        (head, tail)
    }
}

/// Why a snapshot of the database cannot be taken now (empty when it can).
pub(super) fn disallowed_reason(
    host_id: &str,
    connected: bool,
    db_name: &str,
    status: &str,
) -> String {
    if !connected {
        format!("the agent of host '{host_id}' is not connected")
    } else if !status.eq_ignore_ascii_case("ONLINE") {
        format!("database '{db_name}' is {status}, not ONLINE")
    } else {
        String::new()
    }
}

/// Appends `value`'s JSON to `out`.
pub(super) fn append_json(out: &mut Vec<u8>, value: &impl Serialize) -> Result<(), ApiError> {
    serde_json::to_writer(out, value).map_err(|err| ApiError::Internal(err.to_string()))
}
