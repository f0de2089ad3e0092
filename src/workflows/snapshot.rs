//! Snapshot steps: find the volumes under the databases, freeze, one SDP snapshot per volume
//! group, thaw (on every path: the freeze's undo thaws too), record the db snapshot.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{AGENT_DEADLINE, SnapshotSpec};
use crate::{
    executor::{Ctx, StepError, StepFuture},
    sdp::BEST_EFFORT_RETENTION,
    store::DbSnapshotRecord,
};

/// A file of a source database and the SDP volume under it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SourceFile {
    pub name: String,
    pub kind: String,
    pub path: String,
    pub size_mb: u64,
    pub serial: String,
    pub volume_id: u64,
    pub vg_id: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SourceDb {
    pub db_id: String,
    pub db_name: String,
    pub files: Vec<SourceFile>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VgSnapshot {
    pub vg_id: u64,
    pub sdp_snapshot_id: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The snapshot part of a request: a snapshot task's whole request, or a clone's `snapshot`.
fn spec(ctx: &Ctx) -> Result<SnapshotSpec, StepError> {
    match ctx.request.get("snapshot") {
        Some(inner) => serde_json::from_value(inner.clone())
            .map_err(|err| StepError::Permanent(format!("unreadable snapshot request: {err}"))),
        None => ctx.request(),
    }
}

fn is_application(spec: &SnapshotSpec) -> bool {
    spec.consistency_level != "crash"
}

/// Short name of the SDP snapshot of one volume group: unique per group, stable per task.
fn vg_snapshot_name(ctx: &Ctx, spec: &SnapshotSpec) -> String {
    format!("{}-{}", spec.name_prefix, ctx.short_id())
}

pub fn resolve_sources(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let spec = spec(ctx)?;
        let sdp = ctx.sdp()?;
        let inventory = ctx.store().list_databases(&spec.source_host_id).await?;
        let mut sources = Vec::new();
        for db_id in &spec.database_ids {
            let db = inventory
                .iter()
                .find(|db| &db.db_id == db_id)
                .ok_or_else(|| {
                    StepError::Permanent(format!(
                        "database '{db_id}' is not on host '{}'",
                        spec.source_host_id
                    ))
                })?;
            let mut files = Vec::new();
            for (file, serial) in db.files_with_serials() {
                let name = file["name"].as_str().unwrap_or_default().to_owned();
                let serial = serial.ok_or_else(|| {
                    StepError::Permanent(format!(
                        "file '{name}' of '{}' is on no known disk",
                        db.name
                    ))
                })?;
                let volume = sdp.find_volume_by_serial(&serial).await?.ok_or_else(|| {
                    StepError::Permanent(format!(
                        "the disk {serial} of '{}' is not a volume of the configured SDP",
                        db.name
                    ))
                })?;
                files.push(SourceFile {
                    name,
                    kind: file["kind"].as_str().unwrap_or("data").to_owned(),
                    path: file["path"].as_str().unwrap_or_default().to_owned(),
                    size_mb: file["size_mb"].as_u64().unwrap_or(0),
                    serial,
                    volume_id: volume.id,
                    vg_id: volume.volume_group.id().unwrap_or_default(),
                });
            }
            sources.push(SourceDb {
                db_id: db.db_id.clone(),
                db_name: db.name.clone(),
                files,
            });
        }
        let mut vg_ids: Vec<u64> = sources
            .iter()
            .flat_map(|db| db.files.iter().map(|f| f.vg_id))
            .collect();
        vg_ids.sort_unstable();
        vg_ids.dedup();
        ctx.detail.insert("volume_groups".into(), json!(vg_ids));
        ctx.save("sources", &sources);
        ctx.save("vg_ids", &vg_ids);
        Ok(())
    })
}

pub fn freeze(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let spec = spec(ctx)?;
        if !is_application(&spec) {
            return Ok(());
        }
        let mode = if spec.force_vss_usage { "vss" } else { "tsql" };
        let args = json!({
            "db_ids": spec.database_ids,
            "mode": mode,
            "window_ms": ctx.freeze_window().as_millis() as u64,
        });
        let reply = ctx
            .agent(
                &spec.source_host_id,
                "freeze",
                "0",
                "freeze",
                args,
                AGENT_DEADLINE,
            )
            .await?;
        let freeze_id = reply["freeze_id"].as_str().unwrap_or_default().to_owned();
        ctx.save("freeze_id", &freeze_id);
        ctx.save("frozen_at_ms", &now_ms());
        Ok(())
    })
}

/// Undo of the freeze: thaw if nobody did, so databases never stay frozen.
pub fn thaw_quietly(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let spec = spec(ctx)?;
        let Some(freeze_id) = ctx.checkpoint_str("freeze_id").map(str::to_owned) else {
            return Ok(());
        };
        if ctx.get("thawed").is_some() {
            return Ok(());
        }
        let args = json!({"freeze_id": freeze_id});
        // The host thaws by itself when the window ends; a failed thaw is not worth a retry.
        if let Err(err) = ctx
            .agent(
                &spec.source_host_id,
                "undo-freeze",
                "0",
                "thaw",
                args,
                AGENT_DEADLINE,
            )
            .await
        {
            tracing::warn!(error = ?err, "thaw during compensation failed; the window ends it");
        }
        ctx.save("thawed", &true);
        Ok(())
    })
}

pub fn snapshot_volume_groups(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let spec = spec(ctx)?;
        let sdp = ctx.sdp()?;
        let vg_ids: Vec<u64> = ctx.load("vg_ids")?;
        let retention = sdp
            .find_retention_policy(BEST_EFFORT_RETENTION)
            .await?
            .ok_or_else(|| {
                StepError::Permanent(format!("the SDP has no {BEST_EFFORT_RETENTION} policy"))
            })?;
        let short_name = vg_snapshot_name(ctx, &spec);
        let started = Instant::now();
        let mut taken: Vec<VgSnapshot> = ctx.load_or_default("vg_snapshots");
        for vg_id in vg_ids {
            if taken.iter().any(|t| t.vg_id == vg_id) {
                continue;
            }
            // After an ambiguous failure the snapshot may exist: look before creating.
            let snapshot = match sdp.find_snapshot(vg_id, &short_name).await? {
                Some(existing) => existing,
                None => {
                    sdp.create_vg_snapshot(vg_id, &short_name, retention.id)
                        .await?
                }
            };
            ctx.store()
                .ledger_created("vg_snapshot", snapshot.id, &snapshot.name, &ctx.request_id)
                .await?;
            taken.push(VgSnapshot {
                vg_id,
                sdp_snapshot_id: snapshot.id,
            });
            ctx.save("vg_snapshots", &taken);
        }
        ctx.detail
            .insert("sdp_ms".into(), json!(started.elapsed().as_millis() as u64));
        Ok(())
    })
}

/// Undo: delete every VG snapshot this task made, including one made just before a crash
/// (found by its deterministic name).
pub fn delete_volume_group_snapshots(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let spec = spec(ctx)?;
        let sdp = ctx.sdp()?;
        let short_name = vg_snapshot_name(ctx, &spec);
        let vg_ids: Vec<u64> = ctx.load_or_default("vg_ids");
        for vg_id in vg_ids {
            if let Some(snapshot) = sdp.find_snapshot(vg_id, &short_name).await? {
                sdp.delete_snapshot(snapshot.id).await?;
                ctx.store()
                    .ledger_deleted("vg_snapshot", snapshot.id)
                    .await?;
            }
        }
        ctx.checkpoint.remove("vg_snapshots");
        Ok(())
    })
}

pub fn thaw(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let spec = spec(ctx)?;
        if !is_application(&spec) {
            return Ok(());
        }
        let freeze_id: String = ctx.load("freeze_id")?;
        let frozen_at: i64 = ctx.load("frozen_at_ms")?;
        let reply = ctx
            .agent(
                &spec.source_host_id,
                "thaw",
                "0",
                "thaw",
                json!({"freeze_id": freeze_id}),
                AGENT_DEADLINE,
            )
            .await?;
        ctx.save("thawed", &true);
        let frozen_ms = reply["frozen_ms"]
            .as_u64()
            .unwrap_or_else(|| (now_ms() - frozen_at).max(0) as u64);
        ctx.detail.insert("frozen_ms".into(), json!(frozen_ms));
        ctx.metrics().freeze_held(frozen_ms);
        ctx.save("frozen_ms", &frozen_ms);
        if reply["held"] != Value::Bool(true) {
            return Err(StepError::Permanent(format!(
                "the freeze window ({} ms) expired before the thaw; the snapshot would not be \
                 application-consistent",
                ctx.freeze_window().as_millis()
            )));
        }
        Ok(())
    })
}

pub fn record_snapshot(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let spec = spec(ctx)?;
        let sources: Vec<SourceDb> = ctx.load("sources")?;
        let vg_snapshots: Vec<VgSnapshot> = ctx.load("vg_snapshots")?;
        let snapshot_id = format!("{}_{}_{}", spec.name_prefix, ctx.create_ts, ctx.short_id());
        let host = ctx.store().get_host(&spec.source_host_id).await?;
        // Retried like any call: a snapshot recorded without its array cannot be found again.
        let sdp_id = ctx.sdp()?.system_state().await?.system_id;
        let record = DbSnapshotRecord {
            id: snapshot_id.clone(),
            host_id: spec.source_host_id.clone(),
            host_name: host
                .as_ref()
                .map(|h| h.host_name.clone())
                .unwrap_or_default(),
            sdp_id,
            consistency_level: if is_application(&spec) {
                "application"
            } else {
                "crash"
            }
            .into(),
            db_engine_version: host.map(|h| h.db_engine_version).unwrap_or_default(),
            is_vss_based: i64::from(is_application(&spec) && spec.force_vss_usage),
            created_ts: ctx.create_ts,
            task_id: ctx.request_id.clone(),
            vg_snapshots: serde_json::to_string(&vg_snapshots).unwrap_or_default(),
            databases: serde_json::to_string(&sources).unwrap_or_default(),
        };
        ctx.store().insert_db_snapshot(&record).await?;
        ctx.save("snapshot_id", &snapshot_id);
        ctx.save("result", &json!({"db_snapshot": {"id": snapshot_id}}));
        Ok(())
    })
}

pub fn forget_snapshot(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        if let Some(id) = ctx.checkpoint_str("snapshot_id").map(str::to_owned) {
            ctx.store().delete_db_snapshot_row(&id).await?;
        }
        Ok(())
    })
}
