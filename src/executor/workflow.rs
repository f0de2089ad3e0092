//! What the executor runs: a catalogue of workflows, one per command type, each a list of named
//! steps (with their undo) over a context the workflow owns. The executor sees a workflow only
//! through [`Workflow`] and [`Context`]: it never learns what a step does or what it talks to.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::model::{CommandType, StepDetail, TaskState};

/// Why a step did not finish.
#[derive(Debug)]
pub enum StepError {
    /// Worth another attempt after a pause; at least `retry_after` when the far side said so.
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Repeating will not help: undo what was done.
    Permanent(String),
}

impl StepError {
    pub fn transient(message: impl Into<String>) -> StepError {
        StepError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> StepError {
        StepError::Permanent(message.into())
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Transient { message, .. } | StepError::Permanent(message) => {
                f.write_str(message)
            }
        }
    }
}

pub type StepResult = Result<(), StepError>;
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = StepResult> + Send + 'a>>;
pub type StepFn<C> = for<'a> fn(&'a mut C) -> StepFuture<'a>;

/// One named, idempotent step of a workflow and the step that undoes it.
pub struct Step<C> {
    pub name: &'static str,
    pub run: StepFn<C>,
    pub undo: Option<StepFn<C>>,
    /// Destroys what cannot be put back (it has no undo): once a run of such steps has begun,
    /// the task goes through all of it before an abort is honoured, so that no abort leaves
    /// a thing half taken away.
    pub forward_only: bool,
}

impl<C> Clone for Step<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Step<C> {}

impl<C> Step<C> {
    pub const fn new(name: &'static str, run: StepFn<C>) -> Step<C> {
        Step {
            name,
            run,
            undo: None,
            forward_only: false,
        }
    }

    pub const fn undo(mut self, undo: StepFn<C>) -> Step<C> {
        self.undo = Some(undo);
        self
    }

    /// Marks the step as one that cannot be undone and must not be left half-way: see
    /// [`Step::forward_only`].
    pub const fn forward_only(mut self) -> Step<C> {
        self.forward_only = true;
        self
    }
}

/// A task as the executor hands it to its workflow.
#[derive(Clone, Debug)]
pub struct TaskRef {
    pub request_id: String,
    /// The client's `hs-ref-id`, for every log line and outside call the task makes.
    pub ref_id: String,
    pub create_ts: i64,
}

/// What a workflow's per-task context shows the executor.
pub trait Context: Send + 'static {
    /// The checkpoint: what the steps have done so far, saved after every step.
    type State: Serialize + DeserializeOwned + Default + Send;

    fn state(&self) -> &Self::State;
    /// What the step that just ran measured, for its line in the step log.
    fn take_detail(&mut self) -> StepDetail;
    /// The task's result (JSON), once its last step ran.
    fn result(&self) -> Option<String>;
}

/// A command type's workflow: its steps, and how a claimed task's context is opened.
pub trait Workflow: Send + Sync + 'static {
    type Cx: Context;

    fn steps(&self) -> &'static [Step<Self::Cx>];

    /// The context of a claimed task: its request as stored, and its checkpoint state.
    fn open(
        &self,
        task: TaskRef,
        request: &str,
        state: <Self::Cx as Context>::State,
    ) -> Result<Self::Cx, String>;
}

/// How a task being undone will end, kept in its checkpoint so a resumed undo ends the same.
#[derive(Clone, Debug, PartialEq)]
pub struct Ending {
    pub state: TaskState,
    pub error: String,
}

impl Ending {
    pub fn new(state: TaskState, error: impl Into<String>) -> Ending {
        Ending {
            state,
            error: error.into(),
        }
    }
}

/// The checkpoint as stored: the workflow's state, plus the executor's own two fields (under
/// names that cannot clash with a workflow's).
#[derive(Deserialize)]
struct Stored<S> {
    #[serde(flatten)]
    state: S,
    #[serde(rename = "_final_state", default)]
    ending: Option<TaskState>,
    #[serde(rename = "_error", default)]
    error: String,
}

#[derive(Serialize)]
struct StoredRef<'a, S> {
    #[serde(flatten)]
    state: &'a S,
    #[serde(rename = "_final_state", skip_serializing_if = "Option::is_none")]
    ending: Option<TaskState>,
    #[serde(rename = "_error", skip_serializing_if = "str::is_empty")]
    error: &'a str,
}

/// A claimed task's workflow, opened: the executor drives it by step index.
pub(crate) trait Job: Send {
    fn len(&self) -> usize;
    fn name(&self, index: usize) -> &'static str;
    fn forward_only(&self, index: usize) -> bool;
    fn run(&mut self, index: usize) -> StepFuture<'_>;
    /// The undo of a step, if it has one.
    fn undo(&mut self, index: usize) -> Option<StepFuture<'_>>;
    fn checkpoint(&self, ending: Option<&Ending>) -> Result<String, serde_json::Error>;
    fn take_detail(&mut self) -> StepDetail;
    fn result(&self) -> Option<String>;
}

struct Opened<C: Context> {
    steps: &'static [Step<C>],
    cx: C,
}

impl<C: Context> Job for Opened<C> {
    fn len(&self) -> usize {
        self.steps.len()
    }

    fn name(&self, index: usize) -> &'static str {
        self.steps[index].name
    }

    fn forward_only(&self, index: usize) -> bool {
        self.steps[index].forward_only
    }

    fn run(&mut self, index: usize) -> StepFuture<'_> {
        (self.steps[index].run)(&mut self.cx)
    }

    fn undo(&mut self, index: usize) -> Option<StepFuture<'_>> {
        let undo = self.steps[index].undo?;
        Some(undo(&mut self.cx))
    }

    fn checkpoint(&self, ending: Option<&Ending>) -> Result<String, serde_json::Error> {
        serde_json::to_string(&StoredRef {
            state: self.cx.state(),
            ending: ending.map(|e| e.state),
            error: ending.map_or("", |e| e.error.as_str()),
        })
    }

    fn take_detail(&mut self) -> StepDetail {
        self.cx.take_detail()
    }

    fn result(&self) -> Option<String> {
        self.cx.result()
    }
}

/// A workflow with its types erased, so one catalogue holds them all.
trait AnyWorkflow: Send + Sync {
    fn open(
        &self,
        task: TaskRef,
        request: &str,
        checkpoint: &str,
    ) -> Result<(Box<dyn Job>, Option<Ending>), String>;
    fn step_names(&self) -> Vec<&'static str>;
}

impl<W: Workflow> AnyWorkflow for W {
    fn open(
        &self,
        task: TaskRef,
        request: &str,
        checkpoint: &str,
    ) -> Result<(Box<dyn Job>, Option<Ending>), String> {
        let stored: Stored<<W::Cx as Context>::State> = serde_json::from_str(checkpoint)
            .map_err(|err| format!("the task's checkpoint is unreadable: {err}"))?;
        let ending = stored.ending.map(|state| Ending {
            state,
            error: stored.error,
        });
        let cx = Workflow::open(self, task, request, stored.state)?;
        let job = Opened {
            steps: self.steps(),
            cx,
        };
        Ok((Box::new(job), ending))
    }

    fn step_names(&self) -> Vec<&'static str> {
        self.steps().iter().map(|s| s.name).collect()
    }
}

/// The workflows the executor runs, by command type.
#[derive(Clone, Default)]
pub struct Catalogue {
    workflows: HashMap<CommandType, Arc<dyn AnyWorkflow>>,
}

impl Catalogue {
    pub fn new() -> Catalogue {
        Catalogue::default()
    }

    /// Runs tasks of `command` with `workflow`.
    pub fn with<W: Workflow>(mut self, command: CommandType, workflow: W) -> Catalogue {
        self.workflows.insert(command, Arc::new(workflow));
        self
    }

    /// The command types there is a workflow for, in a stable order.
    pub fn command_types(&self) -> Vec<CommandType> {
        let mut types: Vec<CommandType> = self.workflows.keys().copied().collect();
        types.sort();
        types
    }

    /// The names of a command type's steps, in order.
    pub fn step_names(&self, command: CommandType) -> Option<Vec<&'static str>> {
        self.workflows.get(&command).map(|w| w.step_names())
    }

    pub(crate) fn open(
        &self,
        command: CommandType,
        task: TaskRef,
        request: &str,
        checkpoint: &str,
    ) -> Result<(Box<dyn Job>, Option<Ending>), String> {
        let workflow = self
            .workflows
            .get(&command)
            .ok_or_else(|| format!("no workflow runs {command}"))?;
        workflow.open(task, request, checkpoint)
    }
}
