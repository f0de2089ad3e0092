//! Expiry: an unprotected echo DB whose `expires_ts` has passed is deleted by an ordinary
//! `DeleteCommand` task (ref id `expiry`), exactly as a user's delete would. Replicas race
//! through the store: the task is created with an `Expires` guard that swaps the echo DB's
//! `expiry_task_id` compare-and-set, so one replica starts it. An echo DB whose delete (a
//! user's or an earlier expiry) is running is left to it; one whose expiry delete failed is
//! tried again after [`RETRY_AFTER_SECS`].

use crate::{
    model::{CommandType, TaskState},
    store::{Creation, Once, Store, StoreResult, TaskFilter, TaskGuard},
    workflows::{
        AUTOMATIC_TASKS, EXPIRY_REF_ID,
        requests::{DeleteEchoDbRequest, new_task},
    },
};

/// How long after a failed expiry delete the next one is tried.
pub const RETRY_AFTER_SECS: i64 = 300;

/// Starts the deletes of the echo DBs expired at `now`; returns their task ids.
pub async fn expire_due(store: &Store, owner: &str, now: i64) -> StoreResult<Vec<String>> {
    let expired = store.expired_echo_dbs(now).await?;
    if expired.is_empty() {
        return Ok(Vec::new());
    }
    let running = TaskFilter {
        state: Some(TaskState::Running),
        command_type: Some(CommandType::Delete),
        ref_id: None,
    };
    let deleting: Vec<DeleteEchoDbRequest> = store
        .list_tasks(&running)
        .await?
        .iter()
        .filter_map(|task| serde_json::from_str(&task.request).ok())
        .collect();
    let mut started = Vec::new();
    for echo in expired {
        let being_deleted = deleting.iter().any(|d| {
            d.host_id == echo.host_id
                && (d.database_id == echo.db_id || echo.former_db_ids.contains(&d.database_id))
        });
        if being_deleted {
            continue;
        }
        if let Some(previous) = &echo.expiry_task_id
            && let Some(task) = store.get_task(previous).await?
            && (task.state == TaskState::Running || task.update_ts > now - RETRY_AFTER_SECS)
        {
            continue;
        }
        let request = DeleteEchoDbRequest {
            host_id: echo.host_id.clone(),
            database_id: echo.db_id.clone(),
        };
        let task = new_task(&request, EXPIRY_REF_ID, AUTOMATIC_TASKS, owner)
            .map_err(|err| crate::store::corrupt("echo_dbs", &echo.db_id, err))?;
        let guard = TaskGuard::Expires {
            host_id: echo.host_id.clone(),
            db_id: echo.db_id.clone(),
            now,
            seen: echo.expiry_task_id.clone(),
        };
        if store.create_task(&task, &Once::Guard(guard)).await? == Creation::Created {
            tracing::info!(
                request_id = %task.record.request_id,
                host_id = %echo.host_id,
                db_name = %echo.name,
                "echo DB expired; deleting it"
            );
            started.push(task.record.request_id);
        }
    }
    Ok(started)
}
