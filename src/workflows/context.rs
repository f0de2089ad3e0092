//! What an Echo step runs on: the workflows' own dependencies (store, SDP, agents, metrics,
//! freeze window), the task with its typed request, and the typed checkpoint state the steps
//! fill in as they go.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use super::{
    import::{Attached, CloneVolume, ImportPlan},
    names::ObjectNames,
    removal::OldEcho,
    requests::{EchoRequest, SnapshotSpec, TaskResult},
    sdp_hosts::SdpHostRef,
};
use crate::{
    agents::{AgentError, AgentHub, protocol::commands::HostCommand},
    executor::{Context, StepError, TaskRef},
    metrics::Metrics,
    model::{SourceDb, StepDetail, VgSnapshot},
    sdp::{SdpClient, SdpError},
    store::{Claim, Shared, Store, StoreError},
};

/// What the Echo workflows need to do their work. Built once by `lib.rs`.
pub struct EchoDeps {
    pub store: Store,
    /// The array; `None` runs Flex without one (every Echo task then fails at its first
    /// array call, and the API refuses them before that).
    pub sdp: Option<SdpClient>,
    pub agents: AgentHub,
    pub metrics: Arc<Metrics>,
    /// Longest time databases may stay frozen for an application-consistent snapshot.
    pub freeze_window: Duration,
    /// This replica: the owner of the tasks the workflows start (retention's deletes).
    pub instance_id: String,
    /// How this deployment names what it makes on the array.
    pub names: ObjectNames,
}

/// The checkpoint of an Echo task: what its steps found and made so far. Each workflow fills
/// the parts its steps use (a snapshot the first, an import the second, a removal the third);
/// the rest stays empty and is not stored.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EchoState {
    // A snapshot's part.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceDb>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vg_ids: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub thawed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen_ms: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vg_snapshots: Vec<VgSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    // An import's part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<ImportPlan>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sdp_hosts: BTreeMap<String, SdpHostRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clones: Vec<CloneVolume>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attached: Vec<Attached>,
    // A removal's part: the echo DBs being taken away.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub old_echo: Vec<OldEcho>,
    /// What the task reports when it ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskResult>,
}

/// One Echo task as its steps see it.
pub struct EchoCx {
    pub deps: Arc<EchoDeps>,
    pub task: TaskRef,
    pub request: EchoRequest,
    pub state: EchoState,
    /// What the current step measured.
    pub detail: StepDetail,
}

impl Context for EchoCx {
    type State = EchoState;

    fn state(&self) -> &EchoState {
        &self.state
    }

    fn take_detail(&mut self) -> StepDetail {
        std::mem::take(&mut self.detail)
    }

    fn result(&self) -> Option<String> {
        let result = self.state.result.as_ref()?;
        serde_json::to_string(result).ok()
    }
}

impl EchoCx {
    pub fn store(&self) -> &Store {
        &self.deps.store
    }

    /// The SDP client, stamped with the task's ref id.
    pub fn sdp(&self) -> Result<SdpClient, StepError> {
        self.deps
            .sdp
            .as_ref()
            .map(|sdp| sdp.with_ref_id(&self.task.ref_id))
            .ok_or_else(|| StepError::permanent("no SDP is configured (--sdp-url)"))
    }

    pub fn metrics(&self) -> &Metrics {
        &self.deps.metrics
    }

    pub fn freeze_window(&self) -> Duration {
        self.deps.freeze_window
    }

    pub fn request_id(&self) -> &str {
        &self.task.request_id
    }

    /// The snapshot part of the request (snapshot and clone tasks).
    pub fn snapshot_spec(&self) -> Result<&SnapshotSpec, StepError> {
        self.request
            .snapshot_spec()
            .ok_or_else(|| StepError::permanent("this task takes no snapshot"))
    }

    /// The import plan an earlier step of this task made.
    pub fn plan(&self) -> Result<&ImportPlan, StepError> {
        self.state
            .plan
            .as_ref()
            .ok_or_else(|| StepError::permanent("the checkpoint has no import plan"))
    }

    /// Sends a command to a host's agent and waits for its reply. The command id is
    /// deterministic for (task, step, key), so a re-run step gets the stored reply instead of
    /// acting twice.
    pub async fn send<C: HostCommand>(
        &self,
        host_id: &str,
        step: &str,
        key: &str,
        command: C,
    ) -> Result<C::Reply, StepError> {
        let id = self.command_id(step, key);
        Ok(self
            .deps
            .agents
            .send(
                host_id,
                &id,
                &self.task.ref_id,
                command,
                super::AGENT_DEADLINE,
            )
            .await?)
    }

    /// Claims the db snapshot this task clones from (or has just made), so that no snapshot
    /// delete removes its VG snapshots while the task relies on them, and checks it is still
    /// there (a delete may have finished before the claim).
    pub async fn use_snapshot(&self, snapshot_id: &str) -> Result<(), StepError> {
        let claimed = self
            .store()
            .claim(
                Shared::DbSnapshot(snapshot_id),
                self.request_id(),
                Claim::Use,
            )
            .await?;
        if let Err(deleter) = claimed {
            return Err(StepError::permanent(format!(
                "db snapshot '{snapshot_id}' is being deleted by task {deleter}"
            )));
        }
        Ok(())
    }

    fn command_id(&self, step: &str, key: &str) -> String {
        format!("{}:{step}:{key}", self.task.request_id)
    }

    /// Whether this task's `step`/`key` command went into the outbox. An undo whose step lost
    /// its checkpoint (a crash, or an abort, between the agent's reply and the checkpoint)
    /// sends the same command again to learn what it did: the host answers a repeated command
    /// id from memory instead of acting twice.
    pub async fn was_sent(&self, step: &str, key: &str) -> Result<bool, StepError> {
        let id = self.command_id(step, key);
        Ok(self.store().get_agent_command(&id).await?.is_some())
    }

    /// Short, stable token of this task for SDP object names.
    pub fn short_id(&self) -> String {
        super::names::short_id(&self.task.request_id)
    }
}

impl From<SdpError> for StepError {
    fn from(err: SdpError) -> Self {
        if err.is_retryable() {
            StepError::Transient {
                retry_after: err.retry_after(),
                message: err.to_string(),
            }
        } else {
            StepError::Permanent(err.to_string())
        }
    }
}

impl From<AgentError> for StepError {
    fn from(err: AgentError) -> Self {
        if err.is_retryable() {
            StepError::transient(err.to_string())
        } else {
            StepError::Permanent(err.to_string())
        }
    }
}

impl From<StoreError> for StepError {
    fn from(err: StoreError) -> Self {
        match err {
            // A row that does not read will not read better later.
            StoreError::Corrupt { .. } => StepError::Permanent(err.to_string()),
            other => StepError::transient(other.to_string()),
        }
    }
}
