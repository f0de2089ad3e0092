//! Import steps, per destination: thin clones of the source volumes from the VG snapshots,
//! mappings to the destination's SDP host object (see `sdp_hosts`), a rescan until the disks
//! show, attach, and the echo DB record.

use serde::{Deserialize, Serialize};

use super::{
    CLONE_APPEAR_TIMEOUT,
    context::EchoCx,
    removal::OldEcho,
    requests::{ClonedDb, DbId, Destination, EchoRequest, TaskResult},
    together::{create_or_find, keep_all, together},
};
use crate::{
    agents::protocol::commands::{Attach, AttachFile, Detach, Rescan},
    clock::now_ts,
    executor::{StepError, StepFuture},
    model::{EchoVolume, LedgerKind, Lifecycle, SourceDb, TargetState, VgSnapshot},
    store::EchoDbRecord,
};

/// A thin clone made for one destination, of one source volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloneVolume {
    pub dest: usize,
    pub host_id: String,
    pub source_volume_id: u64,
    pub clone_id: u64,
    pub serial: String,
    #[serde(default)]
    pub mapping_id: Option<u64>,
}

/// A database attached on a destination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attached {
    pub dest: usize,
    pub host_id: String,
    pub db_id: String,
    pub db_name: String,
}

/// What an import works from; set by the plan step of each workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportPlan {
    pub snapshot_id: String,
    pub destinations: Vec<Destination>,
    pub target_state: TargetState,
}

pub fn plan_clone(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let EchoRequest::Clone(request) = &cx.request else {
            return Err(StepError::permanent("plan_clone runs in clone tasks only"));
        };
        let snapshot_id = cx
            .state
            .snapshot_id
            .clone()
            .ok_or_else(|| StepError::permanent("the checkpoint has no snapshot_id"))?;
        cx.state.plan = Some(ImportPlan {
            snapshot_id,
            destinations: request.destinations.clone(),
            target_state: request.target_state,
        });
        Ok(())
    })
}

pub fn plan_import(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let EchoRequest::Import(request) = &cx.request else {
            return Err(StepError::permanent(
                "plan_import runs in import tasks only",
            ));
        };
        let plan = ImportPlan {
            snapshot_id: request.snapshot_id.clone(),
            destinations: request.destinations.clone(),
            target_state: request.target_state,
        };
        cx.use_snapshot(&plan.snapshot_id).await?;
        snapshot_parts(cx, &plan.snapshot_id).await?;
        cx.state.plan = Some(plan);
        Ok(())
    })
}

fn clone_name(cx: &EchoCx, dest: usize, source_volume: u64) -> String {
    cx.deps
        .names
        .clone_volume(&cx.task, &cx.short_id(), dest, source_volume)
}

/// The source databases and VG snapshots of the plan's db snapshot.
async fn snapshot_parts(
    cx: &EchoCx,
    snapshot_id: &str,
) -> Result<(Vec<SourceDb>, Vec<VgSnapshot>), StepError> {
    let snapshot = cx
        .store()
        .get_db_snapshot(snapshot_id)
        .await?
        .ok_or_else(|| {
            StepError::permanent(format!("db snapshot '{snapshot_id}' does not exist"))
        })?;
    Ok((snapshot.databases, snapshot.vg_snapshots))
}

fn source_of<'a>(
    sources: &'a [SourceDb],
    destination: &Destination,
) -> Result<&'a SourceDb, StepError> {
    sources
        .iter()
        .find(|db| db.db_id == destination.db_id)
        .ok_or_else(|| {
            StepError::permanent(format!(
                "database '{}' is not in the snapshot",
                destination.db_id
            ))
        })
}

pub fn clone_volumes(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = cx.plan()?.clone();
        let sdp = cx.sdp()?;
        let (sources, vg_snapshots) = snapshot_parts(cx, &plan.snapshot_id).await?;
        let mut pending = Vec::new();
        for (dest, destination) in plan.destinations.iter().enumerate() {
            let source = source_of(&sources, destination)?;
            for (volume_id, vg_id) in source.volumes() {
                if cx
                    .state
                    .clones
                    .iter()
                    .any(|c| c.dest == dest && c.source_volume_id == volume_id)
                {
                    continue;
                }
                let snapshot = vg_snapshots
                    .iter()
                    .find(|s| s.vg_id == vg_id)
                    .ok_or_else(|| {
                        StepError::permanent(format!("no snapshot of volume group {vg_id}"))
                    })?;
                let name = clone_name(cx, dest, volume_id);
                let host_id = destination.host_id.clone();
                pending.push((
                    dest,
                    host_id,
                    volume_id,
                    vg_id,
                    snapshot.sdp_snapshot_id,
                    name,
                ));
            }
        }
        let (store, task_id) = (cx.store(), cx.request_id());
        // Every volume of every destination at once.
        let made = together(
            pending,
            |(dest, host_id, volume_id, vg_id, snapshot, name)| {
                let sdp = &sdp;
                async move {
                    let (created, made_now) = create_or_find(
                        sdp.create_thin_clone(&name, vg_id, snapshot, volume_id),
                        || sdp.find_volume(&name),
                    )
                    .await?;
                    store
                        .ledger_created(LedgerKind::Volume, created.id, &name, task_id)
                        .await?;
                    // A new thin clone is listed (and can be mapped) a moment after the create.
                    let clone = if made_now {
                        sdp.wait_for_volume(&name, CLONE_APPEAR_TIMEOUT).await?
                    } else {
                        created
                    };
                    Ok::<_, StepError>(CloneVolume {
                        dest,
                        host_id,
                        source_volume_id: volume_id,
                        clone_id: clone.id,
                        serial: clone.scsi_sn,
                        mapping_id: None,
                    })
                }
            },
        )
        .await;
        keep_all(made, |clone| cx.state.clones.push(clone))
    })
}

/// Undo: delete this task's clones, also one made just before a crash (found by name).
pub fn delete_clones(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = cx.plan()?.clone();
        let sdp = cx.sdp()?;
        let (sources, _) = snapshot_parts(cx, &plan.snapshot_id)
            .await
            .unwrap_or_default();
        for (dest, destination) in plan.destinations.iter().enumerate() {
            let Some(source) = sources.iter().find(|db| db.db_id == destination.db_id) else {
                continue;
            };
            for (volume_id, _) in source.volumes() {
                let name = clone_name(cx, dest, volume_id);
                if let Some(volume) = sdp.find_volume(&name).await? {
                    sdp.delete_volume(volume.id).await?;
                    cx.store()
                        .ledger_deleted(LedgerKind::Volume, volume.id)
                        .await?;
                }
            }
        }
        cx.state.clones.clear();
        Ok(())
    })
}

pub fn map_clones(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let sdp = cx.sdp()?;
        let mut pending = Vec::new();
        for (index, clone) in cx.state.clones.iter().enumerate() {
            if clone.mapping_id.is_some() {
                continue;
            }
            let host = cx.state.sdp_hosts.get(&clone.host_id).ok_or_else(|| {
                StepError::permanent(format!("no SDP host for '{}'", clone.host_id))
            })?;
            pending.push((index, host.sdp_host_id, clone.clone_id));
        }
        let (store, task_id) = (cx.store(), cx.request_id());
        let made = together(pending, |(index, sdp_host_id, clone_id)| {
            let sdp = &sdp;
            async move {
                // Mapped already (an earlier attempt's answer was lost): the array refuses a
                // second mapping, and the look-up finds the first.
                let (mapping, _) =
                    create_or_find(sdp.create_mapping(sdp_host_id, clone_id), || {
                        sdp.find_mapping(sdp_host_id, clone_id)
                    })
                    .await?;
                store
                    .ledger_created(
                        LedgerKind::Mapping,
                        mapping.id,
                        &format!("lun {}", mapping.lun),
                        task_id,
                    )
                    .await?;
                Ok::<_, StepError>((index, mapping.id))
            }
        })
        .await;
        keep_all(made, |(index, mapping_id)| {
            cx.state.clones[index].mapping_id = Some(mapping_id);
        })
    })
}

pub fn unmap_clones(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let sdp = cx.sdp()?;
        for clone in &cx.state.clones {
            let Some(host) = cx.state.sdp_hosts.get(&clone.host_id) else {
                continue;
            };
            if let Some(mapping) = sdp.find_mapping(host.sdp_host_id, clone.clone_id).await? {
                sdp.delete_mapping(mapping.id).await?;
                cx.store()
                    .ledger_deleted(LedgerKind::Mapping, mapping.id)
                    .await?;
            }
        }
        Ok(())
    })
}

pub fn rescan(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = cx.plan()?.clone();
        let mut hosts: Vec<&String> = plan.destinations.iter().map(|d| &d.host_id).collect();
        hosts.sort();
        hosts.dedup();
        for host_id in hosts {
            let serials: Vec<String> = cx
                .state
                .clones
                .iter()
                .filter(|c| &c.host_id == host_id)
                .map(|c| c.serial.clone())
                .collect();
            // Each attempt is its own command: a rescan's answer changes over time.
            let attempt = crate::auth::random_alphanumeric(6);
            let reply = cx
                .send(
                    host_id,
                    "rescan",
                    &format!("{host_id}-{attempt}"),
                    Rescan {
                        serials: serials.clone(),
                    },
                )
                .await?;
            let missing: Vec<&String> = serials
                .iter()
                .filter(|s| !reply.visible.contains(s))
                .collect();
            if !missing.is_empty() {
                return Err(StepError::transient(format!(
                    "host '{host_id}' does not see disks {missing:?} yet"
                )));
            }
        }
        Ok(())
    })
}

/// The attach command of one destination: the same on every run, so a repeated send is
/// answered from the host's memory.
fn attach_command(
    cx: &EchoCx,
    plan: &ImportPlan,
    sources: &[SourceDb],
    dest: usize,
) -> Result<Attach, StepError> {
    let destination = &plan.destinations[dest];
    let source = source_of(sources, destination)?;
    let files = source
        .files
        .iter()
        .map(|file| AttachFile {
            logical_name: file.name.clone(),
            kind: file.kind,
            serial: cx
                .state
                .clones
                .iter()
                .find(|c| c.dest == dest && c.source_volume_id == file.volume_id)
                .map(|c| c.serial.clone())
                .unwrap_or_default(),
            source_path: file.path.clone(),
            size_mb: file.size_mb,
        })
        .collect();
    Ok(Attach {
        db_name: destination.db_name.clone(),
        target_state: plan.target_state,
        files,
    })
}

pub fn attach(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = cx.plan()?.clone();
        let (sources, _) = snapshot_parts(cx, &plan.snapshot_id).await?;
        for (dest, destination) in plan.destinations.iter().enumerate() {
            if cx.state.attached.iter().any(|a| a.dest == dest) {
                continue;
            }
            let command = attach_command(cx, &plan, &sources, dest)?;
            let reply = cx
                .send(&destination.host_id, "attach", &dest.to_string(), command)
                .await?;
            cx.state.attached.push(Attached {
                dest,
                host_id: destination.host_id.clone(),
                db_id: reply.db_id,
                db_name: destination.db_name.clone(),
            });
        }
        Ok(())
    })
}

/// Undo: detach every database this task attached, including one whose attach was answered
/// but not checkpointed (asked again, the host answers the same attach from memory).
pub fn detach(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        if let Some(plan) = cx.state.plan.clone() {
            let mut sources = None;
            for (dest, destination) in plan.destinations.iter().enumerate() {
                let key = dest.to_string();
                if cx.state.attached.iter().any(|a| a.dest == dest)
                    || !cx.was_sent("attach", &key).await?
                {
                    continue;
                }
                if sources.is_none() {
                    sources = Some(snapshot_parts(cx, &plan.snapshot_id).await?.0);
                }
                let parts = sources.as_deref().unwrap_or_default();
                let command = attach_command(cx, &plan, parts, dest)?;
                let reply = cx
                    .send(&destination.host_id, "attach", &key, command)
                    .await?;
                cx.state.attached.push(Attached {
                    dest,
                    host_id: destination.host_id.clone(),
                    db_id: reply.db_id,
                    db_name: destination.db_name.clone(),
                });
            }
        }
        for db in &cx.state.attached {
            let command = Detach {
                db_id: db.db_id.clone(),
            };
            cx.send(&db.host_id, "undo-attach", &db.dest.to_string(), command)
                .await?;
        }
        cx.state.attached.clear();
        Ok(())
    })
}

pub fn record_echo_dbs(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = cx.plan()?.clone();
        let snapshot = cx
            .store()
            .get_db_snapshot(&plan.snapshot_id)
            .await?
            .ok_or_else(|| {
                StepError::permanent(format!("db snapshot '{}' does not exist", plan.snapshot_id))
            })?;
        let src_host = snapshot.host_id;
        let mut cloned_dbs = Vec::new();
        for db in &cx.state.attached {
            let destination = &plan.destinations[db.dest];
            let source_name = snapshot
                .databases
                .iter()
                .find(|s| s.db_id == destination.db_id)
                .map(|s| s.db_name.clone())
                .unwrap_or_default();
            let volumes = cx
                .state
                .clones
                .iter()
                .filter(|c| c.dest == db.dest)
                .map(|c| EchoVolume {
                    volume_id: c.clone_id,
                    serial: c.serial.clone(),
                    mapping_id: c.mapping_id,
                    sdp_host_id: cx.state.sdp_hosts.get(&c.host_id).map(|h| h.sdp_host_id),
                })
                .collect();
            // A refreshed echo DB stays the same echo DB: first made when it was, and still
            // found by the id it had if the host gave it a new one.
            let replaced = cx
                .state
                .old_echo
                .iter()
                .find(|old| old.host_id == db.host_id && old.name == db.db_name);
            let mut former_db_ids = replaced
                .map(|old| old.former_db_ids.clone())
                .unwrap_or_default();
            if let Some(old) = replaced
                && old.db_id != db.db_id
                && !former_db_ids.contains(&old.db_id)
            {
                former_db_ids.push(old.db_id.clone());
            }
            former_db_ids.retain(|id| id != &db.db_id);
            let lifecycle = lifecycle_of(&cx.request, replaced);
            cx.store()
                .insert_echo_db(&EchoDbRecord {
                    host_id: db.host_id.clone(),
                    db_id: db.db_id.clone(),
                    name: db.db_name.clone(),
                    snapshot_id: plan.snapshot_id.clone(),
                    src_host_id: src_host.clone(),
                    src_db_id: destination.db_id.clone(),
                    src_db_name: source_name.clone(),
                    task_id: cx.task.request_id.clone(),
                    created_ts: replaced
                        .and_then(|old| old.created_ts)
                        .unwrap_or_else(now_ts),
                    volumes,
                    former_db_ids,
                    lifecycle,
                    expiry_task_id: None,
                })
                .await?;
            cloned_dbs.push(ClonedDb {
                id: db.db_id.clone(),
                name: db.db_name.clone(),
                host_id: db.host_id.clone(),
                source_host_id: src_host.clone(),
                source_db_id: DbId::from(destination.db_id.as_str()),
                source_db_name: source_name,
            });
        }
        cx.state
            .result
            .get_or_insert_with(TaskResult::default)
            .cloned_dbs = Some(cloned_dbs);
        Ok(())
    })
}

/// How a recorded echo DB lives on: as the request says for a new one; for a refreshed one,
/// as before (expiry and protection carry over) unless the refresh gives a ttl of its own.
fn lifecycle_of(request: &EchoRequest, replaced: Option<&OldEcho>) -> Lifecycle {
    let now = now_ts();
    match (request, replaced) {
        (EchoRequest::Clone(clone), _) => clone.lifecycle.at(now),
        (EchoRequest::Import(import), _) => import.lifecycle.at(now),
        (EchoRequest::Refresh(refresh), Some(old)) => match refresh.ttl_secs {
            Some(ttl) => Lifecycle::starting(now, Some(ttl), old.lifecycle.protected),
            None => old.lifecycle,
        },
        _ => Lifecycle::default(),
    }
}

pub fn forget_echo_dbs(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        for db in &cx.state.attached {
            cx.store()
                .delete_echo_db_row(&db.host_id, &db.db_id, cx.request_id())
                .await?;
        }
        Ok(())
    })
}
