//! Taking echo DBs away: the whole of a delete, and the first half of a refresh. These steps
//! move forward only: once a database is detached there is nothing to put back.

use serde::{Deserialize, Serialize};

use super::{EXPIRY_REF_ID, context::EchoCx, requests::EchoRequest, sdp_hosts::release_sdp_host};
use crate::{
    agents::protocol::commands::Detach,
    clock::now_ts,
    executor::{StepError, StepFuture},
    model::{EchoVolume, LedgerKind, Lifecycle},
    store::EchoDbRecord,
};

/// An echo DB being taken away.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OldEcho {
    pub host_id: String,
    pub db_id: String,
    pub name: String,
    pub src_db_id: String,
    pub volumes: Vec<EchoVolume>,
    /// What a refresh carries over to the new copy: when it was first made, and its ids.
    #[serde(default)]
    pub created_ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former_db_ids: Vec<String>,
    #[serde(default)]
    pub lifecycle: Lifecycle,
}

impl From<&EchoDbRecord> for OldEcho {
    fn from(record: &EchoDbRecord) -> Self {
        OldEcho {
            host_id: record.host_id.clone(),
            db_id: record.db_id.clone(),
            name: record.name.clone(),
            src_db_id: record.src_db_id.clone(),
            volumes: record.volumes.clone(),
            created_ts: Some(record.created_ts),
            former_db_ids: record.former_db_ids.clone(),
            lifecycle: record.lifecycle,
        }
    }
}

pub fn load_echo_db(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let EchoRequest::DeleteEchoDb(request) = &cx.request else {
            return Err(StepError::permanent(
                "load_echo_db runs in delete tasks only",
            ));
        };
        let record = cx
            .store()
            .get_echo_db(&request.host_id, &request.database_id)
            .await?
            .ok_or_else(|| {
                StepError::permanent(format!(
                    "database '{}' on host '{}' is not an echo DB",
                    request.database_id, request.host_id
                ))
            })?;
        refuse_protected(&record)?;
        // Flex's own delete of an expired echo DB stops if it was kept alive meanwhile.
        if cx.task.ref_id == EXPIRY_REF_ID
            && record.lifecycle.expires_ts.is_none_or(|at| at > now_ts())
        {
            return Err(StepError::permanent(format!(
                "echo DB '{}' on host '{}' no longer expires now (kept alive or changed); \
                 nothing was deleted",
                record.name, record.host_id
            )));
        }
        cx.state.old_echo = vec![OldEcho::from(&record)];
        Ok(())
    })
}

/// Why a protected echo DB is not taken away (the API refuses it first; this is the last word).
pub fn refuse_protected(record: &EchoDbRecord) -> Result<(), StepError> {
    if record.lifecycle.protected {
        return Err(StepError::permanent(format!(
            "echo DB '{}' on host '{}' is protected; nothing was changed",
            record.name, record.host_id
        )));
    }
    Ok(())
}

pub fn detach_old(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        for (n, echo) in cx.state.old_echo.iter().enumerate() {
            let command = Detach {
                db_id: echo.db_id.clone(),
            };
            cx.send(&echo.host_id, "detach", &n.to_string(), command)
                .await?;
        }
        Ok(())
    })
}

pub fn unmap_old(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let sdp = cx.sdp()?;
        for volume in cx.state.old_echo.iter().flat_map(|e| &e.volumes) {
            if let Some(mapping) = volume.mapping_id {
                sdp.delete_mapping(mapping).await?;
                cx.store()
                    .ledger_deleted(LedgerKind::Mapping, mapping)
                    .await?;
            }
        }
        Ok(())
    })
}

pub fn delete_old_clones(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let sdp = cx.sdp()?;
        for volume in cx.state.old_echo.iter().flat_map(|e| &e.volumes) {
            sdp.delete_volume(volume.volume_id).await?;
            cx.store()
                .ledger_deleted(LedgerKind::Volume, volume.volume_id)
                .await?;
        }
        Ok(())
    })
}

/// Removes the SDP host objects Flex made for the deleted echo DBs once nothing is mapped to
/// them. Before the records are forgotten: if the array refuses, the echo DB is still listed
/// and deleting it again finishes the job. (A refresh maps new clones to the same host object
/// right after, so it has no such step.)
pub fn release_old_hosts(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let mut hosts: Vec<(String, u64)> = cx
            .state
            .old_echo
            .iter()
            .flat_map(|e| {
                let ids = e.volumes.iter().filter_map(|v| v.sdp_host_id);
                ids.map(|id| (e.host_id.clone(), id))
            })
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        for (host_id, sdp_host_id) in hosts {
            release_sdp_host(cx, &host_id, sdp_host_id).await?;
        }
        Ok(())
    })
}

/// Forgets the deleted (or replaced) echo DBs' records: the last step, once the host, the
/// array and the ledger no longer hold anything of them.
pub fn forget_old(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        for echo in &cx.state.old_echo {
            cx.store()
                .delete_echo_db_row(&echo.host_id, &echo.db_id, cx.request_id())
                .await?;
        }
        Ok(())
    })
}
