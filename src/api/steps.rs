//! A task's steps as `GET …/tasks/{id}?steps=true` shows them: every step of its workflow,
//! in order, with what the step log says of it (when it ran, how long it waited on the SDP
//! and agents, its attempts) and what the task's state says of the one running or failed.

use serde::Serialize;

use crate::{
    model::{Phase, StepDirection, TaskState},
    store::{StepLogEntry, TaskRecord},
};

/// Where one step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Completed,
    Failed,
    /// Being undone, while its task compensates.
    Undoing,
    Undone,
    /// Never ran: its task ended before it.
    Skipped,
}

#[derive(Debug, Serialize)]
pub struct StepView {
    pub name: &'static str,
    pub state: StepState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
    /// Attempts it took (1 unless transient failures were retried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Time it spent waiting on the SDP, agents and retry pauses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<f64>,
    /// The rest of its time: Flex's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead_ms: Option<f64>,
    /// Why it failed, or the error of the last attempt it retried after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When its undo ran, if it was undone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undone_ms: Option<i64>,
}

impl StepView {
    fn pending(name: &'static str) -> StepView {
        StepView {
            name,
            state: StepState::Pending,
            started_ms: None,
            ended_ms: None,
            attempts: None,
            waited_ms: None,
            overhead_ms: None,
            error: None,
            undone_ms: None,
        }
    }
}

/// The steps of `task`, from its step log; empty for command types Flex does not run.
pub fn steps_of(task: &TaskRecord, log: &[StepLogEntry]) -> Vec<StepView> {
    let Some((_, steps)) = crate::workflows::WORKFLOWS
        .iter()
        .find(|(command, _)| *command == task.command_type)
    else {
        return Vec::new();
    };
    let mut views: Vec<StepView> = steps.iter().map(|s| StepView::pending(s.name)).collect();
    for entry in log {
        // A name names one step of a workflow; its first line that has not been matched.
        let Some(view) = views.iter_mut().find(|v| {
            v.name == entry.name
                && match entry.direction {
                    StepDirection::Do => v.state == StepState::Pending,
                    StepDirection::Undo => v.undone_ms.is_none(),
                }
        }) else {
            continue;
        };
        match entry.direction {
            StepDirection::Do => {
                view.state = StepState::Completed;
                view.started_ms = Some(entry.started_ms);
                view.ended_ms = Some(entry.finished_ms);
                view.attempts = Some(entry.detail.attempts.unwrap_or(1));
                view.waited_ms = entry.detail.waited_ms;
                view.overhead_ms = entry.detail.overhead_ms;
                view.error.clone_from(&entry.detail.retried_error);
            }
            StepDirection::Undo => {
                view.state = StepState::Undone;
                view.undone_ms = Some(entry.finished_ms);
            }
        }
    }
    let at = task.position.step_index;
    match (task.state, task.position.phase) {
        (TaskState::Running, Phase::Forward) => {
            if let Some(view) = views.get_mut(at) {
                view.state = StepState::Running;
            }
        }
        (TaskState::Running, Phase::Undo) => {
            if let Some(view) = at.checked_sub(1).and_then(|i| views.get_mut(i)) {
                view.state = StepState::Undoing;
            }
        }
        (TaskState::Failed, _) => {
            // The task's error is "{step}: {why}"; the failed step never wrote a line.
            if let Some((name, why)) = task.error.split_once(": ")
                && let Some(view) = views.iter_mut().find(|v| {
                    v.name == name && matches!(v.state, StepState::Pending | StepState::Undone)
                })
            {
                view.state = StepState::Failed;
                view.error = Some(why.to_owned());
            }
        }
        _ => {}
    }
    if task.state != TaskState::Running {
        for view in &mut views {
            if view.state == StepState::Pending {
                view.state = StepState::Skipped;
            }
        }
    }
    views
}
