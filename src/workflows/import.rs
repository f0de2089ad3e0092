//! Import steps, per destination: an SDP host object for its initiator, thin clones of the
//! source volumes from the VG snapshots, mappings, a rescan until the disks show, attach, and
//! the echo DB record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    AGENT_DEADLINE, CLONE_APPEAR_TIMEOUT, CloneRequest, Destination, ImportRequest,
    snapshot::{SourceDb, VgSnapshot},
};
use crate::{
    executor::{Ctx, StepError, StepFuture},
    store::EchoDbRecord,
};

/// The SDP host object a destination host is mapped through.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SdpHostRef {
    pub sdp_host_id: u64,
    /// Flex made it (and removes it when nothing is mapped to it any more).
    pub created: bool,
}

/// A thin clone made for one destination, of one source volume.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CloneVolume {
    pub dest: usize,
    pub host_id: String,
    pub source_volume_id: u64,
    pub clone_id: u64,
    pub serial: String,
    #[serde(default)]
    pub mapping_id: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attached {
    pub dest: usize,
    pub host_id: String,
    pub db_id: String,
    pub db_name: String,
}

/// What an import works from; set by the plan step of each workflow.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportPlan {
    pub snapshot_id: String,
    pub destinations: Vec<Destination>,
    pub target_state: String,
}

pub fn plan_clone(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let request: CloneRequest = ctx.request()?;
        let snapshot_id: String = ctx.load("snapshot_id")?;
        ctx.save(
            "plan",
            &ImportPlan {
                snapshot_id,
                destinations: request.destinations,
                target_state: request.target_state,
            },
        );
        Ok(())
    })
}

pub fn plan_import(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let request: ImportRequest = ctx.request()?;
        ctx.save(
            "plan",
            &ImportPlan {
                snapshot_id: request.snapshot_id,
                destinations: request.destinations,
                target_state: request.target_state,
            },
        );
        Ok(())
    })
}

fn plan(ctx: &Ctx) -> Result<ImportPlan, StepError> {
    ctx.load("plan")
}

fn clone_name(ctx: &Ctx, dest: usize, source_volume: u64) -> String {
    format!("echo-{}-{dest}-{source_volume}", ctx.short_id())
}

/// The source databases and VG snapshots of the plan's db snapshot.
async fn snapshot_parts(
    ctx: &Ctx,
    plan: &ImportPlan,
) -> Result<(Vec<SourceDb>, Vec<VgSnapshot>), StepError> {
    let snapshot = ctx
        .store()
        .get_db_snapshot(&plan.snapshot_id)
        .await?
        .ok_or_else(|| {
            StepError::Permanent(format!("db snapshot '{}' does not exist", plan.snapshot_id))
        })?;
    let sources = serde_json::from_str(&snapshot.databases)
        .map_err(|err| StepError::Permanent(format!("db snapshot is unreadable: {err}")))?;
    let vgs = serde_json::from_str(&snapshot.vg_snapshots)
        .map_err(|err| StepError::Permanent(format!("db snapshot is unreadable: {err}")))?;
    Ok((sources, vgs))
}

pub fn ensure_sdp_hosts(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = plan(ctx)?;
        let sdp = ctx.sdp()?;
        let mut hosts: BTreeMap<String, SdpHostRef> = ctx.load_or_default("sdp_hosts");
        for destination in &plan.destinations {
            if hosts.contains_key(&destination.host_id) {
                continue;
            }
            let host = ctx
                .store()
                .get_host(&destination.host_id)
                .await?
                .ok_or_else(|| {
                    StepError::Permanent(format!(
                        "host '{}' is not registered",
                        destination.host_id
                    ))
                })?;
            if host.host_iqn.is_empty() {
                return Err(StepError::Transient(format!(
                    "host '{}' has not reported its IQN yet",
                    destination.host_id
                )));
            }
            let found = match sdp.find_host_by_iqn(&host.host_iqn).await? {
                Some(existing) => Some(existing),
                None => sdp.find_host(&destination.host_id).await?,
            };
            // Created before but not answered (a 502, a timeout, a crash): the intent
            // recorded before the create tells our object from an operator's.
            let reference = match found {
                Some(existing) => SdpHostRef {
                    created: ctx
                        .store()
                        .ledger_adopt("host", existing.id, &existing.name, &ctx.request_id)
                        .await?,
                    sdp_host_id: existing.id,
                },
                None => {
                    ctx.store()
                        .ledger_intend("host", &destination.host_id, &ctx.request_id)
                        .await?;
                    let created = sdp.create_host(&destination.host_id, "Windows").await?;
                    ctx.store()
                        .ledger_created("host", created.id, &created.name, &ctx.request_id)
                        .await?;
                    SdpHostRef {
                        sdp_host_id: created.id,
                        created: true,
                    }
                }
            };
            match sdp.find_host_iqn(&host.host_iqn).await? {
                Some(existing) => {
                    ctx.store()
                        .ledger_adopt("host_iqn", existing.id, &existing.iqn, &ctx.request_id)
                        .await?;
                }
                None => {
                    ctx.store()
                        .ledger_intend("host_iqn", &host.host_iqn, &ctx.request_id)
                        .await?;
                    let iqn = sdp
                        .create_host_iqn(reference.sdp_host_id, &host.host_iqn)
                        .await?;
                    ctx.store()
                        .ledger_created("host_iqn", iqn.id, &iqn.iqn, &ctx.request_id)
                        .await?;
                }
            }
            hosts.insert(destination.host_id.clone(), reference);
            ctx.save("sdp_hosts", &hosts);
        }
        Ok(())
    })
}

/// Removes an SDP host object Flex created once nothing is mapped to it.
pub async fn release_sdp_host(ctx: &Ctx, sdp_host_id: u64) -> Result<(), StepError> {
    let sdp = ctx.sdp()?;
    let Some(host_entry) = ctx.store().ledger_entry("host", sdp_host_id).await? else {
        return Ok(());
    };
    if !sdp.list_mappings_of_host(sdp_host_id).await?.is_empty() {
        return Ok(());
    }
    let iqns: Vec<crate::sdp::HostIqn> = sdp
        .list(
            "host_iqns",
            &[("host.ref", format!("/hosts/{sdp_host_id}"))],
        )
        .await?;
    for iqn in &iqns {
        sdp.delete_host_iqn(iqn.id).await?;
        ctx.store().ledger_deleted("host_iqn", iqn.id).await?;
    }
    // An initiator deleted by an earlier attempt whose answer was lost is no longer listed;
    // the ledger still has it. Those the array no longer has are settled here.
    for entry in ctx
        .store()
        .ledger_live_of_task("host_iqn", &host_entry.task_id)
        .await?
    {
        let id = entry.sdp_id as u64;
        if sdp
            .get::<crate::sdp::HostIqn>("host_iqns", id)
            .await?
            .is_none()
        {
            ctx.store().ledger_deleted("host_iqn", id).await?;
        }
    }
    sdp.delete_host(sdp_host_id).await?;
    ctx.store().ledger_deleted("host", sdp_host_id).await?;
    Ok(())
}

/// Undo: remove the SDP host objects this import made, also one made just before a failure or
/// crash (found by the destination's name or IQN), once nothing is mapped to them.
pub fn release_sdp_hosts(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = plan(ctx)?;
        let sdp = ctx.sdp()?;
        let mut candidates: Vec<u64> = ctx
            .load_or_default::<BTreeMap<String, SdpHostRef>>("sdp_hosts")
            .values()
            .map(|r| r.sdp_host_id)
            .collect();
        for destination in &plan.destinations {
            if let Some(host) = sdp.find_host(&destination.host_id).await? {
                candidates.push(host.id);
            }
            let iqn = ctx
                .store()
                .get_host(&destination.host_id)
                .await?
                .map(|h| h.host_iqn)
                .unwrap_or_default();
            if !iqn.is_empty()
                && let Some(host) = sdp.find_host_by_iqn(&iqn).await?
            {
                candidates.push(host.id);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        for sdp_host_id in candidates {
            release_sdp_host(ctx, sdp_host_id).await?;
        }
        Ok(())
    })
}

pub fn clone_volumes(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = plan(ctx)?;
        let sdp = ctx.sdp()?;
        let (sources, vg_snapshots) = snapshot_parts(ctx, &plan).await?;
        let mut clones: Vec<CloneVolume> = ctx.load_or_default("clones");
        for (dest, destination) in plan.destinations.iter().enumerate() {
            let source = sources
                .iter()
                .find(|db| db.db_id == destination.db_id)
                .ok_or_else(|| {
                    StepError::Permanent(format!(
                        "database '{}' is not in the snapshot",
                        destination.db_id
                    ))
                })?;
            let mut volumes: Vec<(u64, u64)> = source
                .files
                .iter()
                .map(|f| (f.volume_id, f.vg_id))
                .collect();
            volumes.sort_unstable();
            volumes.dedup();
            for (volume_id, vg_id) in volumes {
                if clones
                    .iter()
                    .any(|c| c.dest == dest && c.source_volume_id == volume_id)
                {
                    continue;
                }
                let snapshot = vg_snapshots
                    .iter()
                    .find(|s| s.vg_id == vg_id)
                    .ok_or_else(|| {
                        StepError::Permanent(format!("no snapshot of volume group {vg_id}"))
                    })?;
                let name = clone_name(ctx, dest, volume_id);
                if sdp.find_volume(&name).await?.is_none() {
                    match sdp
                        .create_thin_clone(&name, vg_id, snapshot.sdp_snapshot_id, volume_id)
                        .await
                    {
                        Ok(created) => {
                            ctx.store()
                                .ledger_created("volume", created.id, &name, &ctx.request_id)
                                .await?;
                        }
                        // Taken while not yet listed: our own earlier attempt.
                        Err(err) if err.status() == Some(409) => {}
                        Err(err) => return Err(err.into()),
                    }
                }
                let clone = sdp.wait_for_volume(&name, CLONE_APPEAR_TIMEOUT).await?;
                ctx.store()
                    .ledger_created("volume", clone.id, &name, &ctx.request_id)
                    .await?;
                clones.push(CloneVolume {
                    dest,
                    host_id: destination.host_id.clone(),
                    source_volume_id: volume_id,
                    clone_id: clone.id,
                    serial: clone.scsi_sn,
                    mapping_id: None,
                });
                ctx.save("clones", &clones);
            }
        }
        Ok(())
    })
}

/// Undo: delete this task's clones, also one made just before a crash (found by name).
pub fn delete_clones(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = plan(ctx)?;
        let sdp = ctx.sdp()?;
        let (sources, _) = snapshot_parts(ctx, &plan).await.unwrap_or_default();
        for (dest, destination) in plan.destinations.iter().enumerate() {
            let Some(source) = sources.iter().find(|db| db.db_id == destination.db_id) else {
                continue;
            };
            for file in &source.files {
                let name = clone_name(ctx, dest, file.volume_id);
                if let Some(volume) = sdp.find_volume(&name).await? {
                    sdp.delete_volume(volume.id).await?;
                    ctx.store().ledger_deleted("volume", volume.id).await?;
                }
            }
        }
        ctx.checkpoint.remove("clones");
        Ok(())
    })
}

pub fn map_clones(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let sdp = ctx.sdp()?;
        let hosts: BTreeMap<String, SdpHostRef> = ctx.load("sdp_hosts")?;
        let mut clones: Vec<CloneVolume> = ctx.load("clones")?;
        for index in 0..clones.len() {
            if clones[index].mapping_id.is_some() {
                continue;
            }
            let clone = &clones[index];
            let host = hosts.get(&clone.host_id).ok_or_else(|| {
                StepError::Permanent(format!("no SDP host for '{}'", clone.host_id))
            })?;
            let mapping = match sdp.find_mapping(host.sdp_host_id, clone.clone_id).await? {
                Some(existing) => existing,
                None => sdp.create_mapping(host.sdp_host_id, clone.clone_id).await?,
            };
            ctx.store()
                .ledger_created(
                    "mapping",
                    mapping.id,
                    &format!("lun {}", mapping.lun),
                    &ctx.request_id,
                )
                .await?;
            clones[index].mapping_id = Some(mapping.id);
            ctx.save("clones", &clones);
        }
        Ok(())
    })
}

pub fn unmap_clones(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let sdp = ctx.sdp()?;
        let hosts: BTreeMap<String, SdpHostRef> = ctx.load_or_default("sdp_hosts");
        let clones: Vec<CloneVolume> = ctx.load_or_default("clones");
        for clone in &clones {
            let Some(host) = hosts.get(&clone.host_id) else {
                continue;
            };
            if let Some(mapping) = sdp.find_mapping(host.sdp_host_id, clone.clone_id).await? {
                sdp.delete_mapping(mapping.id).await?;
                ctx.store().ledger_deleted("mapping", mapping.id).await?;
            }
        }
        Ok(())
    })
}

pub fn rescan(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = plan(ctx)?;
        let clones: Vec<CloneVolume> = ctx.load("clones")?;
        let mut hosts: Vec<&String> = plan.destinations.iter().map(|d| &d.host_id).collect();
        hosts.sort();
        hosts.dedup();
        for host_id in hosts {
            let serials: Vec<&String> = clones
                .iter()
                .filter(|c| &c.host_id == host_id)
                .map(|c| &c.serial)
                .collect();
            // Each attempt is its own command: a rescan's answer changes over time.
            let attempt = crate::auth::random_alphanumeric(6);
            let reply = ctx
                .agent(
                    host_id,
                    "rescan",
                    &format!("{host_id}-{attempt}"),
                    "rescan",
                    json!({"serials": serials}),
                    AGENT_DEADLINE,
                )
                .await?;
            let visible: Vec<String> =
                serde_json::from_value(reply["visible"].clone()).unwrap_or_default();
            let missing: Vec<&&String> = serials.iter().filter(|s| !visible.contains(s)).collect();
            if !missing.is_empty() {
                return Err(StepError::Transient(format!(
                    "host '{host_id}' does not see disks {missing:?} yet"
                )));
            }
        }
        Ok(())
    })
}

pub fn attach(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = plan(ctx)?;
        let (sources, _) = snapshot_parts(ctx, &plan).await?;
        let clones: Vec<CloneVolume> = ctx.load("clones")?;
        let mut attached: Vec<Attached> = ctx.load_or_default("attached");
        for (dest, destination) in plan.destinations.iter().enumerate() {
            if attached.iter().any(|a| a.dest == dest) {
                continue;
            }
            let source = sources
                .iter()
                .find(|db| db.db_id == destination.db_id)
                .ok_or_else(|| {
                    StepError::Permanent(format!(
                        "database '{}' is not in the snapshot",
                        destination.db_id
                    ))
                })?;
            let files: Vec<Value> = source
                .files
                .iter()
                .map(|file| {
                    let serial = clones
                        .iter()
                        .find(|c| c.dest == dest && c.source_volume_id == file.volume_id)
                        .map(|c| c.serial.clone())
                        .unwrap_or_default();
                    json!({
                        "logical_name": file.name,
                        "kind": file.kind,
                        "serial": serial,
                        "source_path": file.path,
                        "size_mb": file.size_mb,
                    })
                })
                .collect();
            let args = json!({
                "db_name": destination.db_name,
                "target_state": plan.target_state,
                "files": files,
            });
            let reply = ctx
                .agent(
                    &destination.host_id,
                    "attach",
                    &dest.to_string(),
                    "attach",
                    args,
                    AGENT_DEADLINE,
                )
                .await?;
            let db_id = reply["db_id"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| reply["db_id"].as_u64().map(|n| n.to_string()))
                .ok_or_else(|| {
                    StepError::Permanent("the agent's attach reply has no db_id".into())
                })?;
            attached.push(Attached {
                dest,
                host_id: destination.host_id.clone(),
                db_id,
                db_name: destination.db_name.clone(),
            });
            ctx.save("attached", &attached);
        }
        Ok(())
    })
}

pub fn detach(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let attached: Vec<Attached> = ctx.load_or_default("attached");
        for db in &attached {
            ctx.agent(
                &db.host_id,
                "undo-attach",
                &db.dest.to_string(),
                "detach",
                json!({"db_id": db.db_id}),
                AGENT_DEADLINE,
            )
            .await?;
        }
        ctx.checkpoint.remove("attached");
        Ok(())
    })
}

pub fn record_echo_dbs(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = plan(ctx)?;
        let (sources, _) = snapshot_parts(ctx, &plan).await?;
        let snapshot = ctx.store().get_db_snapshot(&plan.snapshot_id).await?;
        let src_host = snapshot.map(|s| s.host_id).unwrap_or_default();
        let attached: Vec<Attached> = ctx.load("attached")?;
        let clones: Vec<CloneVolume> = ctx.load("clones")?;
        let hosts: BTreeMap<String, SdpHostRef> = ctx.load("sdp_hosts")?;
        let mut cloned_dbs = Vec::new();
        for db in &attached {
            let destination = &plan.destinations[db.dest];
            let source_name = sources
                .iter()
                .find(|s| s.db_id == destination.db_id)
                .map(|s| s.db_name.clone())
                .unwrap_or_default();
            let volumes: Vec<Value> = clones
                .iter()
                .filter(|c| c.dest == db.dest)
                .map(|c| {
                    json!({
                        "volume_id": c.clone_id,
                        "serial": c.serial,
                        "mapping_id": c.mapping_id,
                        "sdp_host_id": hosts.get(&c.host_id).map(|h| h.sdp_host_id),
                    })
                })
                .collect();
            ctx.store()
                .insert_echo_db(&EchoDbRecord {
                    host_id: db.host_id.clone(),
                    db_id: db.db_id.clone(),
                    name: db.db_name.clone(),
                    snapshot_id: plan.snapshot_id.clone(),
                    src_host_id: src_host.clone(),
                    src_db_id: destination.db_id.clone(),
                    src_db_name: source_name.clone(),
                    task_id: ctx.request_id.clone(),
                    created_ts: crate::store::now_ts(),
                    volumes: Value::Array(volumes).to_string(),
                })
                .await?;
            // Documented: source_db_id is an integer where the id is numeric.
            let source_db_id = destination
                .db_id
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(destination.db_id.clone()));
            cloned_dbs.push(json!({
                "id": db.db_id,
                "name": db.db_name,
                "host_id": db.host_id,
                "source_host_id": src_host,
                "source_db_id": source_db_id,
                "source_db_name": source_name,
            }));
        }
        let mut result = ctx.get("result").cloned().unwrap_or_else(|| json!({}));
        if !result.is_object() {
            result = json!({});
        }
        result["cloned_dbs"] = Value::Array(cloned_dbs);
        ctx.save("result", &result);
        Ok(())
    })
}

pub fn forget_echo_dbs(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let attached: Vec<Attached> = ctx.load_or_default("attached");
        for db in &attached {
            ctx.store()
                .delete_echo_db_row(&db.host_id, &db.db_id)
                .await?;
        }
        Ok(())
    })
}
