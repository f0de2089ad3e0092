//! Snapshot schedules: each due schedule starts an ordinary `CreateDBSnapshotCommand` task
//! (ref id `schedule`) whose last step applies the schedule's retention. The task is created
//! with a `RunsSchedule` guard that moves the schedule's `next_run_ts` in the same
//! transaction, so a due run starts once across replicas.

use super::cadence::next_run;
use crate::{
    store::{Creation, Once, Store, StoreResult, TaskGuard},
    workflows::{
        AUTOMATIC_TASKS, SCHEDULE_REF_ID,
        requests::{SnapshotSpec, new_task},
    },
};

/// Starts the runs of the schedules due at `now`; returns their task ids.
pub async fn run_due(store: &Store, owner: &str, now: i64) -> StoreResult<Vec<String>> {
    let mut started = Vec::new();
    for schedule in store.due_schedules(now).await? {
        let next = match next_run(&schedule.cadence, schedule.next_run_ts, now) {
            Ok(next) => next,
            Err(err) => {
                tracing::warn!(schedule_id = %schedule.id, error = %err, "schedule cannot run");
                continue;
            }
        };
        let spec = SnapshotSpec {
            source_host_id: schedule.source_host_id.clone(),
            database_ids: schedule.database_ids.clone(),
            name_prefix: schedule.name_prefix.clone(),
            consistency_level: schedule.consistency_level,
            force_vss_usage: false,
            schedule_id: Some(schedule.id.clone()),
        };
        let task = new_task(&spec, SCHEDULE_REF_ID, AUTOMATIC_TASKS, owner)
            .map_err(|err| crate::store::corrupt("snapshot_schedules", &schedule.id, err))?;
        let guard = TaskGuard::RunsSchedule {
            schedule_id: schedule.id.clone(),
            due: schedule.next_run_ts,
            next,
            now,
        };
        if store.create_task(&task, &Once::Guard(guard)).await? == Creation::Created {
            tracing::info!(
                request_id = %task.record.request_id,
                schedule_id = %schedule.id,
                next_run_ts = next,
                "schedule runs"
            );
            started.push(task.record.request_id);
        }
    }
    Ok(started)
}
