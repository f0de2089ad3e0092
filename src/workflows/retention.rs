//! Retention of a snapshot schedule: after each of its runs, its own snapshots beyond
//! `keep_last`, oldest first, go through ordinary `DeleteDBSnapshotCommand` tasks. A snapshot
//! an echo DB or a running task uses is kept, and looked at again after the next run.
//!
//! The step never fails its snapshot: the snapshot it took is good whatever retention finds.

use super::{
    RETENTION_REF_ID,
    context::EchoCx,
    delete_snapshot::snapshot_users,
    requests::{DeleteSnapshotRequest, new_task},
};
use crate::{
    executor::StepFuture,
    store::{Claim, Creation, Idempotency, Once, Shared, StoreError},
};

pub fn apply_retention(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let Some(schedule_id) = cx.snapshot_spec()?.schedule_id.clone() else {
            return Ok(());
        };
        match retire_old_snapshots(cx, &schedule_id).await {
            Ok(retired) if !retired.is_empty() => {
                tracing::info!(%schedule_id, snapshots = ?retired, "retention deletes snapshots");
            }
            Ok(_) => {}
            // A store that does not answer now may later: worth the step's retry.
            Err(err @ StoreError::Unavailable(_)) => return Err(err.into()),
            Err(err) => tracing::warn!(%schedule_id, error = %err, "retention skipped"),
        }
        Ok(())
    })
}

/// Starts the deletes of the schedule's snapshots beyond its `keep_last`; returns their ids.
async fn retire_old_snapshots(cx: &EchoCx, schedule_id: &str) -> Result<Vec<String>, StoreError> {
    let store = cx.store();
    // A deleted schedule's snapshots are the operator's to delete.
    let Some(schedule) = store.get_schedule(schedule_id).await? else {
        return Ok(Vec::new());
    };
    let snapshots = store.db_snapshots_of_schedule(schedule_id).await?;
    let keep = usize::try_from(schedule.keep_last).unwrap_or(usize::MAX);
    let excess = snapshots.len().saturating_sub(keep);
    let mut retired = Vec::new();
    for snapshot in &snapshots[..excess] {
        let id = snapshot.id.as_str();
        let used = snapshot_users(store, id).await?.is_some()
            || !store
                .claimants(Shared::DbSnapshot(id), Claim::Use)
                .await?
                .is_empty()
            || !store
                .claimants(Shared::DbSnapshot(id), Claim::Release)
                .await?
                .is_empty();
        if used {
            continue;
        }
        let request = DeleteSnapshotRequest {
            snapshot_id: snapshot.id.clone(),
            host_id: snapshot.host_id.clone(),
        };
        let task = new_task(
            &request,
            RETENTION_REF_ID,
            super::AUTOMATIC_TASKS,
            &cx.deps.instance_id,
        )
        .map_err(|err| crate::store::corrupt("tasks", id, err))?;
        // Once per run and snapshot, however often this step is re-run.
        let once = Once::Key(Idempotency {
            key: format!("retention:{}:{id}", cx.request_id()),
            fingerprint: id.to_owned(),
        });
        if store.create_task(&task, &once).await? == Creation::Created {
            retired.push(snapshot.id.clone());
        }
    }
    Ok(retired)
}
