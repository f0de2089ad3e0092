//! Topology: every host, its SDPs and its databases in one document, in the shape of the real
//! Flex's response (`reference/topology-example.json`). Built from one query per table, joined
//! in memory, so its cost does not grow with one round trip per host.

use std::collections::HashMap;

use axum::{Json, Router, extract::State, routing::get};
use serde::Serialize;
use serde_json::{Value, json};

use super::{AppState, error::ApiError, hosts::is_connected};
use crate::store::{DatabaseRecord, DbSnapshotRecord, EchoDbRecord, HostRecord, now_ts};

pub fn routes() -> Router<AppState> {
    Router::new().route("/topology", get(topology))
}

#[derive(Serialize)]
struct TopologyEntry {
    host: Value,
    sdps: Vec<Value>,
    databases: Vec<Value>,
}

async fn topology(State(state): State<AppState>) -> Result<Json<Vec<TopologyEntry>>, ApiError> {
    let hosts = state.store.list_hosts().await?;
    let mut databases_by_host: HashMap<String, Vec<DatabaseRecord>> = HashMap::new();
    for db in state.store.list_all_databases().await? {
        databases_by_host
            .entry(db.host_id.clone())
            .or_default()
            .push(db);
    }
    let snapshots = state.store.list_db_snapshots().await?;
    let echo_dbs = state.store.list_echo_dbs().await?;
    let echo = EchoFacts::new(&snapshots, &echo_dbs);
    let now = now_ts();
    let entries = hosts
        .into_iter()
        .map(|host| {
            let connected = is_connected(&host, &state, now);
            let databases = databases_by_host
                .remove(&host.host_id)
                .unwrap_or_default()
                .into_iter()
                .map(|db| database_entry(db, &host, connected, &echo))
                .collect();
            TopologyEntry {
                host: host_entry(&host, connected),
                sdps: host
                    .facts_json()
                    .get("sdps")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                databases,
            }
        })
        .collect();
    Ok(Json(entries))
}

fn host_entry(host: &HostRecord, connected: bool) -> Value {
    let facts = host.facts_json();
    let fact = |key: &str, default: Value| facts.get(key).cloned().unwrap_or(default);
    json!({
        "id": host.host_id,
        "name": host.host_name,
        "last_seen_ts": host.last_seen_ts,
        "is_connected": connected,
        "os": host.host_os,
        "os_version": host.host_os_version,
        "agent_version": host.agent_version,
        "iqn": host.host_iqn,
        "cloud_vendor": host.cloud_vendor,
        "db_vendor": host.db_vendor,
        "db_engine_version": host.db_engine_version,
        "vm_id": fact("vm_id", json!("")),
        "cidrs": fact("cidrs", json!([])),
        "instance_type": fact("instance_type", json!("")),
        "cpus": fact("cpus", json!(0)),
        "memory": fact("memory", json!(0)),
        "location": fact("location", json!("")),
        "zone": fact("zone", json!("")),
    })
}

/// Snapshots by the databases they hold, and the parents of echo DBs: built once per request.
struct EchoFacts {
    /// (host, db id) → snapshots holding that database.
    snapshots: HashMap<(String, String), Vec<Value>>,
    /// (host, db id) → parent of that echo DB.
    parents: HashMap<(String, String), Value>,
}

impl EchoFacts {
    fn new(snapshots: &[DbSnapshotRecord], echo_dbs: &[EchoDbRecord]) -> EchoFacts {
        let mut in_use: HashMap<&str, usize> = HashMap::new();
        for echo in echo_dbs {
            *in_use.entry(echo.snapshot_id.as_str()).or_default() += 1;
        }
        let mut by_db: HashMap<(String, String), Vec<Value>> = HashMap::new();
        for snapshot in snapshots {
            let databases: Vec<Value> =
                serde_json::from_str(&snapshot.databases).unwrap_or_default();
            for db in databases {
                let db_id = db["db_id"].as_str().unwrap_or_default().to_owned();
                by_db
                    .entry((snapshot.host_id.clone(), db_id))
                    .or_default()
                    .push(json!({
                        "id": snapshot.id,
                        "timestamp": snapshot.created_ts,
                        "consistency_level": snapshot.consistency_level,
                        "deletable": !in_use.contains_key(snapshot.id.as_str()),
                    }));
            }
        }
        let parents = echo_dbs
            .iter()
            .map(|echo| {
                (
                    (echo.host_id.clone(), echo.db_id.clone()),
                    json!({
                        "src_host_id": echo.src_host_id,
                        "src_db_id": echo.src_db_id,
                        "snap_id": echo.snapshot_id,
                    }),
                )
            })
            .collect();
        EchoFacts {
            snapshots: by_db,
            parents,
        }
    }
}

fn database_entry(
    db: DatabaseRecord,
    host: &HostRecord,
    connected: bool,
    echo: &EchoFacts,
) -> Value {
    let key = (host.host_id.clone(), db.db_id.clone());
    let db_snapshots = echo.snapshots.get(&key).cloned().unwrap_or_default();
    let parent = echo.parents.get(&key).cloned().unwrap_or(Value::Null);
    let mount_points = super::hosts::parse_array(&db.mount_points);
    let files: Vec<Value> = super::hosts::parse_array(&db.files)
        .as_array()
        .map(|files| {
            files
                .iter()
                .map(|file| file_entry(file, &mount_points))
                .collect()
        })
        .unwrap_or_default();
    let disallowed_reason = if !connected {
        format!("the agent of host '{}' is not connected", host.host_id)
    } else if !db.status.eq_ignore_ascii_case("ONLINE") {
        format!("database '{}' is {}, not ONLINE", db.name, db.status)
    } else {
        String::new()
    };
    json!({
        "id": db.db_id,
        "name": db.name,
        "vendor": db.vendor,
        "status": db.status,
        "files": files,
        "db_snapshots": db_snapshots,
        "db_snapshot_allowed": disallowed_reason.is_empty(),
        "db_snapshot_disallowed_reason": disallowed_reason,
        "parent": parent,
    })
}

/// A file with the serial of the volume it lives on: the mount point whose path is the longest
/// prefix of the file's path (Windows paths, so compared without case). The SDP columns stay
/// empty until an SDP is configured to join the serial to its volume and volume group.
fn file_entry(file: &Value, mount_points: &Value) -> Value {
    let path = file.get("path").and_then(Value::as_str).unwrap_or_default();
    let mounts = mount_points
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let serial = crate::store::serial_for_path(path, mounts);
    // The SDP columns were joined when the inventory arrived (agents::inventory).
    let joined = |key: &str| file.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "sdp_id": file.get("sdp_id").cloned().unwrap_or(json!("")),
        "name": file.get("name").cloned().unwrap_or(json!("")),
        "size_mb": file.get("size_mb").cloned().unwrap_or(json!(0)),
        "kind": file.get("kind").cloned().unwrap_or(json!("data")),
        "path": path,
        "volume_id": joined("volume_id"),
        "volume_name": joined("volume_name"),
        "volume_group_id": joined("volume_group_id"),
        "volume_group_name": joined("volume_group_name"),
        "volume_scsi_sn": serial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_take_the_serial_of_the_deepest_mount_point() {
        let mounts = json!([
            {"kind": "disk", "path": "E:\\", "serial": "E1"},
            {"kind": "disk", "path": "E:\\Data\\Big\\", "serial": "BIG"},
        ]);
        let deep = file_entry(
            &json!({"name": "x", "path": "e:\\data\\big\\x.mdf"}),
            &mounts,
        );
        assert_eq!(deep["volume_scsi_sn"], "BIG");
        let shallow = file_entry(&json!({"name": "y", "path": "E:\\Logs\\y.ldf"}), &mounts);
        assert_eq!(shallow["volume_scsi_sn"], "E1");
        let none = file_entry(&json!({"name": "z", "path": "F:\\z.mdf"}), &mounts);
        assert_eq!(none["volume_scsi_sn"], Value::Null);
    }
}
