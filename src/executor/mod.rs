//! The durable executor: runs every task's workflow to its end, across crashes and replicas.
//!
//! A claimer takes a runnable task with a lease (owner, expiry, epoch + 1) whenever a slot is
//! free, and the task's runner heartbeats the lease while it works; every write is fenced on
//! the epoch, so a worker that lost its lease cannot clobber the one that took over. After each
//! step its outputs are checkpointed in the same transaction that advances the step index; a
//! crash resumes at the next step, and steps look up before they create. Transient failures
//! retry with capped, jittered backoff (never sooner than a `Retry-After`); a permanent
//! failure, an abort or the overall deadline undoes the completed steps in reverse.
//!
//! The executor knows tasks, leases, checkpoints, retries and undo, and nothing else: what a
//! task does is its workflow's business ([`Catalogue`], [`Workflow`]), and its state lives
//! behind a [`Journal`].

mod journal;
mod retry;
mod run;
#[cfg(test)]
mod tests;
mod workflow;

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{Mutex, Notify, Semaphore, watch},
    task::JoinSet,
};

pub use journal::Journal;
pub use retry::Backoff;
pub use workflow::{
    Catalogue, Context, Step, StepError, StepFn, StepFuture, StepResult, TaskRef, Workflow,
};

use crate::{clock, defaults, metrics::Metrics, store::Store};

#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// Tasks run at once by this process.
    pub workers: usize,
    /// How long a claim holds without a heartbeat.
    pub lease: Duration,
    /// A task still running this long after its creation fails (and compensates).
    pub task_deadline: Duration,
    /// Backoff between attempts of a step that failed transiently: base, doubled, capped.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How often an idle claimer looks for tasks other replicas created or abandoned.
    pub poll: Duration,
    /// On shutdown, how long running steps get to reach their checkpoint before they are
    /// cancelled (a cancelled step runs again, from its lookups, when the task resumes).
    pub drain_timeout: Duration,
    /// Fault injection for the crash and abort matrices: abort the process (or request an
    /// abort) at this point of this step. Set from `FLEX_CRASH_AT=step:point`; never in
    /// production.
    pub crash_at: Option<CrashPoint>,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            workers: defaults::WORKERS,
            lease: defaults::TASK_LEASE,
            task_deadline: defaults::TASK_DEADLINE,
            retry_base: Duration::from_millis(200),
            retry_cap: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            drain_timeout: defaults::DRAIN_TIMEOUT,
            crash_at: None,
        }
    }
}

crate::wire_enum! {
    /// What the crash and abort matrices do at a step: abort the process there, or have an
    /// abort requested while the step ran (and maybe abort the process too).
    pub enum CrashSide ("crash point") {
        /// The step's effects happened; its checkpoint did not.
        BeforeCheckpoint = "before_checkpoint",
        AfterCheckpoint = "after_checkpoint",
        /// An abort is requested while the step runs; the task goes on as it would.
        AbortRequested = "abort_requested",
        /// An abort is requested while the step runs, then the process dies before the
        /// step's checkpoint.
        AbortThenCrash = "abort_then_crash",
    }
}

/// A step and what happens there, for the crash and abort matrices.
#[derive(Clone, Debug, PartialEq)]
pub struct CrashPoint {
    pub step: String,
    pub side: CrashSide,
}

impl CrashPoint {
    /// `step:before_checkpoint`, `step:after_checkpoint`, `step:abort_requested` or
    /// `step:abort_then_crash`.
    pub fn parse(spec: &str) -> Option<CrashPoint> {
        let (step, side) = spec.split_once(':')?;
        Some(CrashPoint {
            step: step.to_owned(),
            side: side.parse().ok()?,
        })
    }
}

/// Wakes the claimer: a task was created, or a running one was asked to abort.
#[derive(Clone, Default)]
pub struct Waker(Arc<Notify>);

impl Waker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

struct Inner<J> {
    journal: J,
    catalogue: Catalogue,
    instance_id: String,
    config: ExecutorConfig,
    metrics: Arc<Metrics>,
    waker: Waker,
    stop: watch::Sender<bool>,
}

/// Cheap to clone; one per process.
#[derive(Clone)]
pub struct Executor<J: Journal = Store> {
    inner: Arc<Inner<J>>,
    claimer: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl<J: Journal> Executor<J> {
    pub fn new(
        journal: J,
        catalogue: Catalogue,
        instance_id: &str,
        config: ExecutorConfig,
        metrics: Arc<Metrics>,
    ) -> Executor<J> {
        let (stop, _) = watch::channel(false);
        Executor {
            inner: Arc::new(Inner {
                journal,
                catalogue,
                instance_id: instance_id.to_owned(),
                config,
                metrics,
                waker: Waker::default(),
                stop,
            }),
            claimer: Arc::new(Mutex::new(None)),
        }
    }

    /// A handle that wakes the claimer, for whoever creates tasks.
    pub fn waker(&self) -> Waker {
        self.inner.waker.clone()
    }

    /// Starts claiming. Unfinished tasks resume at once, including those this process (or a
    /// dead replica of the same name) held before.
    pub async fn start(&self) -> Result<(), crate::store::StoreError> {
        let released = self
            .inner
            .journal
            .release_leases_of(&self.inner.instance_id)
            .await?;
        if released > 0 {
            tracing::info!(
                released,
                "resuming tasks this instance held before it stopped"
            );
        }
        let inner = self.inner.clone();
        *self.claimer.lock().await = Some(tokio::spawn(inner.dispatch()));
        Ok(())
    }

    /// Stops claiming, lets running steps reach their checkpoint (for at most the drain
    /// timeout), then frees this process's leases so a restart or a replica resumes at once.
    pub async fn drain(&self) {
        let _ = self.inner.stop.send(true);
        self.inner.waker.0.notify_waiters();
        if let Some(claimer) = self.claimer.lock().await.take() {
            let _ = claimer.await;
        }
    }
}

impl<J: Journal> Inner<J> {
    /// One claimer for the whole process: it claims a task whenever a slot is free and runs it
    /// on its own tokio task. Idle, it costs one claim query per wake-up or poll, however many
    /// slots (`workers`) there are.
    async fn dispatch(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let slots = Arc::new(Semaphore::new(self.config.workers.max(1)));
        let runnable = self.catalogue.command_types();
        let lease_ms = clock::millis(self.config.lease);
        let mut running = JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                _ = stop.changed() => break,
            };
            if *stop.borrow() {
                break;
            }
            match self
                .journal
                .claim(&self.instance_id, lease_ms, clock::now_ms(), &runnable)
                .await
            {
                Ok(Some(task)) => {
                    let inner = self.clone();
                    let stop = self.stop.subscribe();
                    running.spawn(async move {
                        inner.run(task, stop).await;
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
                () = self.waker.0.notified() => {}
                () = tokio::time::sleep(self.config.poll) => {}
                _ = stop.changed() => break,
            }
        }
        self.drain_running(running).await;
    }

    async fn drain_running(&self, mut running: JoinSet<()>) {
        let all_done = async { while running.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.drain_timeout, all_done)
            .await
            .is_err()
        {
            tracing::warn!(
                still_running = running.len(),
                "steps did not reach their checkpoint in time; cancelling them"
            );
            running.shutdown().await;
        }
        match self.journal.release_leases_of(&self.instance_id).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "released the leases of unfinished tasks"),
            Err(err) => tracing::warn!(error = %err, "cannot release leases; they expire instead"),
        }
    }
}
