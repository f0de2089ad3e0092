//! The durable executor: runs every task's workflow to its end, across crashes and replicas.
//!
//! A worker claims a runnable task with a lease (owner, expiry, epoch + 1) and heartbeats it
//! while it works; every write is fenced on the epoch, so a worker that lost its lease cannot
//! clobber the one that took over. After each step its outputs are checkpointed in the same
//! transaction that advances the step index; a crash resumes at the next step, and steps look
//! up before they create. Transient failures retry with capped, jittered backoff; a permanent
//! failure, an abort or the overall deadline undoes the completed steps in reverse.

mod step;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::{Map, Value, json};
use tokio::sync::{Notify, watch};

pub use step::{Ctx, Step, StepError, StepFuture};

use crate::{
    agents::AgentHub,
    sdp::SdpClient,
    store::{ClaimedTask, StepLogEntry, Store},
};

#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// Tasks run at once by this process.
    pub workers: usize,
    /// How long a claim holds without a heartbeat.
    pub lease: Duration,
    /// A task still running this long after its creation fails (and compensates).
    pub task_deadline: Duration,
    /// Longest time databases may stay frozen for an application-consistent snapshot.
    pub freeze_window: Duration,
    /// Backoff between attempts of a step that failed transiently: base, doubled, capped.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How often idle workers look for tasks other replicas created or abandoned.
    pub poll: Duration,
    /// Fault injection for the crash matrix: abort the process at `(step, point)`, where point
    /// is `before_checkpoint` (the step's effects happened, its checkpoint did not) or
    /// `after_checkpoint`. Set from `FLEX_CRASH_AT=step:point`; never in production.
    pub crash_at: Option<(String, String)>,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            workers: 4,
            lease: Duration::from_secs(30),
            task_deadline: Duration::from_secs(3600),
            freeze_window: Duration::from_secs(10),
            retry_base: Duration::from_millis(200),
            retry_cap: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            crash_at: None,
        }
    }
}

pub(crate) struct ExecInner {
    pub store: Store,
    pub sdp: Option<SdpClient>,
    pub agents: AgentHub,
    pub instance_id: String,
    pub config: ExecutorConfig,
    pub metrics: Arc<crate::metrics::Metrics>,
    wake: Notify,
    stop: watch::Sender<bool>,
}

/// Cheap to clone; one per process.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<ExecInner>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// How a run of a task ended, for the logs.
enum Outcome {
    Completed,
    Undone(&'static str),
    /// The lease was lost: another worker owns the task now.
    Abandoned,
}

impl Executor {
    pub fn new(
        store: Store,
        sdp: Option<SdpClient>,
        agents: AgentHub,
        instance_id: &str,
        config: ExecutorConfig,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Executor {
        let (stop, _) = watch::channel(false);
        Executor {
            inner: Arc::new(ExecInner {
                store,
                sdp,
                agents,
                instance_id: instance_id.to_owned(),
                config,
                metrics,
                wake: Notify::new(),
                stop,
            }),
        }
    }

    /// A task was created: a worker picks it up at once instead of at its next poll.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    pub fn freeze_window(&self) -> Duration {
        self.inner.config.freeze_window
    }

    /// Starts the workers; they resume whatever is unfinished, including tasks this process
    /// (or a dead replica) held before.
    pub async fn start(&self) -> Result<(), crate::store::StoreError> {
        let released = self
            .inner
            .store
            .release_leases_of(&self.inner.instance_id)
            .await?;
        if released > 0 {
            tracing::info!(
                released,
                "resuming tasks this instance held before it stopped"
            );
        }
        self.spawn_workers();
        Ok(())
    }

    fn crash_if_asked(&self, step: &str, point: &str) {
        if let Some((crash_step, crash_point)) = &self.inner.config.crash_at
            && crash_step == step
            && crash_point == point
        {
            eprintln!("FLEX_CRASH_AT reached: {step}:{point}; aborting");
            std::process::abort();
        }
    }

    fn spawn_workers(&self) {
        let executor = self.clone();
        tokio::spawn(async move { executor.dispatch().await });
    }

    pub fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        self.inner.wake.notify_waiters();
    }

    /// One claimer for the whole process: it claims a task whenever a slot is free and runs it
    /// on its own tokio task. Idle, it costs one claim query per wake-up or poll, however many
    /// slots (`workers`) there are, so thousands of concurrent tasks need no thousands of
    /// pollers.
    async fn dispatch(&self) {
        let mut stop = self.inner.stop.subscribe();
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.inner.config.workers.max(1),
        ));
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
                _ = stop.changed() => return,
            };
            if *stop.borrow() {
                return;
            }
            let lease_ms = self.inner.config.lease.as_millis() as i64;
            match self
                .inner
                .store
                .claim_task(&self.inner.instance_id, lease_ms, now_ms())
                .await
            {
                Ok(Some(task)) => {
                    let executor = self.clone();
                    tokio::spawn(async move {
                        executor.run(task).await;
                        drop(slot);
                    });
                    // There may be more to claim: go round again at once.
                    continue;
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "cannot claim tasks"),
            }
            drop(slot);
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(self.inner.config.poll) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn run(&self, task: ClaimedTask) {
        // Every log line of the task carries its request id and the client's ref id.
        let span = tracing::info_span!("task", request_id = %task.request_id, ref_id = %task.ref_id, command = %task.command_type);
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = self.spawn_heartbeat(&task, lost.clone());
        let outcome = tracing::Instrument::instrument(self.drive(&task, &lost), span.clone()).await;
        heartbeat.abort();
        let _in_span = span.enter();
        match outcome {
            Outcome::Completed => tracing::info!("task completed"),
            Outcome::Undone(state) => tracing::info!(state, "task ended after compensation"),
            Outcome::Abandoned => tracing::warn!("lease lost; another worker owns the task"),
        }
    }

    fn spawn_heartbeat(
        &self,
        task: &ClaimedTask,
        lost: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.inner.store.clone();
        let lease = self.inner.config.lease;
        let (request_id, epoch) = (task.request_id.clone(), task.epoch);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match store
                    .extend_lease(&request_id, epoch, now_ms() + lease.as_millis() as i64)
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

    async fn drive(&self, task: &ClaimedTask, lost: &AtomicBool) -> Outcome {
        let steps = crate::workflows::steps_for(&task.command_type);
        let checkpoint: Map<String, Value> =
            serde_json::from_str(&task.checkpoint).unwrap_or_default();
        let request: Value = serde_json::from_str(&task.request).unwrap_or(Value::Null);
        let mut ctx = Ctx::new(self.inner.clone(), task, request, checkpoint);
        let deadline_ms =
            task.create_ts * 1000 + self.inner.config.task_deadline.as_millis() as i64;

        if task.phase == "undo" {
            let state = ctx
                .checkpoint_str("_final_state")
                .unwrap_or("failed")
                .to_owned();
            let error = ctx.checkpoint_str("_error").unwrap_or_default().to_owned();
            return self
                .compensate(
                    &mut ctx,
                    &steps,
                    task.step_index as usize,
                    &state,
                    &error,
                    lost,
                )
                .await;
        }

        for index in task.step_index as usize..steps.len() {
            let step = &steps[index];
            if lost.load(Ordering::SeqCst) {
                return Outcome::Abandoned;
            }
            if matches!(
                self.inner.store.abort_requested(&task.request_id).await,
                Ok(true)
            ) {
                return self
                    .compensate(
                        &mut ctx,
                        &steps,
                        index,
                        "aborted",
                        "aborted by request",
                        lost,
                    )
                    .await;
            }
            let started = now_ms();
            let clock = std::time::Instant::now();
            let (outcome, waited) = crate::timing::measure(self.attempt(
                &mut ctx,
                step.name,
                step.run,
                deadline_ms,
                lost,
            ))
            .await;
            match outcome {
                Ok(()) => {
                    // What the step waited for (SDP, agents, retry pauses) and what it cost
                    // Flex itself: the orchestration overhead the benchmarks report.
                    let took = clock.elapsed();
                    let millis = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
                    ctx.detail.insert("waited_ms".into(), json!(millis(waited)));
                    ctx.detail.insert(
                        "overhead_ms".into(),
                        json!(millis(took.saturating_sub(waited))),
                    );
                }
                // The failed step may have done part of its work: its undo runs too (undos
                // look up what exists, so undoing what never happened is harmless).
                Err((state, message)) => {
                    return self
                        .compensate(&mut ctx, &steps, index + 1, state, &message, lost)
                        .await;
                }
            }
            self.crash_if_asked(step.name, "before_checkpoint");
            let entry = StepLogEntry {
                name: step.name.to_owned(),
                direction: "do".to_owned(),
                started_ms: started,
                finished_ms: now_ms(),
                detail: Value::Object(std::mem::take(&mut ctx.detail)).to_string(),
            };
            match self
                .inner
                .store
                .checkpoint_step(
                    &task.request_id,
                    task.epoch,
                    index as i64 + 1,
                    "forward",
                    &ctx.checkpoint_json(),
                    &entry,
                )
                .await
            {
                Ok(true) => self.crash_if_asked(step.name, "after_checkpoint"),
                Ok(false) => return Outcome::Abandoned,
                Err(err) => {
                    // The step's effects are recorded by its lookups; the next claim re-runs it.
                    tracing::warn!(step = step.name, error = %err, "cannot checkpoint; releasing the task");
                    return Outcome::Abandoned;
                }
            }
        }
        let result = ctx
            .get("result")
            .filter(|r| !r.is_null())
            .map(|r| r.to_string());
        match self
            .inner
            .store
            .finish_task(
                &task.request_id,
                task.epoch,
                "completed",
                "",
                result.as_deref(),
            )
            .await
        {
            Ok(true) => {
                self.inner.metrics.task_finished("completed");
                Outcome::Completed
            }
            _ => Outcome::Abandoned,
        }
    }

    /// Runs a step function, retrying transient failures with capped, jittered backoff until
    /// the task's deadline or an abort. Returns the state the task should end in and why.
    async fn attempt(
        &self,
        ctx: &mut Ctx,
        name: &str,
        run: step::StepFn,
        deadline_ms: i64,
        lost: &AtomicBool,
    ) -> Result<(), (&'static str, String)> {
        let mut delay = self.inner.config.retry_base;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match run(ctx).await {
                Ok(()) => return Ok(()),
                Err(StepError::Permanent(message)) => {
                    tracing::warn!(step = name, %message, "step failed");
                    return Err(("failed", format!("{name}: {message}")));
                }
                Err(StepError::Transient(message)) => {
                    if now_ms() >= deadline_ms {
                        return Err((
                            "failed",
                            format!("{name}: the task's deadline passed ({message})"),
                        ));
                    }
                    if lost.load(Ordering::SeqCst) {
                        return Err(("failed", format!("{name}: lease lost")));
                    }
                    if ctx.phase_is_forward()
                        && matches!(
                            self.inner.store.abort_requested(&ctx.request_id).await,
                            Ok(true)
                        )
                    {
                        return Err(("aborted", format!("{name}: aborted by request")));
                    }
                    tracing::info!(step = name, attempts, %message, "transient failure; retrying");
                    self.inner.metrics.step_retried();
                    let jitter = rand::random::<f64>() * 0.5 + 0.75;
                    crate::timing::waiting(tokio::time::sleep(delay.mul_f64(jitter))).await;
                    delay = (delay * 2).min(self.inner.config.retry_cap);
                }
            }
        }
    }

    /// Undoes steps `completed - 1` down to 0, then ends the task as `state`.
    async fn compensate(
        &self,
        ctx: &mut Ctx,
        steps: &[Step],
        completed: usize,
        state: &str,
        error: &str,
        lost: &AtomicBool,
    ) -> Outcome {
        ctx.enter_undo(state, error);
        let final_state: &'static str = if state == "aborted" {
            "aborted"
        } else {
            "failed"
        };
        // Undo retries longer than the forward deadline: leaving objects behind is worse.
        let undo_deadline = now_ms() + self.inner.config.task_deadline.as_millis() as i64;
        let mut notes: Vec<String> = Vec::new();
        for index in (0..completed).rev() {
            let step = &steps[index];
            if lost.load(Ordering::SeqCst) {
                return Outcome::Abandoned;
            }
            let started = now_ms();
            if let Some(undo) = step.undo
                && let Err((_, message)) = self
                    .attempt(ctx, step.name, undo, undo_deadline, lost)
                    .await
            {
                notes.push(format!("undo of {message}"));
            }
            let entry = StepLogEntry {
                name: step.name.to_owned(),
                direction: "undo".to_owned(),
                started_ms: started,
                finished_ms: now_ms(),
                detail: Value::Object(std::mem::take(&mut ctx.detail)).to_string(),
            };
            match self
                .inner
                .store
                .checkpoint_step(
                    &ctx.request_id,
                    ctx.epoch,
                    index as i64,
                    "undo",
                    &ctx.checkpoint_json(),
                    &entry,
                )
                .await
            {
                Ok(true) => {}
                _ => return Outcome::Abandoned,
            }
        }
        let mut message = error.to_owned();
        if !notes.is_empty() {
            message = format!("{message}; compensation incomplete: {}", notes.join("; "));
        }
        match self
            .inner
            .store
            .finish_task(&ctx.request_id, ctx.epoch, final_state, &message, None)
            .await
        {
            Ok(true) => {
                self.inner.metrics.task_finished(final_state);
                Outcome::Undone(final_state)
            }
            _ => Outcome::Abandoned,
        }
    }
}
