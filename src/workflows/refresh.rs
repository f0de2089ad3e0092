//! Planning a refresh: which echo DBs on the host go (the removal steps take them away), and
//! the import that brings them back from the newer snapshot under the same names.

use super::{
    context::EchoCx,
    import::ImportPlan,
    removal::{self, OldEcho},
    requests::{Destination, EchoRequest},
};
use crate::executor::{StepError, StepFuture};

pub fn plan_refresh(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let EchoRequest::Refresh(request) = &cx.request else {
            return Err(StepError::permanent(
                "plan_refresh runs in refresh tasks only",
            ));
        };
        let request = request.clone();
        cx.use_snapshot(&request.snapshot_id).await?;
        let snapshot = cx
            .store()
            .get_db_snapshot(&request.snapshot_id)
            .await?
            .ok_or_else(|| {
                StepError::permanent(format!(
                    "db snapshot '{}' does not exist",
                    request.snapshot_id
                ))
            })?;
        let sources = snapshot.databases;
        let echo_dbs = cx.store().list_echo_dbs().await?;
        let mut old = Vec::new();
        let mut destinations = Vec::new();
        for name in &request.db_names {
            let record = echo_dbs
                .iter()
                .find(|e| e.host_id == request.host_id && &e.name == name)
                .ok_or_else(|| {
                    StepError::permanent(format!(
                        "'{name}' is not an echo DB on '{}'",
                        request.host_id
                    ))
                })?;
            removal::refuse_protected(record)?;
            // The same source database in the newer snapshot, or its only database.
            let source = sources
                .iter()
                .find(|s| s.db_id == record.src_db_id)
                .or_else(|| (sources.len() == 1).then(|| &sources[0]))
                .ok_or_else(|| {
                    StepError::permanent(format!(
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
        cx.state.old_echo = old;
        cx.state.plan = Some(ImportPlan {
            snapshot_id: request.snapshot_id,
            destinations,
            target_state: request.target_state,
        });
        Ok(())
    })
}
