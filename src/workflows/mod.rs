//! The Echo workflows (DESIGN.md §6), one list of named steps per command type. Each step is
//! idempotent (it looks up before it creates, with SDP names derived from the task id) and
//! most have an undo; the executor runs them, checkpoints after each, and undoes in reverse.

mod delete;
mod import;
mod snapshot;
pub mod validate;

use serde::{Deserialize, Serialize};

use crate::executor::Step;

/// What a snapshot is taken of.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotSpec {
    pub source_host_id: String,
    pub database_ids: Vec<String>,
    pub name_prefix: String,
    /// `application` (freeze, snapshot, thaw) or `crash` (snapshot only).
    pub consistency_level: String,
    #[serde(default)]
    pub force_vss_usage: bool,
}

/// Where a clone goes: the source database `db_id`, attached on `host_id` as `db_name`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Destination {
    pub host_id: String,
    pub db_id: String,
    pub db_name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CloneRequest {
    pub snapshot: SnapshotSpec,
    pub destinations: Vec<Destination>,
    pub target_state: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportRequest {
    pub snapshot_id: String,
    pub destinations: Vec<Destination>,
    pub target_state: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeleteEchoDbRequest {
    pub host_id: String,
    pub database_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeleteSnapshotRequest {
    pub snapshot_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefreshRequest {
    pub host_id: String,
    pub snapshot_id: String,
    pub db_names: Vec<String>,
    pub target_state: String,
}

pub const SNAPSHOT: &str = "CreateDBSnapshotCommand";
pub const CLONE: &str = "CreateCloneCommand";
pub const IMPORT: &str = "ImportDBSnapshotCommand";
pub const DELETE_ECHO_DB: &str = "DeleteCommand";
pub const DELETE_SNAPSHOT: &str = "DeleteDBSnapshotCommand";
pub const REFRESH: &str = "ReplaceDBCommand";

/// The steps of a command type, in order; the whole sequence of each workflow reads here.
pub fn steps_for(command_type: &str) -> Vec<Step> {
    let snapshot = [
        Step::new("resolve_source_volumes", snapshot::resolve_sources),
        Step::new("freeze_databases", snapshot::freeze).undo(snapshot::thaw_quietly),
        Step::new("snapshot_volume_groups", snapshot::snapshot_volume_groups)
            .undo(snapshot::delete_volume_group_snapshots),
        Step::new("thaw_databases", snapshot::thaw),
        Step::new("record_db_snapshot", snapshot::record_snapshot).undo(snapshot::forget_snapshot),
    ];
    let import = [
        Step::new("ensure_sdp_hosts", import::ensure_sdp_hosts).undo(import::release_sdp_hosts),
        Step::new("clone_volumes", import::clone_volumes).undo(import::delete_clones),
        Step::new("map_clones", import::map_clones).undo(import::unmap_clones),
        Step::new("rescan_disks", import::rescan),
        Step::new("attach_databases", import::attach).undo(import::detach),
        Step::new("record_echo_dbs", import::record_echo_dbs).undo(import::forget_echo_dbs),
    ];
    match command_type {
        SNAPSHOT => snapshot.to_vec(),
        CLONE => snapshot
            .into_iter()
            .chain([Step::new("plan_clone", import::plan_clone)])
            .chain(import)
            .collect(),
        IMPORT => [Step::new("plan_import", import::plan_import)]
            .into_iter()
            .chain(import)
            .collect(),
        REFRESH => [
            Step::new("plan_refresh", delete::plan_refresh),
            Step::new("detach_old_databases", delete::detach_old),
            Step::new("unmap_old_clones", delete::unmap_old),
            Step::new("delete_old_clones", delete::delete_old_clones),
            Step::new("forget_old_echo_dbs", delete::forget_old),
        ]
        .into_iter()
        .chain(import)
        .collect(),
        DELETE_ECHO_DB => vec![
            Step::new("load_echo_db", delete::load_echo_db),
            Step::new("detach_database", delete::detach_old),
            Step::new("unmap_clones", delete::unmap_old),
            Step::new("delete_clones", delete::delete_old_clones),
            Step::new("release_sdp_hosts", delete::release_old_hosts),
            Step::new("forget_echo_db", delete::forget_old),
        ],
        DELETE_SNAPSHOT => vec![
            Step::new("check_snapshot_unused", delete::check_snapshot_unused),
            Step::new(
                "delete_volume_group_snapshots",
                delete::delete_snapshot_objects,
            ),
        ],
        _ => Vec::new(),
    }
}

pub use delete::{DeleteSnapshotError, delete_snapshot_now};

/// Long agent commands (freeze, attach) get this long to answer.
const AGENT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// A thin clone must be listed by the array within this long.
const CLONE_APPEAR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
