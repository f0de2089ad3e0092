//! One claimed task, run to its end: its steps forward with a checkpoint after each, or its
//! completed steps undone in reverse after a failure, an abort or the deadline. Either way the
//! run may also stop early without a verdict: its lease was lost (another worker has it) or
//! this process is shutting down (the task resumes from its checkpoint).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use tokio::sync::watch;

use super::{
    CrashSide, Inner, Journal,
    retry::{Backoff, GaveUp, Run, Stop, random_jitter, retrying},
    workflow::{Ending, Job, TaskRef},
};
use crate::{
    clock::{self, now_ms},
    logging::escaped,
    model::{Phase, StepDirection, TaskState},
    store::{ClaimedTask, StepLogEntry},
};

/// How a run of a task ended, for the logs.
enum Outcome {
    Completed,
    Undone(TaskState),
    /// The lease was lost: another worker owns the task now.
    Abandoned,
    /// This process is stopping; the task resumes from its checkpoint.
    Released,
}

/// A task being run: its opened workflow, and what it runs under.
struct TaskRun<'a, J> {
    job: Box<dyn Job>,
    under: Under<'a, J>,
    /// The last step's attempts, and the last transient error it retried after.
    retries: (u32, Option<String>),
}

/// The task, the executor, and what tells the run to stop.
struct Under<'a, J> {
    exec: &'a Inner<J>,
    task: &'a ClaimedTask,
    lost: &'a AtomicBool,
    stop: watch::Receiver<bool>,
}

impl<J: Journal> Inner<J> {
    pub(super) async fn run(&self, task: ClaimedTask, stop: watch::Receiver<bool>) {
        // Every log line of the task carries its request id and the client's ref id.
        let span = tracing::info_span!("task", request_id = %task.request_id, ref_id = %task.ref_id, command = %task.command_type);
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = self.spawn_heartbeat(&task, lost.clone());
        let outcome =
            tracing::Instrument::instrument(self.drive(&task, &lost, stop), span.clone()).await;
        heartbeat.abort();
        let _in_span = span.enter();
        match outcome {
            Outcome::Completed => tracing::info!("task completed"),
            Outcome::Undone(state) => tracing::info!(%state, "task ended after compensation"),
            Outcome::Abandoned => tracing::warn!("lease lost; another worker owns the task"),
            Outcome::Released => tracing::info!("stopping; the task resumes from its checkpoint"),
        }
    }

    fn spawn_heartbeat(
        &self,
        task: &ClaimedTask,
        lost: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let journal = self.journal.clone();
        let lease = self.config.lease;
        let (request_id, epoch) = (task.request_id.clone(), task.epoch);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match journal
                    .extend_lease(&request_id, epoch, now_ms() + clock::millis(lease))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(err) => tracing::warn!(error = %err, "lease heartbeat failed"),
                }
            }
        })
    }

    async fn drive(
        &self,
        task: &ClaimedTask,
        lost: &AtomicBool,
        stop: watch::Receiver<bool>,
    ) -> Outcome {
        let reference = TaskRef {
            request_id: task.request_id.clone(),
            ref_id: task.ref_id.clone(),
            create_ts: task.create_ts,
        };
        let (job, ending) = match self.catalogue.open(
            task.command_type,
            reference,
            &task.request,
            &task.checkpoint,
        ) {
            Ok(opened) => opened,
            Err(message) => {
                // Nothing can be run or undone from a task that cannot be read.
                tracing::error!(message = %escaped(&message), "cannot open the task");
                return self.finish(task, TaskState::Failed, &message, None).await;
            }
        };
        let mut run = TaskRun {
            job,
            under: Under {
                exec: self,
                task,
                lost,
                stop,
            },
            retries: (0, None),
        };
        match task.phase {
            Phase::Undo => {
                let ending = ending.unwrap_or(Ending {
                    state: TaskState::Failed,
                    error: String::new(),
                });
                run.compensate(task.step_index, ending).await
            }
            Phase::Forward => run.forward().await,
        }
    }

    async fn finish(
        &self,
        task: &ClaimedTask,
        state: TaskState,
        error: &str,
        result: Option<&str>,
    ) -> Outcome {
        match self
            .journal
            .finish_task(&task.request_id, task.epoch, state, error, result)
            .await
        {
            Ok(true) => {
                let took = clock::now_ms() as f64 / 1000.0 - task.create_ts as f64;
                self.metrics
                    .task_finished(task.command_type.as_str(), state, took.max(0.0));
                if state == TaskState::Completed {
                    Outcome::Completed
                } else {
                    Outcome::Undone(state)
                }
            }
            Ok(false) => Outcome::Abandoned,
            Err(err) => {
                tracing::warn!(error = %err, "cannot end the task; releasing it");
                Outcome::Abandoned
            }
        }
    }

    /// The crash and abort matrices' fault point, if there is one at this step: `checkpointed`
    /// says whether the step's checkpoint is written yet.
    async fn fault_point(&self, task: &ClaimedTask, step: &str, checkpointed: bool) {
        let Some(point) = &self.config.crash_at else {
            return;
        };
        if point.step != step {
            return;
        }
        let (abort, crash) = match (point.side, checkpointed) {
            (CrashSide::BeforeCheckpoint, false) | (CrashSide::AfterCheckpoint, true) => {
                (false, true)
            }
            (CrashSide::AbortRequested, false) => (true, false),
            (CrashSide::AbortThenCrash, false) => (true, true),
            _ => (false, false),
        };
        if abort {
            let _ = self.journal.request_abort(&task.request_id).await;
        }
        if crash {
            eprintln!("FLEX_CRASH_AT reached: {step}:{}; aborting", point.side);
            std::process::abort();
        }
    }
}

impl<J: Journal> Under<'_, J> {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    async fn abort_requested(&self) -> bool {
        matches!(
            self.exec
                .journal
                .abort_requested(&self.task.request_id)
                .await,
            Ok(true)
        )
    }

    /// Why a step should not be tried again now, if it should not. An abort stops only a
    /// step that may be aborted (`abortable`: forward, and not forward-only).
    async fn check(&self, deadline_ms: i64, abortable: bool) -> Option<Stop> {
        if now_ms() >= deadline_ms {
            Some(Stop::Deadline)
        } else if self.lost() {
            Some(Stop::LeaseLost)
        } else if self.stopping() {
            Some(Stop::Shutdown)
        } else if abortable && self.abort_requested().await {
            Some(Stop::Aborted)
        } else {
            None
        }
    }
}

impl<J: Journal> TaskRun<'_, J> {
    /// Runs step `index` (or its undo) with retries; returns the attempts, or why it gave up.
    async fn attempt(
        &mut self,
        index: usize,
        run: Run,
        deadline_ms: i64,
    ) -> Result<u32, (GaveUp, u32)> {
        let name = self.job.name(index);
        let config = &self.under.exec.config;
        let mut backoff = Backoff::new(config.retry_base, config.retry_cap, random_jitter);
        let metrics = &self.under.exec.metrics;
        let under = &self.under;
        let abortable = run == Run::Do && !self.job.forward_only(index);
        let mut retried = None;
        let outcome = retrying(
            self.job.as_mut(),
            index,
            run,
            &mut backoff,
            || under.check(deadline_ms, abortable),
            |attempts, message| {
                tracing::info!(step = name, attempts, message = %escaped(message), "transient failure; retrying");
                metrics.step_retried();
                retried = Some(message.to_owned());
            },
        )
        .await;
        let attempts = match &outcome {
            Ok(attempts) | Err((_, attempts)) => *attempts,
        };
        self.retries = (attempts, retried);
        outcome
    }

    /// Writes the step log line and the checkpoint of a step that ran, and where the task goes
    /// next, in one transaction. False: the lease was lost.
    async fn record(
        &mut self,
        index: usize,
        direction: StepDirection,
        next: (usize, Phase),
        started_ms: i64,
        ending: Option<&Ending>,
        timing: Option<Timing>,
    ) -> bool {
        let name = self.job.name(index);
        let checkpoint = match self.job.checkpoint(ending) {
            Ok(checkpoint) => checkpoint,
            Err(err) => {
                tracing::error!(step = name, error = %err, "cannot write the checkpoint");
                return false;
            }
        };
        let mut detail = self.job.take_detail();
        let (attempts, retried) = std::mem::take(&mut self.retries);
        if attempts > 1 {
            detail.attempts = Some(attempts);
            detail.retried_error = retried;
        }
        if let Some(timing) = timing {
            detail.waited_ms = Some(timing.waited_ms);
            detail.overhead_ms = Some(timing.overhead_ms);
        }
        let entry = StepLogEntry {
            name: name.to_owned(),
            direction,
            started_ms,
            finished_ms: now_ms(),
            detail,
        };
        let task = self.under.task;
        match self
            .under
            .exec
            .journal
            .checkpoint_step(&task.request_id, task.epoch, next, &checkpoint, &entry)
            .await
        {
            Ok(moved) => moved,
            Err(err) => {
                // The step's effects are found again by its lookups; the next claim re-runs it.
                tracing::warn!(step = name, error = %err, "cannot checkpoint; releasing the task");
                false
            }
        }
    }

    async fn forward(&mut self) -> Outcome {
        let task = self.under.task;
        let exec = self.under.exec;
        let deadline_ms = task.create_ts * 1000 + clock::millis(exec.config.task_deadline);
        for index in task.step_index..self.job.len() {
            let name = self.job.name(index);
            if self.under.lost() {
                return Outcome::Abandoned;
            }
            if self.under.stopping() {
                return Outcome::Released;
            }
            if !self.holds_aborts(index) && self.under.abort_requested().await {
                // The step this run resumed at may have done part of its work in an earlier
                // life of the task (which died before its checkpoint): undo it too.
                let completed = if index == task.step_index {
                    index + 1
                } else {
                    index
                };
                let ending = Ending::new(TaskState::Aborted, "aborted by request");
                return self.compensate(completed, ending).await;
            }
            let started_ms = now_ms();
            let clock = Instant::now();
            let (outcome, waited) =
                crate::timing::measure(self.attempt(index, Run::Do, deadline_ms)).await;
            // What the step waited for (SDP, agents, retry pauses) and what it cost Flex
            // itself: the orchestration overhead the benchmarks report.
            let timing = Timing::of(clock.elapsed(), waited);
            match outcome {
                Ok(_) => {}
                // The failed step may have done part of its work: its undo runs too (undos
                // look up what exists, so undoing what never happened is harmless).
                Err((GaveUp::Failed(message), _)) => {
                    tracing::warn!(step = name, message = %escaped(&message), "step failed");
                    let ending = Ending::new(TaskState::Failed, format!("{name}: {message}"));
                    return self.compensate(index + 1, ending).await;
                }
                Err((GaveUp::Stopped(Stop::Aborted), _)) => {
                    let ending =
                        Ending::new(TaskState::Aborted, format!("{name}: aborted by request"));
                    return self.compensate(index + 1, ending).await;
                }
                Err((GaveUp::Stopped(Stop::LeaseLost), _)) => return Outcome::Abandoned,
                Err((GaveUp::Stopped(_), _)) => return Outcome::Released,
            }
            exec.fault_point(task, name, false).await;
            let next = (index + 1, Phase::Forward);
            if !self
                .record(
                    index,
                    StepDirection::Do,
                    next,
                    started_ms,
                    None,
                    Some(timing),
                )
                .await
            {
                return Outcome::Abandoned;
            }
            exec.fault_point(task, name, true).await;
        }
        let result = self.job.result();
        exec.finish(task, TaskState::Completed, "", result.as_deref())
            .await
    }

    /// Whether an abort must wait before step `index`: it continues a run of forward-only
    /// steps already begun (or, resumed after a crash, may have begun it itself).
    fn holds_aborts(&self, index: usize) -> bool {
        if !self.job.forward_only(index) {
            return false;
        }
        let resumed_here = index == self.under.task.step_index && self.under.task.epoch > 1;
        resumed_here || (index > 0 && self.job.forward_only(index - 1))
    }

    /// Undoes steps `completed - 1` down to 0, then ends the task as `ending` says.
    async fn compensate(&mut self, completed: usize, ending: Ending) -> Outcome {
        // Undo retries longer than the forward deadline: leaving objects behind is worse.
        let exec = self.under.exec;
        let undo_deadline = now_ms() + clock::millis(exec.config.task_deadline);
        let mut notes: Vec<String> = Vec::new();
        for index in (0..completed).rev() {
            if self.under.lost() {
                return Outcome::Abandoned;
            }
            if self.under.stopping() {
                return Outcome::Released;
            }
            let name = self.job.name(index);
            let started_ms = now_ms();
            match self.attempt(index, Run::Undo, undo_deadline).await {
                Ok(_) => {}
                Err((GaveUp::Failed(message), _)) => {
                    notes.push(format!("undo of {name}: {message}"));
                }
                Err((GaveUp::Stopped(Stop::LeaseLost), _)) => return Outcome::Abandoned,
                Err((GaveUp::Stopped(_), _)) => return Outcome::Released,
            }
            let next = (index, Phase::Undo);
            if !self
                .record(
                    index,
                    StepDirection::Undo,
                    next,
                    started_ms,
                    Some(&ending),
                    None,
                )
                .await
            {
                return Outcome::Abandoned;
            }
        }
        let mut message = ending.error.clone();
        if !notes.is_empty() {
            message = format!("{message}; compensation incomplete: {}", notes.join("; "));
        }
        // What forward-only steps took away stays taken away: say so.
        let kept: Vec<&str> = (0..completed)
            .filter(|&index| self.job.forward_only(index))
            .map(|index| self.job.name(index))
            .collect();
        if !kept.is_empty() {
            message = format!(
                "{message}; not undone, as they cannot be: {}",
                kept.join(", ")
            );
        }
        exec.finish(self.under.task, ending.state, &message, None)
            .await
    }
}

/// A step's time, split into what it waited for and what was Flex's own.
#[derive(Clone, Copy)]
struct Timing {
    waited_ms: f64,
    overhead_ms: f64,
}

impl Timing {
    fn of(took: std::time::Duration, waited: std::time::Duration) -> Timing {
        let millis = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        Timing {
            waited_ms: millis(waited),
            overhead_ms: millis(took.saturating_sub(waited)),
        }
    }
}
