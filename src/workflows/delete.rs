//! Taking echo DBs away (delete, and the first half of refresh) and deleting db snapshots.
//! These move forward only: once a database is detached there is nothing to put back.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    AGENT_DEADLINE, DeleteEchoDbRequest, DeleteSnapshotRequest, Destination, RefreshRequest,
    import::{ImportPlan, release_sdp_host},
    snapshot::{SourceDb, VgSnapshot},
};
use crate::{
    executor::{Ctx, StepError, StepFuture},
    sdp::{SdpClient, SdpError},
    store::{EchoDbRecord, Store, StoreError},
};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EchoVolume {
    pub volume_id: u64,
    #[serde(default)]
    pub serial: String,
    #[serde(default)]
    pub mapping_id: Option<u64>,
    #[serde(default)]
    pub sdp_host_id: Option<u64>,
}

/// An echo DB being taken away.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OldEcho {
    pub host_id: String,
    pub db_id: String,
    pub name: String,
    pub src_db_id: String,
    pub volumes: Vec<EchoVolume>,
}

impl From<&EchoDbRecord> for OldEcho {
    fn from(record: &EchoDbRecord) -> Self {
        OldEcho {
            host_id: record.host_id.clone(),
            db_id: record.db_id.clone(),
            name: record.name.clone(),
            src_db_id: record.src_db_id.clone(),
            volumes: serde_json::from_str(&record.volumes).unwrap_or_default(),
        }
    }
}

pub fn load_echo_db(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let request: DeleteEchoDbRequest = ctx.request()?;
        let record = ctx
            .store()
            .get_echo_db(&request.host_id, &request.database_id)
            .await?
            .ok_or_else(|| {
                StepError::Permanent(format!(
                    "database '{}' on host '{}' is not an echo DB",
                    request.database_id, request.host_id
                ))
            })?;
        ctx.save("old_echo", &vec![OldEcho::from(&record)]);
        Ok(())
    })
}

pub fn plan_refresh(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let request: RefreshRequest = ctx.request()?;
        let snapshot = ctx
            .store()
            .get_db_snapshot(&request.snapshot_id)
            .await?
            .ok_or_else(|| {
                StepError::Permanent(format!(
                    "db snapshot '{}' does not exist",
                    request.snapshot_id
                ))
            })?;
        let sources: Vec<SourceDb> = serde_json::from_str(&snapshot.databases).unwrap_or_default();
        let echo_dbs = ctx.store().list_echo_dbs().await?;
        let mut old = Vec::new();
        let mut destinations = Vec::new();
        for name in &request.db_names {
            let record = echo_dbs
                .iter()
                .find(|e| e.host_id == request.host_id && &e.name == name)
                .ok_or_else(|| {
                    StepError::Permanent(format!(
                        "'{name}' is not an echo DB on '{}'",
                        request.host_id
                    ))
                })?;
            // The same source database in the newer snapshot, or its only database.
            let source = sources
                .iter()
                .find(|s| s.db_id == record.src_db_id)
                .or_else(|| (sources.len() == 1).then(|| &sources[0]))
                .ok_or_else(|| {
                    StepError::Permanent(format!(
                        "the snapshot does not hold the source of '{name}'"
                    ))
                })?;
            destinations.push(Destination {
                host_id: request.host_id.clone(),
                db_id: source.db_id.clone(),
                db_name: name.clone(),
            });
            old.push(OldEcho::from(record));
        }
        ctx.save("old_echo", &old);
        ctx.save(
            "plan",
            &ImportPlan {
                snapshot_id: request.snapshot_id,
                destinations,
                target_state: request.target_state,
            },
        );
        Ok(())
    })
}

pub fn detach_old(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let old: Vec<OldEcho> = ctx.load("old_echo")?;
        for (n, echo) in old.iter().enumerate() {
            ctx.agent(
                &echo.host_id,
                "detach",
                &n.to_string(),
                "detach",
                json!({"db_id": echo.db_id}),
                AGENT_DEADLINE,
            )
            .await?;
        }
        Ok(())
    })
}

pub fn unmap_old(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let sdp = ctx.sdp()?;
        let old: Vec<OldEcho> = ctx.load("old_echo")?;
        for volume in old.iter().flat_map(|e| &e.volumes) {
            if let Some(mapping) = volume.mapping_id {
                sdp.delete_mapping(mapping).await?;
                ctx.store().ledger_deleted("mapping", mapping).await?;
            }
        }
        Ok(())
    })
}

pub fn delete_old_clones(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let sdp = ctx.sdp()?;
        let old: Vec<OldEcho> = ctx.load("old_echo")?;
        for volume in old.iter().flat_map(|e| &e.volumes) {
            sdp.delete_volume(volume.volume_id).await?;
            ctx.store()
                .ledger_deleted("volume", volume.volume_id)
                .await?;
        }
        Ok(())
    })
}

/// Removes the SDP host objects Flex made for the deleted echo DBs once nothing is mapped to
/// them. Before the records are forgotten: if the array refuses, the echo DB is still listed
/// and deleting it again finishes the job. (A refresh maps new clones to the same host object
/// right after, so it has no such step.)
pub fn release_old_hosts(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let old: Vec<OldEcho> = ctx.load("old_echo")?;
        let mut hosts: Vec<u64> = old
            .iter()
            .flat_map(|e| e.volumes.iter().filter_map(|v| v.sdp_host_id))
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        for host in hosts {
            release_sdp_host(ctx, host).await?;
        }
        Ok(())
    })
}

/// Forgets the deleted (or replaced) echo DBs' records: the last step, once the host, the
/// array and the ledger no longer hold anything of them.
pub fn forget_old(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let old: Vec<OldEcho> = ctx.load("old_echo")?;
        for echo in &old {
            ctx.store()
                .delete_echo_db_row(&echo.host_id, &echo.db_id)
                .await?;
        }
        Ok(())
    })
}

pub fn check_snapshot_unused(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let request: DeleteSnapshotRequest = ctx.request()?;
        if let Some(users) = snapshot_users(ctx.store(), &request.snapshot_id).await? {
            return Err(StepError::Permanent(format!(
                "db snapshot '{}' is used by echo DBs: {}",
                request.snapshot_id,
                users.join(", ")
            )));
        }
        Ok(())
    })
}

pub fn delete_snapshot_objects(ctx: &mut Ctx) -> StepFuture<'_> {
    Box::pin(async move {
        let request: DeleteSnapshotRequest = ctx.request()?;
        let sdp = ctx.sdp()?;
        delete_snapshot_now(ctx.store(), &sdp, &request.snapshot_id)
            .await
            .map_err(|err| match err {
                DeleteSnapshotError::NotFound => StepError::Permanent(format!(
                    "db snapshot '{}' does not exist",
                    request.snapshot_id
                )),
                DeleteSnapshotError::InUse(users) => StepError::Permanent(format!(
                    "db snapshot '{}' is used by echo DBs: {}",
                    request.snapshot_id,
                    users.join(", ")
                )),
                DeleteSnapshotError::Sdp(err) => err.into(),
                DeleteSnapshotError::Store(err) => err.into(),
            })
    })
}

/// Echo DBs made from a snapshot, as `host/name`; `None` when there are none.
pub async fn snapshot_users(
    store: &Store,
    snapshot_id: &str,
) -> Result<Option<Vec<String>>, StoreError> {
    let users: Vec<String> = store
        .list_echo_dbs()
        .await?
        .into_iter()
        .filter(|e| e.snapshot_id == snapshot_id)
        .map(|e| format!("{}/{}", e.host_id, e.name))
        .collect();
    Ok((!users.is_empty()).then_some(users))
}

#[derive(Debug)]
pub enum DeleteSnapshotError {
    NotFound,
    InUse(Vec<String>),
    Sdp(SdpError),
    Store(StoreError),
}

impl From<SdpError> for DeleteSnapshotError {
    fn from(err: SdpError) -> Self {
        DeleteSnapshotError::Sdp(err)
    }
}

impl From<StoreError> for DeleteSnapshotError {
    fn from(err: StoreError) -> Self {
        DeleteSnapshotError::Store(err)
    }
}

/// Deletes a db snapshot and its SDP snapshots, now. Refused while echo DBs use it. Used by
/// the seed path's synchronous delete and by the delete-snapshot task alike.
pub async fn delete_snapshot_now(
    store: &Store,
    sdp: &SdpClient,
    snapshot_id: &str,
) -> Result<(), DeleteSnapshotError> {
    let Some(snapshot) = store.get_db_snapshot(snapshot_id).await? else {
        return Err(DeleteSnapshotError::NotFound);
    };
    if let Some(users) = snapshot_users(store, snapshot_id).await? {
        return Err(DeleteSnapshotError::InUse(users));
    }
    let vg_snapshots: Vec<VgSnapshot> =
        serde_json::from_str(&snapshot.vg_snapshots).unwrap_or_default();
    for vg_snapshot in vg_snapshots {
        sdp.delete_snapshot(vg_snapshot.sdp_snapshot_id).await?;
        store
            .ledger_deleted("vg_snapshot", vg_snapshot.sdp_snapshot_id)
            .await?;
    }
    store.delete_db_snapshot_row(snapshot_id).await?;
    Ok(())
}
