//! The executor on its own: a workflow of recording steps, a journal in memory, and tokio's
//! paused clock, so undo order, abort, resume and `Retry-After` are checked exactly.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::{
    Catalogue, Context, Executor, ExecutorConfig, Journal, Step, StepError, TaskRef, Workflow,
};
use crate::{
    metrics::Metrics,
    model::{CommandType, Phase, StepDetail, StepDirection, TaskState},
    store::{ClaimedTask, StepLogEntry, StoreResult},
};

/// The one task the journal holds, and everything the executor wrote about it.
#[derive(Default)]
struct Book {
    task: Option<ClaimedTask>,
    claimed: bool,
    abort: bool,
    checkpoints: Vec<String>,
    steps: Vec<StepLogEntry>,
    finished: Option<(TaskState, String)>,
}

#[derive(Clone, Default)]
struct MemoryJournal(Arc<Mutex<Book>>);

impl MemoryJournal {
    fn with_task(task: ClaimedTask) -> MemoryJournal {
        let journal = MemoryJournal::default();
        journal.0.lock().unwrap().task = Some(task);
        journal
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.0.lock().unwrap()
    }

    /// What the steps did, as the last checkpoint recorded it.
    fn events(&self) -> Vec<String> {
        let book = self.book();
        let last = book
            .checkpoints
            .last()
            .cloned()
            .unwrap_or_else(|| "{}".into());
        serde_json::from_str::<Trail>(&last).unwrap().events
    }
}

impl Journal for MemoryJournal {
    async fn claim(
        &self,
        _owner: &str,
        _lease_ms: i64,
        _now_ms: i64,
        runnable: &[CommandType],
    ) -> StoreResult<Option<ClaimedTask>> {
        let mut book = self.book();
        if book.claimed || book.finished.is_some() {
            return Ok(None);
        }
        let task = book
            .task
            .clone()
            .filter(|t| runnable.contains(&t.command_type));
        book.claimed = task.is_some();
        Ok(task)
    }

    async fn release_leases_of(&self, _owner: &str) -> StoreResult<u64> {
        Ok(0)
    }

    async fn extend_lease(&self, _: &str, _: i64, _: i64) -> StoreResult<bool> {
        Ok(self.book().finished.is_none())
    }

    async fn checkpoint_step(
        &self,
        _: &str,
        _: i64,
        _next: (usize, Phase),
        checkpoint: &str,
        step: &StepLogEntry,
    ) -> StoreResult<bool> {
        let mut book = self.book();
        book.checkpoints.push(checkpoint.to_owned());
        book.steps.push(step.clone());
        Ok(true)
    }

    async fn finish_task(
        &self,
        _: &str,
        _: i64,
        state: TaskState,
        error: &str,
        _result: Option<&str>,
    ) -> StoreResult<bool> {
        self.book().finished = Some((state, error.to_owned()));
        Ok(true)
    }

    async fn abort_requested(&self, _: &str) -> StoreResult<bool> {
        Ok(self.book().abort)
    }

    async fn request_abort(&self, _: &str) -> StoreResult<bool> {
        self.book().abort = true;
        Ok(true)
    }
}

/// The test workflow's checkpoint: what its steps did, in order.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Trail {
    events: Vec<String>,
    /// Attempts of the flaky step so far.
    tries: u32,
}

struct Recorder {
    state: Trail,
    /// Set by the first step when the test wants an abort to arrive then.
    journal: MemoryJournal,
    abort_after_first: bool,
}

impl Context for Recorder {
    type State = Trail;

    fn state(&self) -> &Trail {
        &self.state
    }

    fn take_detail(&mut self) -> StepDetail {
        StepDetail::default()
    }

    fn result(&self) -> Option<String> {
        None
    }
}

fn note(cx: &mut Recorder, event: &str) {
    cx.state.events.push(event.to_owned());
}

fn do_a(cx: &mut Recorder) -> super::StepFuture<'_> {
    Box::pin(async move {
        note(cx, "do a");
        if cx.abort_after_first {
            cx.journal.book().abort = true;
        }
        Ok(())
    })
}

fn undo_a(cx: &mut Recorder) -> super::StepFuture<'_> {
    Box::pin(async move {
        note(cx, "undo a");
        Ok(())
    })
}

fn do_b(cx: &mut Recorder) -> super::StepFuture<'_> {
    Box::pin(async move {
        note(cx, "do b");
        Ok(())
    })
}

fn undo_b(cx: &mut Recorder) -> super::StepFuture<'_> {
    Box::pin(async move {
        note(cx, "undo b");
        Ok(())
    })
}

fn refuse_c(cx: &mut Recorder) -> super::StepFuture<'_> {
    Box::pin(async move {
        note(cx, "do c");
        Err(StepError::permanent("the array refused"))
    })
}

fn undo_c(cx: &mut Recorder) -> super::StepFuture<'_> {
    Box::pin(async move {
        note(cx, "undo c");
        Ok(())
    })
}

/// Busy twice, asking for 3 s each time; then done.
fn busy_c(cx: &mut Recorder) -> super::StepFuture<'_> {
    Box::pin(async move {
        cx.state.tries += 1;
        note(cx, "try c");
        if cx.state.tries <= 2 {
            return Err(StepError::Transient {
                message: "busy".into(),
                retry_after: Some(Duration::from_secs(3)),
            });
        }
        Ok(())
    })
}

static FAILING: &[Step<Recorder>] = &[
    Step::new("a", do_a).undo(undo_a),
    Step::new("b", do_b).undo(undo_b),
    Step::new("c", refuse_c).undo(undo_c),
];

static BUSY: &[Step<Recorder>] = &[
    Step::new("a", do_a).undo(undo_a),
    Step::new("c", busy_c).undo(undo_c),
];

struct TestFlow {
    steps: &'static [Step<Recorder>],
    journal: MemoryJournal,
    abort_after_first: bool,
}

impl Workflow for TestFlow {
    type Cx = Recorder;

    fn steps(&self) -> &'static [Step<Recorder>] {
        self.steps
    }

    fn open(&self, _task: TaskRef, _request: &str, state: Trail) -> Result<Recorder, String> {
        Ok(Recorder {
            state,
            journal: self.journal.clone(),
            abort_after_first: self.abort_after_first,
        })
    }
}

fn claimed(phase: Phase, step_index: usize, checkpoint: &str) -> ClaimedTask {
    ClaimedTask {
        request_id: "t1".into(),
        command_type: CommandType::CreateClone,
        ref_id: "Ref1".into(),
        create_ts: crate::clock::now_ts(),
        request: "{}".into(),
        epoch: 1,
        step_index,
        checkpoint: checkpoint.into(),
        phase,
        abort_requested: false,
    }
}

/// Runs the task the journal holds to its end with `steps`, on the paused clock.
async fn run(journal: &MemoryJournal, steps: &'static [Step<Recorder>], abort_after_first: bool) {
    let flow = TestFlow {
        steps,
        journal: journal.clone(),
        abort_after_first,
    };
    let catalogue = Catalogue::new().with(CommandType::CreateClone, flow);
    let config = ExecutorConfig {
        retry_base: Duration::from_millis(100),
        ..ExecutorConfig::default()
    };
    let executor = Executor::new(
        journal.clone(),
        catalogue,
        "test",
        config,
        Arc::new(Metrics::default()),
    );
    executor.start().await.unwrap();
    for _ in 0..10_000 {
        if journal.book().finished.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    executor.drain().await;
    assert!(journal.book().finished.is_some(), "the task never ended");
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_undoes_the_failed_step_then_the_others_in_reverse() {
    let journal = MemoryJournal::with_task(claimed(Phase::Forward, 0, "{}"));
    run(&journal, FAILING, false).await;
    assert_eq!(
        journal.events(),
        ["do a", "do b", "do c", "undo c", "undo b", "undo a"]
    );
    let (state, error) = journal.book().finished.clone().unwrap();
    assert_eq!(state, TaskState::Failed);
    assert_eq!(error, "c: the array refused");
    let log: Vec<(String, StepDirection)> = journal
        .book()
        .steps
        .iter()
        .map(|s| (s.name.clone(), s.direction))
        .collect();
    let expected: Vec<(String, StepDirection)> = [
        ("a", StepDirection::Do),
        ("b", StepDirection::Do),
        ("c", StepDirection::Undo),
        ("b", StepDirection::Undo),
        ("a", StepDirection::Undo),
    ]
    .into_iter()
    .map(|(n, d)| (n.to_owned(), d))
    .collect();
    assert_eq!(log, expected);
}

#[tokio::test(start_paused = true)]
async fn an_abort_stops_at_the_next_step_and_undoes_what_ran() {
    let journal = MemoryJournal::with_task(claimed(Phase::Forward, 0, "{}"));
    run(&journal, FAILING, true).await;
    assert_eq!(journal.events(), ["do a", "undo a"]);
    let (state, error) = journal.book().finished.clone().unwrap();
    assert_eq!(
        (state, error.as_str()),
        (TaskState::Aborted, "aborted by request")
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_undo_continues_where_it_stopped_and_ends_as_it_was_going_to() {
    // Stopped after undoing c: b and a remain, and the task was being aborted.
    let checkpoint =
        r#"{"events":["do a","do b","undo c"],"_final_state":"aborted","_error":"stop"}"#;
    let journal = MemoryJournal::with_task(claimed(Phase::Undo, 2, checkpoint));
    run(&journal, FAILING, false).await;
    assert_eq!(
        journal.events(),
        ["do a", "do b", "undo c", "undo b", "undo a"]
    );
    let (state, error) = journal.book().finished.clone().unwrap();
    assert_eq!((state, error.as_str()), (TaskState::Aborted, "stop"));
    // The checkpoints of the undo keep saying how the task ends.
    let last = journal.book().checkpoints.last().cloned().unwrap();
    assert!(last.contains(r#""_final_state":"aborted""#), "{last}");
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_waits_at_least_its_retry_after() {
    let journal = MemoryJournal::with_task(claimed(Phase::Forward, 0, "{}"));
    let started = tokio::time::Instant::now();
    run(&journal, BUSY, false).await;
    assert_eq!(
        journal.book().finished.clone().unwrap().0,
        TaskState::Completed
    );
    assert_eq!(journal.events(), ["do a", "try c", "try c", "try c"]);
    // Two pauses of 3 s each, though the backoff alone would be 0.1 s and 0.2 s (the test
    // looks every 50 ms).
    let took = started.elapsed();
    assert!(
        (Duration::from_secs(6)..Duration::from_millis(6_100)).contains(&took),
        "{took:?}"
    );
}
