//! Snapshot steps: find the volumes under the databases, freeze, one SDP snapshot per volume
//! group, thaw (on every path: the freeze's undo thaws too), record the db snapshot.

use std::time::Instant;

use super::{
    context::EchoCx,
    together::{create_or_find, keep_all, together},
};
use crate::{
    agents::protocol::commands::{Freeze, FreezeMode, Thaw},
    clock::now_ms,
    executor::{StepError, StepFuture},
    model::{LedgerKind, SourceDb, SourceFile, VgSnapshot},
    sdp::BEST_EFFORT_RETENTION,
    store::DbSnapshotRecord,
};

/// Short name of the SDP snapshot of one volume group: unique per group, stable per task.
fn vg_snapshot_name(cx: &EchoCx) -> Result<String, StepError> {
    let prefix = &cx.snapshot_spec()?.name_prefix;
    Ok(cx.deps.names.vg_snapshot(&cx.task, prefix, &cx.short_id()))
}

/// Finds the volume and volume group under every file of the snapshot's databases. The
/// inventory's join to the array already placed most files (a serial names one volume for
/// its life, in one group); the rest are asked in one call.
pub fn resolve_sources(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let spec = cx.snapshot_spec()?.clone();
        let sdp = cx.sdp()?;
        let sdp_id = sdp.system_id().await?;
        let inventory = cx.store().list_databases(&spec.source_host_id).await?;
        let mut chosen = Vec::new();
        for db_id in &spec.database_ids {
            let db = inventory
                .iter()
                .find(|db| &db.db_id == db_id)
                .ok_or_else(|| {
                    StepError::permanent(format!(
                        "database '{db_id}' is not on host '{}'",
                        spec.source_host_id
                    ))
                })?;
            let mut files = Vec::new();
            for (file, serial) in db.files_with_serials() {
                let serial = serial.ok_or_else(|| {
                    StepError::permanent(format!(
                        "file '{}' of '{}' is on no known disk",
                        file.file.name, db.name
                    ))
                })?;
                let placed = file.sdp.as_ref().and_then(|placement| {
                    let here = placement.sdp_id == sdp_id && placement.volume_scsi_sn == serial;
                    here.then_some((placement.volume_id, placement.volume_group_id?))
                });
                files.push((file, serial, placed));
            }
            chosen.push((db, files));
        }
        let unplaced: Vec<String> = chosen
            .iter()
            .flat_map(|(_, files)| files.iter())
            .filter(|(_, _, placed)| placed.is_none())
            .map(|(_, serial, _)| (*serial).to_owned())
            .collect();
        let looked_up = sdp.find_volumes_by_serials(&unplaced).await?;
        let mut sources = Vec::new();
        for (db, files) in chosen {
            let mut source_files = Vec::new();
            for (file, serial, placed) in files {
                let (volume_id, vg_id) = match placed {
                    Some(placed) => placed,
                    None => looked_up
                        .iter()
                        .find(|v| v.scsi_sn == serial)
                        .map(|v| (v.id, v.volume_group.id().unwrap_or_default()))
                        .ok_or_else(|| {
                            StepError::permanent(format!(
                                "the disk {serial} of '{}' is not a volume of the configured SDP",
                                db.name
                            ))
                        })?,
                };
                let file = &file.file;
                source_files.push(SourceFile {
                    name: file.name.clone(),
                    kind: file.kind,
                    path: file.path.clone(),
                    size_mb: file.size_mb,
                    serial: serial.to_owned(),
                    volume_id,
                    vg_id,
                });
            }
            sources.push(SourceDb {
                db_id: db.db_id.clone(),
                db_name: db.name.clone(),
                files: source_files,
            });
        }
        let mut vg_ids: Vec<u64> = sources
            .iter()
            .flat_map(|db| db.files.iter().map(|f| f.vg_id))
            .collect();
        vg_ids.sort_unstable();
        vg_ids.dedup();
        cx.detail.volume_groups = Some(vg_ids.clone());
        cx.state.sources = sources;
        cx.state.vg_ids = vg_ids;
        Ok(())
    })
}

/// The freeze of the snapshot's databases: the same on every run, so a repeated send is
/// answered from the host's memory.
fn freeze_command(cx: &EchoCx) -> Result<Freeze, StepError> {
    let spec = cx.snapshot_spec()?;
    Ok(Freeze {
        db_ids: spec.database_ids.clone(),
        mode: if spec.force_vss_usage {
            FreezeMode::Vss
        } else {
            FreezeMode::Tsql
        },
        window_ms: u64::try_from(cx.freeze_window().as_millis()).unwrap_or(u64::MAX),
    })
}

pub fn freeze(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let spec = cx.snapshot_spec()?.clone();
        if !spec.is_application() {
            return Ok(());
        }
        let command = freeze_command(cx)?;
        let reply = cx
            .send(&spec.source_host_id, "freeze", "0", command)
            .await?;
        cx.state.freeze_id = Some(reply.freeze_id);
        cx.state.frozen_at_ms = Some(now_ms());
        Ok(())
    })
}

/// Undo of the freeze: thaw if nobody did, so databases never stay frozen. A freeze answered
/// but not checkpointed is asked again for its id (the host answers from memory).
pub fn thaw_quietly(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let spec = cx.snapshot_spec()?.clone();
        if cx.state.thawed || !spec.is_application() {
            return Ok(());
        }
        // The host thaws by itself when the window ends; a failed thaw is not worth a retry.
        let thawed = async {
            let freeze_id = match cx.state.freeze_id.clone() {
                Some(id) => id,
                None if cx.was_sent("freeze", "0").await? => {
                    cx.send(&spec.source_host_id, "freeze", "0", freeze_command(cx)?)
                        .await?
                        .freeze_id
                }
                None => return Ok(()),
            };
            cx.send(&spec.source_host_id, "undo-freeze", "0", Thaw { freeze_id })
                .await
                .map(drop)
        };
        if let Err(err) = thawed.await {
            tracing::warn!(error = %err, "thaw during compensation failed; the window ends it");
        }
        cx.state.thawed = true;
        Ok(())
    })
}

pub fn snapshot_volume_groups(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let sdp = cx.sdp()?;
        let retention = sdp
            .retention_policy(BEST_EFFORT_RETENTION)
            .await?
            .ok_or_else(|| {
                StepError::permanent(format!("the SDP has no {BEST_EFFORT_RETENTION} policy"))
            })?;
        let short_name = vg_snapshot_name(cx)?;
        let started = Instant::now();
        let pending: Vec<u64> = cx
            .state
            .vg_ids
            .iter()
            .copied()
            .filter(|vg_id| !cx.state.vg_snapshots.iter().any(|t| t.vg_id == *vg_id))
            .collect();
        let (store, task_id) = (cx.store(), cx.request_id());
        // Every group at once: the freeze lasts one round trip, whatever the number of groups.
        let made = together(pending, |vg_id| {
            let (sdp, short_name) = (&sdp, &short_name);
            async move {
                let (snapshot, _) = create_or_find(
                    sdp.create_vg_snapshot(vg_id, short_name, retention.id),
                    || sdp.find_snapshot(vg_id, short_name),
                )
                .await?;
                store
                    .ledger_created(LedgerKind::VgSnapshot, snapshot.id, &snapshot.name, task_id)
                    .await?;
                Ok::<_, StepError>(VgSnapshot {
                    vg_id,
                    sdp_snapshot_id: snapshot.id,
                })
            }
        })
        .await;
        let outcome = keep_all(made, |snapshot| cx.state.vg_snapshots.push(snapshot));
        cx.detail.sdp_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        outcome
    })
}

/// Undo: delete every VG snapshot this task made, including one made just before a crash
/// (found by its deterministic name).
pub fn delete_volume_group_snapshots(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let sdp = cx.sdp()?;
        let short_name = vg_snapshot_name(cx)?;
        for vg_id in cx.state.vg_ids.clone() {
            if let Some(snapshot) = sdp.find_snapshot(vg_id, &short_name).await? {
                sdp.delete_snapshot(snapshot.id).await?;
                cx.store()
                    .ledger_deleted(LedgerKind::VgSnapshot, snapshot.id)
                    .await?;
            }
        }
        cx.state.vg_snapshots.clear();
        Ok(())
    })
}

pub fn thaw(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let spec = cx.snapshot_spec()?.clone();
        if !spec.is_application() {
            return Ok(());
        }
        let freeze_id = cx
            .state
            .freeze_id
            .clone()
            .ok_or_else(|| StepError::permanent("the checkpoint has no freeze_id"))?;
        let reply = cx
            .send(&spec.source_host_id, "thaw", "0", Thaw { freeze_id })
            .await?;
        cx.state.thawed = true;
        cx.detail.frozen_ms = Some(reply.frozen_ms);
        cx.metrics().freeze_held(reply.frozen_ms);
        cx.state.frozen_ms = Some(reply.frozen_ms);
        if !reply.held {
            return Err(StepError::permanent(format!(
                "the freeze window ({} ms) expired before the thaw; the snapshot would not be \
                 application-consistent",
                cx.freeze_window().as_millis()
            )));
        }
        Ok(())
    })
}

pub fn record_snapshot(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let spec = cx.snapshot_spec()?.clone();
        let snapshot_id = snapshot_id(cx)?;
        let host = cx.store().get_host(&spec.source_host_id).await?;
        // Retried like any call: a snapshot recorded without its array cannot be found again.
        let sdp_id = cx.sdp()?.system_id().await?;
        // Claimed before anyone can see it: a clone goes on to import from it.
        cx.use_snapshot(&snapshot_id).await?;
        let record = DbSnapshotRecord {
            id: snapshot_id.clone(),
            host_id: spec.source_host_id.clone(),
            host_name: host
                .as_ref()
                .map(|h| h.host_name.clone())
                .unwrap_or_default(),
            sdp_id,
            consistency_level: spec.consistency_level,
            db_engine_version: host.map(|h| h.db_engine_version).unwrap_or_default(),
            is_vss_based: spec.is_application() && spec.force_vss_usage,
            created_ts: cx.task.create_ts,
            task_id: cx.request_id().to_owned(),
            vg_snapshots: cx.state.vg_snapshots.clone(),
            databases: cx.state.sources.clone(),
            schedule_id: spec.schedule_id.clone(),
        };
        cx.store().insert_db_snapshot(&record).await?;
        cx.state.snapshot_id = Some(snapshot_id.clone());
        cx.state.result = Some(super::requests::TaskResult {
            db_snapshot: Some(super::requests::SnapshotRef { id: snapshot_id }),
            cloned_dbs: None,
        });
        Ok(())
    })
}

/// Undo: forget the db snapshot, found by its deterministic id even when its recording was
/// not checkpointed.
pub fn forget_snapshot(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let id = snapshot_id(cx)?;
        cx.store()
            .delete_db_snapshot_row(&id, cx.request_id())
            .await?;
        cx.state.snapshot_id = None;
        Ok(())
    })
}

/// The db snapshot's id: stable per task, so an undo finds it without the checkpoint.
fn snapshot_id(cx: &EchoCx) -> Result<String, StepError> {
    Ok(format!(
        "{}_{}_{}",
        cx.snapshot_spec()?.name_prefix,
        cx.task.create_ts,
        cx.short_id()
    ))
}
