//! Reconcile: the ledger held up against the array.
//!
//! Two kinds of finding. *Missing*: a live ledger row whose object the array no longer has
//! (someone deleted it by hand, or the array lost it); applying settles the row. *Orphans*:
//! an array object named the way this deployment names what it makes, that no live ledger row
//! holds (left by a restored old backup, a lost database, a crash the ledger never heard of);
//! applying deletes it, its mappings first. Nothing is deleted that another deployment's tag
//! names, that a running task may still record, that is mapped to a host this Flex does not
//! own, or that thin clones Flex keeps come from: those are reported and kept.
//!
//! The API calls this directly (like the seed path's snapshot delete): it is one operator's
//! request, answered with what it found and did, and every action it takes is audited.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::names::{Maker, ObjectNames, short_id};
use crate::{
    clock::now_ms,
    model::{LedgerKind, TaskState},
    sdp::{Host, HostIqn, Mapping, Ref, SdpClient, SdpError, Snapshot, Volume},
    store::{Store, StoreError, TaskFilter},
};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the SDP could not be read: {0}")]
    Sdp(#[from] SdpError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::wire_enum! {
    /// What reconcile does (or, applied, did) about a finding.
    pub enum Action ("reconcile action") {
        /// Delete the orphan from the array.
        Delete = "delete",
        /// Settle the ledger row of an object the array no longer has.
        Settle = "settle",
        /// Leave it, for the reason given.
        Keep = "keep",
    }
}

crate::wire_enum! {
    /// How an applied action went.
    pub enum Outcome ("reconcile outcome") {
        Done = "done",
        /// Someone else deleted or settled it first.
        AlreadyGone = "already_gone",
        Failed = "failed",
    }
}

/// A live ledger row whose object the array lacks.
#[derive(Clone, Debug, Serialize)]
pub struct Missing {
    pub kind: LedgerKind,
    pub sdp_id: u64,
    pub name: String,
    pub task_id: String,
    pub created_ms: i64,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An array object named the way Flex names its objects that the ledger lacks.
#[derive(Clone, Debug, Serialize)]
pub struct Orphan {
    pub kind: LedgerKind,
    pub sdp_id: u64,
    pub name: String,
    /// The short id in its name: the task that made it.
    pub task_short_id: String,
    /// Named before deployment tags, so whose it is cannot be told.
    pub untagged: bool,
    /// A volume's mappings (deleted before it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<OrphanMapping>,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OrphanMapping {
    pub sdp_id: u64,
    pub sdp_host_id: u64,
    pub sdp_host_name: String,
}

/// What reconcile found (and, applied, did).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub deployment_tag: String,
    pub checked_ms: i64,
    pub applied: bool,
    pub missing: Vec<Missing>,
    pub orphans: Vec<Orphan>,
    /// Thin clones named by other Flex deployments, by their tag: never touched.
    pub other_deployments: BTreeMap<String, u64>,
}

/// The array as reconcile reads it.
struct Array {
    volumes: Vec<Volume>,
    snapshots: Vec<Snapshot>,
    mappings: Vec<Mapping>,
    hosts: Vec<Host>,
    iqns: Vec<HostIqn>,
}

impl Array {
    async fn read(sdp: &SdpClient) -> Result<Array, SdpError> {
        Ok(Array {
            volumes: sdp.list("volumes", &[]).await?,
            snapshots: sdp.list("snapshots", &[]).await?,
            mappings: sdp.list("mappings", &[]).await?,
            hosts: sdp.list("hosts", &[]).await?,
            iqns: sdp.list("host_iqns", &[]).await?,
        })
    }

    fn holds(&self, kind: LedgerKind, id: u64) -> bool {
        match kind {
            LedgerKind::VgSnapshot => self.snapshots.iter().any(|s| s.id == id),
            LedgerKind::Volume => self.volumes.iter().any(|v| v.id == id),
            LedgerKind::Mapping => self.mappings.iter().any(|m| m.id == id),
            LedgerKind::Host => self.hosts.iter().any(|h| h.id == id),
            LedgerKind::HostIqn => self.iqns.iter().any(|i| i.id == id),
        }
    }
}

fn keep(reason: String) -> (Action, Option<String>) {
    (Action::Keep, Some(reason))
}

/// Compares the ledger with the array and says what applying would do. The array is read
/// before the ledger, so an object made meanwhile is either not seen or already recorded;
/// ledger rows newer than the reading, and anything of a running task, are kept.
pub async fn survey(
    store: &Store,
    sdp: &SdpClient,
    names: &ObjectNames,
) -> Result<Report, ReconcileError> {
    let checked_ms = now_ms();
    let array = Array::read(sdp).await?;
    let ledger = store.ledger_live().await?;
    let running: Vec<String> = store
        .list_tasks(&TaskFilter {
            state: Some(TaskState::Running),
            ..TaskFilter::default()
        })
        .await?
        .into_iter()
        .map(|task| task.request_id)
        .collect();
    let running_short: HashSet<String> = running.iter().map(|id| short_id(id)).collect();
    let registered = store.list_hosts().await?;

    let mut missing = Vec::new();
    let mut held: HashMap<LedgerKind, HashSet<u64>> = HashMap::new();
    for row in ledger {
        held.entry(row.kind).or_default().insert(row.sdp_id);
        if array.holds(row.kind, row.sdp_id) {
            continue;
        }
        let (action, reason) = if running.contains(&row.task_id) {
            keep(format!(
                "task {} is still running and may be deleting it",
                row.task_id
            ))
        } else if row.created_ms >= checked_ms {
            keep("recorded after the array was read".into())
        } else {
            (Action::Settle, None)
        };
        missing.push(Missing {
            kind: row.kind,
            sdp_id: row.sdp_id,
            name: row.name,
            task_id: row.task_id,
            created_ms: row.created_ms,
            action,
            reason,
            outcome: None,
            error: None,
        });
    }
    let ledger_holds = |kind, id| held.get(&kind).is_some_and(|ids| ids.contains(&id));

    // The SDP hosts this Flex owns: made by it, or the ones its registered hosts map through
    // (by name or initiator, as imports find them).
    let registered_iqns: HashSet<&str> = registered
        .iter()
        .map(|h| h.host_iqn.as_str())
        .filter(|iqn| !iqn.is_empty())
        .collect();
    let owned_hosts: HashSet<u64> = array
        .hosts
        .iter()
        .filter(|host| {
            ledger_holds(LedgerKind::Host, host.id)
                || registered.iter().any(|r| r.host_id == host.name)
                || array.iqns.iter().any(|iqn| {
                    iqn.host.id() == Some(host.id) && registered_iqns.contains(iqn.iqn.as_str())
                })
        })
        .map(|host| host.id)
        .collect();
    let host_name = |id: u64| {
        array
            .hosts
            .iter()
            .find(|h| h.id == id)
            .map_or_else(String::new, |h| h.name.clone())
    };

    let mut orphans = Vec::new();
    let mut other_deployments = BTreeMap::new();
    for volume in &array.volumes {
        if ledger_holds(LedgerKind::Volume, volume.id) {
            continue;
        }
        let (task_short_id, untagged) = match names.volume_maker(&volume.name) {
            None => continue,
            Some(Maker::Other { tag }) => {
                *other_deployments.entry(tag).or_insert(0) += 1;
                continue;
            }
            Some(Maker::Us { task_short_id }) => (task_short_id, false),
            Some(Maker::Untagged { task_short_id }) => (task_short_id, true),
        };
        let mappings: Vec<OrphanMapping> = array
            .mappings
            .iter()
            .filter(|m| m.volume.id() == Some(volume.id))
            .map(|m| {
                let sdp_host_id = m.host.id().unwrap_or_default();
                OrphanMapping {
                    sdp_id: m.id,
                    sdp_host_id,
                    sdp_host_name: host_name(sdp_host_id),
                }
            })
            .collect();
        let foreign_host = mappings
            .iter()
            .find(|m| !owned_hosts.contains(&m.sdp_host_id));
        let (action, reason) = if untagged {
            keep(
                "named before Flex tagged its objects with its deployment, so whose it is \
                 cannot be told; delete it by hand if it is this deployment's"
                    .into(),
            )
        } else if running_short.contains(&task_short_id) {
            keep(format!(
                "task {task_short_id}… is still running and may not have recorded it yet"
            ))
        } else if let Some(mapping) = foreign_host {
            keep(format!(
                "mapped to SDP host '{}', which this Flex does not own",
                mapping.sdp_host_name
            ))
        } else {
            (Action::Delete, None)
        };
        orphans.push(Orphan {
            kind: LedgerKind::Volume,
            sdp_id: volume.id,
            name: volume.name.clone(),
            task_short_id,
            untagged,
            mappings,
            action,
            reason,
            outcome: None,
            error: None,
        });
    }

    let deleted_volumes: HashSet<u64> = orphans
        .iter()
        .filter(|o| o.action == Action::Delete)
        .map(|o| o.sdp_id)
        .collect();
    for snapshot in &array.snapshots {
        // Volume-group snapshots only: views are sourced from a snapshot.
        if !snapshot.source.path.starts_with("/volume_groups/")
            || ledger_holds(LedgerKind::VgSnapshot, snapshot.id)
        {
            continue;
        }
        let Some(task_short_id) = names.snapshot_task(&snapshot.short_name) else {
            continue;
        };
        let kept_clones: Vec<&str> = array
            .volumes
            .iter()
            .filter(|v| {
                v.source_snapshot.as_ref().and_then(Ref::id) == Some(snapshot.id)
                    && !deleted_volumes.contains(&v.id)
            })
            .map(|v| v.name.as_str())
            .collect();
        let (action, reason) = if running_short.contains(&task_short_id) {
            keep(format!(
                "task {task_short_id}… is still running and may not have recorded it yet"
            ))
        } else if !kept_clones.is_empty() {
            keep(format!(
                "thin clones that are kept come from it: {}",
                kept_clones.join(", ")
            ))
        } else {
            (Action::Delete, None)
        };
        orphans.push(Orphan {
            kind: LedgerKind::VgSnapshot,
            sdp_id: snapshot.id,
            name: snapshot.name.clone(),
            task_short_id,
            untagged: false,
            mappings: Vec::new(),
            action,
            reason,
            outcome: None,
            error: None,
        });
    }

    Ok(Report {
        deployment_tag: names.tag().to_owned(),
        checked_ms,
        applied: false,
        missing,
        orphans,
        other_deployments,
    })
}

/// Surveys, then does what the survey says: orphan volumes go (mappings first), then orphan
/// snapshots, then dead ledger rows are settled. Each action is recorded in the audit trail
/// as an action of the request; one that fails is reported and the rest go on.
pub async fn apply(
    store: &Store,
    sdp: &SdpClient,
    names: &ObjectNames,
) -> Result<Report, ReconcileError> {
    let mut report = survey(store, sdp, names).await?;
    report.applied = true;
    // Volumes before snapshots: the SDP refuses to delete a snapshot with live clones.
    report
        .orphans
        .sort_by_key(|o| (o.kind != LedgerKind::Volume, o.sdp_id));
    for orphan in &mut report.orphans {
        if orphan.action != Action::Delete {
            continue;
        }
        let mut result = Ok(true);
        for mapping in &orphan.mappings {
            result = delete(store, sdp, "mappings", mapping.sdp_id).await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            let collection = match orphan.kind {
                LedgerKind::VgSnapshot => "snapshots",
                _ => "volumes",
            };
            result = delete(store, sdp, collection, orphan.sdp_id).await;
        }
        (orphan.outcome, orphan.error) = settled(result);
    }
    for row in &mut report.missing {
        if row.action != Action::Settle {
            continue;
        }
        let result = store
            .ledger_settle(row.kind, row.sdp_id)
            .await
            .map_err(|err| err.to_string());
        (row.outcome, row.error) = settled(result);
    }
    Ok(report)
}

/// Deletes one array object, auditing the answer; false when it was gone already.
async fn delete(store: &Store, sdp: &SdpClient, collection: &str, id: u64) -> Result<bool, String> {
    let path = format!("sdp:/{collection}/{id}");
    let (status, result) = match sdp.delete(collection, id).await {
        Ok(true) => (204, Ok(true)),
        Ok(false) => (404, Ok(false)),
        Err(err) => (err.status().unwrap_or(502), Err(err.to_string())),
    };
    if let Err(err) = store.audit_action("DELETE", &path, status).await {
        tracing::warn!(error = %err, path, "reconcile could not audit an action it took");
    }
    if result.is_ok() {
        tracing::info!(path, status, "reconcile deleted an orphan");
    }
    result
}

fn settled(result: Result<bool, String>) -> (Option<Outcome>, Option<String>) {
    match result {
        Ok(true) => (Some(Outcome::Done), None),
        Ok(false) => (Some(Outcome::AlreadyGone), None),
        Err(err) => (Some(Outcome::Failed), Some(err)),
    }
}
