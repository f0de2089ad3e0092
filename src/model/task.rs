//! Tasks: the state a client polls, the command type that says which workflow runs, and where
//! the executor stands in a task's steps.

crate::wire_enum! {
    /// A task's state, as clients poll it. Only `Running` ever changes.
    pub enum TaskState ("task state") {
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Aborted = "aborted",
    }
}

impl TaskState {
    /// True for the states a task ends in.
    pub fn is_terminal(self) -> bool {
        self != TaskState::Running
    }
}

crate::wire_enum! {
    /// What a task does: the documented command types.
    pub enum CommandType ("command type") {
        CreateClone = "CreateCloneCommand",
        CreateDbSnapshot = "CreateDBSnapshotCommand",
        ImportDbSnapshot = "ImportDBSnapshotCommand",
        ReplaceDb = "ReplaceDBCommand",
        Delete = "DeleteCommand",
        DeleteDbSnapshot = "DeleteDBSnapshotCommand",
        /// Host deployment, from the seed document: listed when imported, never run by Flex.
        Deploy = "DeployCommand",
    }
}

crate::wire_enum! {
    /// Which way the executor walks a task's steps.
    pub enum Phase ("task phase") {
        /// Doing the steps, first to last.
        Forward = "forward",
        /// Undoing the steps that ran, last to first.
        Undo = "undo",
    }
}

crate::wire_enum! {
    /// A line of the step log: a step done, or a step undone.
    pub enum StepDirection ("step direction") {
        Do = "do",
        Undo = "undo",
    }
}

/// What a step measured, kept on its line of the step log.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepDetail {
    /// Time the step spent waiting on the SDP, agents and retry pauses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<f64>,
    /// The rest of the step's time: Flex's own orchestration overhead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_ms: Option<f64>,
    /// The volume groups a snapshot's databases live on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_groups: Option<Vec<u64>>,
    /// Time spent in the SDP's snapshot calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_ms: Option<u64>,
    /// How long databases stayed frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_ms: Option<u64>,
    /// Attempts the step took, when it needed more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The transient error of its last failed attempt, when it was retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried_error: Option<String>,
}
