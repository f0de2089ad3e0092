//! Deleting a db snapshot: refused while echo DBs or running imports use it, else its SDP
//! snapshots go, then its record. The seed path does this synchronously
//! ([`delete_snapshot_now`]); the current path runs it as a `DeleteDBSnapshotCommand` task,
//! which claims the snapshot for release first (see `store::claims`), so no import starts
//! cloning from VG snapshots on their way out.

use super::{context::EchoCx, requests::EchoRequest};
use crate::{
    executor::{StepError, StepFuture},
    model::LedgerKind,
    sdp::{SdpClient, SdpError},
    store::{Claim, Shared, Store, StoreError},
};

fn snapshot_id_of(cx: &EchoCx) -> Result<String, StepError> {
    match &cx.request {
        EchoRequest::DeleteSnapshot(request) => Ok(request.snapshot_id.clone()),
        _ => Err(StepError::permanent(
            "snapshot deletion steps run in delete-snapshot tasks only",
        )),
    }
}

/// Why a snapshot that running tasks clone from is not deleted.
pub fn importing(snapshot_id: &str, tasks: &[String]) -> String {
    format!(
        "db snapshot '{snapshot_id}' is in use by running tasks: {}",
        tasks.join(", ")
    )
}

fn in_use(snapshot_id: &str, users: &[String]) -> String {
    format!(
        "db snapshot '{snapshot_id}' is used by echo DBs: {}",
        users.join(", ")
    )
}

pub fn check_snapshot_unused(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let snapshot_id = snapshot_id_of(cx)?;
        let claimed = cx
            .store()
            .claim(
                Shared::DbSnapshot(&snapshot_id),
                cx.request_id(),
                Claim::Release,
            )
            .await?;
        if let Err(user) = claimed {
            return Err(StepError::permanent(importing(&snapshot_id, &[user])));
        }
        if let Some(users) = snapshot_users(cx.store(), &snapshot_id).await? {
            return Err(StepError::permanent(in_use(&snapshot_id, &users)));
        }
        Ok(())
    })
}

pub fn delete_snapshot_objects(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let snapshot_id = snapshot_id_of(cx)?;
        let sdp = cx.sdp()?;
        delete_snapshot_now(cx.store(), &sdp, &snapshot_id, cx.request_id())
            .await
            .or_else(|err| match err {
                // Gone: this step's earlier run (before a crash) or another delete did it.
                DeleteSnapshotError::NotFound => Ok(()),
                DeleteSnapshotError::InUse(users) => {
                    Err(StepError::permanent(in_use(&snapshot_id, &users)))
                }
                DeleteSnapshotError::Importing(tasks) => {
                    Err(StepError::permanent(importing(&snapshot_id, &tasks)))
                }
                DeleteSnapshotError::Sdp(err) => Err(err.into()),
                DeleteSnapshotError::Store(err) => Err(err.into()),
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
    /// Echo DBs (`host/name`) made from it.
    InUse(Vec<String>),
    /// Running tasks that clone from it.
    Importing(Vec<String>),
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
/// the seed path's synchronous delete and by the delete-snapshot task alike; `by_task` is the
/// task's request id (`""` for the synchronous delete).
pub async fn delete_snapshot_now(
    store: &Store,
    sdp: &SdpClient,
    snapshot_id: &str,
    by_task: &str,
) -> Result<(), DeleteSnapshotError> {
    let Some(snapshot) = store.get_db_snapshot(snapshot_id).await? else {
        return Err(DeleteSnapshotError::NotFound);
    };
    if let Some(users) = snapshot_users(store, snapshot_id).await? {
        return Err(DeleteSnapshotError::InUse(users));
    }
    let importing = store
        .claimants(Shared::DbSnapshot(snapshot_id), Claim::Use)
        .await?;
    if !importing.is_empty() {
        return Err(DeleteSnapshotError::Importing(importing));
    }
    for vg_snapshot in &snapshot.vg_snapshots {
        sdp.delete_snapshot(vg_snapshot.sdp_snapshot_id).await?;
        store
            .ledger_deleted(LedgerKind::VgSnapshot, vg_snapshot.sdp_snapshot_id)
            .await?;
    }
    store.delete_db_snapshot_row(snapshot_id, by_task).await?;
    Ok(())
}
