//! What a workflow step is, and the context it runs in.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use super::ExecInner;
use crate::{
    agents::{AgentCommand, AgentError},
    sdp::{SdpClient, SdpError},
    store::{ClaimedTask, Store, StoreError},
};

/// Why a step did not finish.
#[derive(Debug)]
pub enum StepError {
    /// Worth another attempt after a pause.
    Transient(String),
    /// Repeating will not help: undo what was done.
    Permanent(String),
}

impl From<SdpError> for StepError {
    fn from(err: SdpError) -> Self {
        if err.is_retryable() {
            StepError::Transient(err.to_string())
        } else {
            StepError::Permanent(err.to_string())
        }
    }
}

impl From<AgentError> for StepError {
    fn from(err: AgentError) -> Self {
        if err.is_retryable() {
            StepError::Transient(err.to_string())
        } else {
            StepError::Permanent(err.to_string())
        }
    }
}

impl From<StoreError> for StepError {
    fn from(err: StoreError) -> Self {
        StepError::Transient(err.to_string())
    }
}

pub type StepResult = Result<(), StepError>;
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = StepResult> + Send + 'a>>;
pub type StepFn = for<'a> fn(&'a mut Ctx) -> StepFuture<'a>;

/// One named, idempotent step of a workflow and the step that undoes it.
#[derive(Clone, Copy)]
pub struct Step {
    pub name: &'static str,
    pub run: StepFn,
    pub undo: Option<StepFn>,
}

impl Step {
    pub const fn new(name: &'static str, run: StepFn) -> Step {
        Step {
            name,
            run,
            undo: None,
        }
    }

    pub const fn undo(mut self, undo: StepFn) -> Step {
        self.undo = Some(undo);
        self
    }
}

/// Everything a step may use: the task, its request, its checkpoint (outputs of earlier
/// steps, persisted after each step), and the store, SDP and agents.
pub struct Ctx {
    pub(crate) exec: Arc<ExecInner>,
    pub request_id: String,
    pub ref_id: String,
    pub epoch: i64,
    pub create_ts: i64,
    pub request: Value,
    pub checkpoint: Map<String, Value>,
    /// What the current step measured, for its line in the step log.
    pub detail: Map<String, Value>,
    forward: bool,
}

impl Ctx {
    pub(crate) fn new(
        exec: Arc<ExecInner>,
        task: &ClaimedTask,
        request: Value,
        checkpoint: Map<String, Value>,
    ) -> Ctx {
        Ctx {
            exec,
            request_id: task.request_id.clone(),
            ref_id: task.ref_id.clone(),
            epoch: task.epoch,
            create_ts: task.create_ts,
            request,
            checkpoint,
            detail: Map::new(),
            forward: task.phase != "undo",
        }
    }

    pub fn store(&self) -> &Store {
        &self.exec.store
    }

    /// The SDP client, stamped with the task's ref id.
    pub fn sdp(&self) -> Result<SdpClient, StepError> {
        self.exec
            .sdp
            .as_ref()
            .map(|sdp| sdp.with_ref_id(&self.ref_id))
            .ok_or_else(|| StepError::Permanent("no SDP is configured (--sdp-url)".into()))
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.exec.metrics
    }

    pub fn freeze_window(&self) -> Duration {
        self.exec.config.freeze_window
    }

    /// Sends a command to a host's agent. The id is deterministic for (task, step, key), so a
    /// re-run step gets the stored reply instead of acting twice.
    pub async fn agent(
        &self,
        host_id: &str,
        step: &str,
        key: &str,
        name: &str,
        args: Value,
        deadline: Duration,
    ) -> Result<Value, StepError> {
        let command = AgentCommand {
            id: format!("{}:{step}:{key}", self.request_id),
            name: name.to_owned(),
            args,
            ref_id: self.ref_id.clone(),
        };
        Ok(self.exec.agents.call(host_id, command, deadline).await?)
    }

    /// Short, stable token of this task for SDP object names.
    pub fn short_id(&self) -> String {
        self.request_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect::<String>()
            .to_lowercase()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.checkpoint.get(key)
    }

    pub fn checkpoint_str(&self, key: &str) -> Option<&str> {
        self.checkpoint.get(key).and_then(Value::as_str)
    }

    /// A checkpoint value an earlier step must have stored.
    pub fn load<T: DeserializeOwned>(&self, key: &str) -> Result<T, StepError> {
        let value = self
            .checkpoint
            .get(key)
            .cloned()
            .ok_or_else(|| StepError::Permanent(format!("checkpoint lacks '{key}'")))?;
        serde_json::from_value(value)
            .map_err(|err| StepError::Permanent(format!("checkpoint '{key}' is unreadable: {err}")))
    }

    /// A checkpoint value, or its default when no step stored it yet.
    pub fn load_or_default<T: DeserializeOwned + Default>(&self, key: &str) -> T {
        self.checkpoint
            .get(key)
            .cloned()
            .and_then(|value| serde_json::from_value(value).ok())
            .unwrap_or_default()
    }

    pub fn save<T: Serialize>(&mut self, key: &str, value: &T) {
        self.checkpoint.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
    }

    /// The request body, read as the workflow's request type.
    pub fn request<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        serde_json::from_value(self.request.clone())
            .map_err(|err| StepError::Permanent(format!("the task's request is unreadable: {err}")))
    }

    pub(crate) fn phase_is_forward(&self) -> bool {
        self.forward
    }

    pub(crate) fn enter_undo(&mut self, state: &str, error: &str) {
        self.forward = false;
        self.checkpoint
            .insert("_final_state".into(), Value::String(state.to_owned()));
        self.checkpoint
            .insert("_error".into(), Value::String(error.to_owned()));
    }

    pub(crate) fn checkpoint_json(&self) -> String {
        Value::Object(self.checkpoint.clone()).to_string()
    }
}
