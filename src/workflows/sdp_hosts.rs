//! The SDP host object (and its initiator) each destination host is mapped through: found or
//! made by an import, removed when Flex made it and nothing is mapped to it any more.
//!
//! These objects are named after the destination, not the task, so a create whose answer was
//! lost cannot be told from an operator's object by its name: an intent recorded before the
//! create can (see the `sdp_intents` table). And they are shared by every task that maps to
//! the destination, so an import claims a host's object before it uses it and a release before
//! it removes it (`resource_claims`): a release never takes away what another task is about
//! to map to.

use serde::{Deserialize, Serialize};

use super::{context::EchoCx, together::create_or_find};
use crate::{
    executor::{StepError, StepFuture},
    model::LedgerKind,
    sdp::HostIqn,
    store::{Claim, Shared},
};

/// The SDP host object a destination host is mapped through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SdpHostRef {
    pub sdp_host_id: u64,
    /// Flex made it (and removes it when nothing is mapped to it any more).
    pub created: bool,
}

pub fn ensure_sdp_hosts(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = cx.plan()?.clone();
        let sdp = cx.sdp()?;
        let task_id = cx.request_id().to_owned();
        for destination in &plan.destinations {
            // Claimed on every run of the step (a claim is kept until the task ends), so that
            // no release removes the object between finding it here and mapping to it.
            if let Err(releaser) = cx
                .store()
                .claim(
                    Shared::SdpHostOf(&destination.host_id),
                    &task_id,
                    Claim::Use,
                )
                .await?
            {
                return Err(StepError::transient(format!(
                    "the SDP host object of '{}' is being removed by task {releaser}; waiting \
                     for it to finish",
                    destination.host_id
                )));
            }
            if cx.state.sdp_hosts.contains_key(&destination.host_id) {
                continue;
            }
            let host = cx
                .store()
                .get_host(&destination.host_id)
                .await?
                .ok_or_else(|| {
                    StepError::permanent(format!(
                        "host '{}' is not registered",
                        destination.host_id
                    ))
                })?;
            if host.host_iqn.is_empty() {
                return Err(StepError::transient(format!(
                    "host '{}' has not reported its IQN yet",
                    destination.host_id
                )));
            }
            // The initiator and a host object of the destination's name, asked together.
            let (host_iqn, by_name) = tokio::try_join!(
                sdp.find_host_iqn(&host.host_iqn),
                sdp.find_host(&destination.host_id)
            )?;
            let found = match host_iqn.as_ref().and_then(|iqn| iqn.host.id()) {
                Some(id) if by_name.as_ref().is_some_and(|h| h.id == id) => by_name,
                Some(id) => sdp.get_host(id).await?,
                None => by_name,
            };
            // Created before but not answered (a 502, a timeout, a crash): the intent
            // recorded before the create tells our object from an operator's.
            let reference = if let Some(existing) = found {
                SdpHostRef {
                    created: cx
                        .store()
                        .ledger_adopt(LedgerKind::Host, existing.id, &existing.name, &task_id)
                        .await?,
                    sdp_host_id: existing.id,
                }
            } else {
                cx.store()
                    .ledger_intend(LedgerKind::Host, &destination.host_id, &task_id)
                    .await?;
                // Tasks importing to one host at once race to create its object: the losers
                // find the winner's (ours too: their intent is recorded) instead of retrying.
                let name = &destination.host_id;
                let (host, made_now) =
                    create_or_find(sdp.create_host(name, "Windows"), || sdp.find_host(name))
                        .await?;
                let created = if made_now {
                    cx.store()
                        .ledger_created(LedgerKind::Host, host.id, &host.name, &task_id)
                        .await?;
                    true
                } else {
                    cx.store()
                        .ledger_adopt(LedgerKind::Host, host.id, &host.name, &task_id)
                        .await?
                };
                SdpHostRef {
                    sdp_host_id: host.id,
                    created,
                }
            };
            if let Some(existing) = host_iqn {
                cx.store()
                    .ledger_adopt(LedgerKind::HostIqn, existing.id, &existing.iqn, &task_id)
                    .await?;
            } else {
                cx.store()
                    .ledger_intend(LedgerKind::HostIqn, &host.host_iqn, &task_id)
                    .await?;
                let iqn = &host.host_iqn;
                let (made, made_now) =
                    create_or_find(sdp.create_host_iqn(reference.sdp_host_id, iqn), || {
                        sdp.find_host_iqn(iqn)
                    })
                    .await?;
                if made_now {
                    cx.store()
                        .ledger_created(LedgerKind::HostIqn, made.id, &made.iqn, &task_id)
                        .await?;
                } else {
                    cx.store()
                        .ledger_adopt(LedgerKind::HostIqn, made.id, &made.iqn, &task_id)
                        .await?;
                }
            }
            cx.state
                .sdp_hosts
                .insert(destination.host_id.clone(), reference);
        }
        Ok(())
    })
}

/// Removes the SDP host object of Flex host `host_id` if Flex created it, nothing is mapped
/// to it, and no other running task is using it.
pub async fn release_sdp_host(
    cx: &EchoCx,
    host_id: &str,
    sdp_host_id: u64,
) -> Result<(), StepError> {
    let sdp = cx.sdp()?;
    let Some(host_entry) = cx
        .store()
        .ledger_entry(LedgerKind::Host, sdp_host_id)
        .await?
    else {
        return Ok(());
    };
    if let Err(user) = cx
        .store()
        .claim(Shared::SdpHostOf(host_id), cx.request_id(), Claim::Release)
        .await?
    {
        tracing::info!(%host_id, %user, "SDP host object in use by another task; left for it");
        return Ok(());
    }
    if !sdp.list_mappings_of_host(sdp_host_id).await?.is_empty() {
        return Ok(());
    }
    let iqns: Vec<HostIqn> = sdp
        .list(
            "host_iqns",
            &[("host.ref", format!("/hosts/{sdp_host_id}"))],
        )
        .await?;
    for iqn in &iqns {
        sdp.delete_host_iqn(iqn.id).await?;
        cx.store()
            .ledger_deleted(LedgerKind::HostIqn, iqn.id)
            .await?;
    }
    // An initiator deleted by an earlier attempt whose answer was lost is no longer listed;
    // the ledger still has it. Those the array no longer has are settled here.
    for entry in cx
        .store()
        .ledger_live_of_task(LedgerKind::HostIqn, &host_entry.task_id)
        .await?
    {
        if sdp
            .get::<HostIqn>("host_iqns", entry.sdp_id)
            .await?
            .is_none()
        {
            cx.store()
                .ledger_deleted(LedgerKind::HostIqn, entry.sdp_id)
                .await?;
        }
    }
    sdp.delete_host(sdp_host_id).await?;
    cx.store()
        .ledger_deleted(LedgerKind::Host, sdp_host_id)
        .await?;
    Ok(())
}

/// Undo: remove the SDP host objects this import made, also one made just before a failure or
/// crash (found by the destination's name or IQN), once nothing is mapped to them.
pub fn release_sdp_hosts(cx: &mut EchoCx) -> StepFuture<'_> {
    Box::pin(async move {
        let plan = cx.plan()?.clone();
        let sdp = cx.sdp()?;
        let mut candidates: Vec<(String, u64)> = cx
            .state
            .sdp_hosts
            .iter()
            .map(|(host_id, r)| (host_id.clone(), r.sdp_host_id))
            .collect();
        for destination in &plan.destinations {
            let host_id = &destination.host_id;
            if let Some(host) = sdp.find_host(host_id).await? {
                candidates.push((host_id.clone(), host.id));
            }
            let iqn = cx
                .store()
                .get_host(host_id)
                .await?
                .map(|h| h.host_iqn)
                .unwrap_or_default();
            if !iqn.is_empty()
                && let Some(host) = sdp.find_host_by_iqn(&iqn).await?
            {
                candidates.push((host_id.clone(), host.id));
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        for (host_id, sdp_host_id) in candidates {
            release_sdp_host(cx, &host_id, sdp_host_id).await?;
        }
        Ok(())
    })
}
