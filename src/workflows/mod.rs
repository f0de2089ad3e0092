//! The Echo workflows: one list of named steps per command type, with their undo, and the
//! dependencies the steps use (SDP client, agents, store, metrics). Each step is idempotent:
//! SDP names derive from the task id, so a create whose name is taken finds its own earlier
//! object (see `together`). The executor runs the steps, checkpoints after each, and undoes in
//! reverse; [`catalogue`] is what it is given.
//!
//! Every workflow reads here, on one screen, top to bottom.

mod context;
mod delete_snapshot;
mod import;
pub mod names;
pub mod reconcile;
mod refresh;
mod removal;
pub mod requests;
mod retention;
mod sdp_hosts;
mod snapshot;
mod together;
pub mod validate;

use std::{sync::Arc, time::Duration};

pub use context::{EchoCx, EchoDeps, EchoState};
pub use delete_snapshot::{
    DeleteSnapshotError, delete_snapshot_now, importing as importing_message, snapshot_users,
};
pub use requests::EchoRequest;

use crate::{
    executor::{Catalogue, Context, Step, TaskRef, Workflow},
    model::CommandType,
};

/// The `ref_id` of the delete Flex starts when an echo DB expires.
pub const EXPIRY_REF_ID: &str = "expiry";
/// The `ref_id` of a snapshot schedule's runs.
pub const SCHEDULE_REF_ID: &str = "schedule";
/// The `ref_id` of the snapshot deletes a schedule's retention starts.
pub const RETENTION_REF_ID: &str = "retention";
/// Where the tasks Flex starts by itself are found.
pub const AUTOMATIC_TASKS: &str = "/api/echo/v1/tasks";

/// Long agent commands (freeze, attach) get this long to answer.
const AGENT_DEADLINE: Duration = Duration::from_secs(30);
/// A thin clone must be listed by the array within this long.
const CLONE_APPEAR_TIMEOUT: Duration = Duration::from_secs(30);

type EchoStep = Step<EchoCx>;

// The snapshot: find the volumes, freeze, snapshot each volume group, thaw, record.
const RESOLVE_SOURCE_VOLUMES: EchoStep =
    Step::new("resolve_source_volumes", snapshot::resolve_sources);
const FREEZE_DATABASES: EchoStep =
    Step::new("freeze_databases", snapshot::freeze).undo(snapshot::thaw_quietly);
const SNAPSHOT_VOLUME_GROUPS: EchoStep =
    Step::new("snapshot_volume_groups", snapshot::snapshot_volume_groups)
        .undo(snapshot::delete_volume_group_snapshots);
const THAW_DATABASES: EchoStep = Step::new("thaw_databases", snapshot::thaw);
const RECORD_DB_SNAPSHOT: EchoStep =
    Step::new("record_db_snapshot", snapshot::record_snapshot).undo(snapshot::forget_snapshot);

// The import, per destination: host object, clones, mappings, rescan, attach, record.
const ENSURE_SDP_HOSTS: EchoStep =
    Step::new("ensure_sdp_hosts", sdp_hosts::ensure_sdp_hosts).undo(sdp_hosts::release_sdp_hosts);
const CLONE_VOLUMES: EchoStep =
    Step::new("clone_volumes", import::clone_volumes).undo(import::delete_clones);
const MAP_CLONES: EchoStep = Step::new("map_clones", import::map_clones).undo(import::unmap_clones);
const RESCAN_DISKS: EchoStep = Step::new("rescan_disks", import::rescan);
const ATTACH_DATABASES: EchoStep =
    Step::new("attach_databases", import::attach).undo(import::detach);
const RECORD_ECHO_DBS: EchoStep =
    Step::new("record_echo_dbs", import::record_echo_dbs).undo(import::forget_echo_dbs);

/// `CreateDBSnapshotCommand`.
static SNAPSHOT: &[EchoStep] = &[
    RESOLVE_SOURCE_VOLUMES,
    FREEZE_DATABASES,
    SNAPSHOT_VOLUME_GROUPS,
    THAW_DATABASES,
    RECORD_DB_SNAPSHOT,
    // A schedule's run: its oldest snapshots beyond keep_last go (never fails the snapshot).
    Step::new("apply_retention", retention::apply_retention),
];

/// `CreateCloneCommand`: the snapshot, then an import of it.
static CLONE: &[EchoStep] = &[
    RESOLVE_SOURCE_VOLUMES,
    FREEZE_DATABASES,
    SNAPSHOT_VOLUME_GROUPS,
    THAW_DATABASES,
    RECORD_DB_SNAPSHOT,
    Step::new("plan_clone", import::plan_clone),
    ENSURE_SDP_HOSTS,
    CLONE_VOLUMES,
    MAP_CLONES,
    RESCAN_DISKS,
    ATTACH_DATABASES,
    RECORD_ECHO_DBS,
];

/// `ImportDBSnapshotCommand`: clones of an existing snapshot.
static IMPORT: &[EchoStep] = &[
    Step::new("plan_import", import::plan_import),
    ENSURE_SDP_HOSTS,
    CLONE_VOLUMES,
    MAP_CLONES,
    RESCAN_DISKS,
    ATTACH_DATABASES,
    RECORD_ECHO_DBS,
];

/// `ReplaceDBCommand`: the named echo DBs are taken away (forward only: once the first is
/// detached an abort waits until all are gone), then imported again from the newer snapshot
/// under the same names.
static REFRESH: &[EchoStep] = &[
    Step::new("plan_refresh", refresh::plan_refresh),
    Step::new("detach_old_databases", removal::detach_old).forward_only(),
    Step::new("unmap_old_clones", removal::unmap_old).forward_only(),
    Step::new("delete_old_clones", removal::delete_old_clones).forward_only(),
    Step::new("forget_old_echo_dbs", removal::forget_old).forward_only(),
    ENSURE_SDP_HOSTS,
    CLONE_VOLUMES,
    MAP_CLONES,
    RESCAN_DISKS,
    ATTACH_DATABASES,
    RECORD_ECHO_DBS,
];

/// `DeleteCommand`: detach, unmap, delete the clones, release the SDP host object, forget
/// (forward only: once the database is detached, the delete runs to its end).
static DELETE_ECHO_DB: &[EchoStep] = &[
    Step::new("load_echo_db", removal::load_echo_db),
    Step::new("detach_database", removal::detach_old).forward_only(),
    Step::new("unmap_clones", removal::unmap_old).forward_only(),
    Step::new("delete_clones", removal::delete_old_clones).forward_only(),
    Step::new("release_sdp_hosts", removal::release_old_hosts).forward_only(),
    Step::new("forget_echo_db", removal::forget_old).forward_only(),
];

/// `DeleteDBSnapshotCommand`.
static DELETE_SNAPSHOT: &[EchoStep] = &[
    Step::new(
        "check_snapshot_unused",
        delete_snapshot::check_snapshot_unused,
    ),
    Step::new(
        "delete_volume_group_snapshots",
        delete_snapshot::delete_snapshot_objects,
    )
    .forward_only(),
];

/// The command types Flex runs, and their steps.
pub const WORKFLOWS: [(CommandType, &[EchoStep]); 6] = [
    (CommandType::CreateDbSnapshot, SNAPSHOT),
    (CommandType::CreateClone, CLONE),
    (CommandType::ImportDbSnapshot, IMPORT),
    (CommandType::ReplaceDb, REFRESH),
    (CommandType::Delete, DELETE_ECHO_DB),
    (CommandType::DeleteDbSnapshot, DELETE_SNAPSHOT),
];

/// One command type's workflow, with the dependencies its steps use.
struct EchoWorkflow {
    command: CommandType,
    steps: &'static [EchoStep],
    deps: Arc<EchoDeps>,
}

impl Workflow for EchoWorkflow {
    type Cx = EchoCx;

    fn steps(&self) -> &'static [EchoStep] {
        self.steps
    }

    fn open(
        &self,
        task: TaskRef,
        request: &str,
        state: <EchoCx as Context>::State,
    ) -> Result<EchoCx, String> {
        Ok(EchoCx {
            deps: self.deps.clone(),
            request: EchoRequest::decode(self.command, request)?,
            task,
            state,
            detail: crate::model::StepDetail::default(),
        })
    }
}

/// What the executor is given: every Echo workflow, over these dependencies.
pub fn catalogue(deps: EchoDeps) -> Catalogue {
    let deps = Arc::new(deps);
    WORKFLOWS
        .into_iter()
        .fold(Catalogue::new(), |catalogue, (command, steps)| {
            catalogue.with(
                command,
                EchoWorkflow {
                    command,
                    steps,
                    deps: deps.clone(),
                },
            )
        })
}
