//! Retrying a step that failed transiently: capped exponential backoff with jitter, never
//! shorter than what the failing side asked for (`Retry-After`), until a check between
//! attempts says to stop (deadline, lost lease, abort, shutdown).

use std::{future::Future, time::Duration};

use super::workflow::{Job, StepError};

/// The pauses between attempts of one step: `base`, doubled each time, capped at `cap`, each
/// scaled by a jitter factor so that many tasks failing together do not retry together.
pub struct Backoff {
    next: Duration,
    cap: Duration,
    jitter: fn() -> f64,
}

/// A factor in [0.75, 1.25).
pub fn random_jitter() -> f64 {
    rand::random::<f64>() * 0.5 + 0.75
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, jitter: fn() -> f64) -> Backoff {
        Backoff {
            next: base,
            cap,
            jitter,
        }
    }

    /// The pause before the next attempt: the backoff, or what the failure asked for when that
    /// is longer.
    pub fn pause(&mut self, asked: Option<Duration>) -> Duration {
        let backoff = self.next.mul_f64((self.jitter)());
        self.next = (self.next * 2).min(self.cap);
        asked.map_or(backoff, |asked| asked.max(backoff))
    }
}

/// How a retried step ended when it did not succeed.
#[derive(Debug, PartialEq)]
pub enum GaveUp {
    /// A permanent failure, or a check said to stop; the message says why.
    Failed(String),
    /// A check asked for this reason to stop without a verdict (abort, shutdown, lost lease).
    Stopped(Stop),
}

/// Why the checks between attempts stop a retrying step.
#[derive(Clone, Debug, PartialEq)]
pub enum Stop {
    /// The task's deadline passed: it fails.
    Deadline,
    /// The client asked to abort: it is undone.
    Aborted,
    /// Another worker owns the task now.
    LeaseLost,
    /// This process is shutting down: the task is left for a restart or a replica.
    Shutdown,
}

/// Which of a step's two functions to run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Run {
    Do,
    Undo,
}

/// Runs step `index` of `job` (or its undo) until it succeeds, fails permanently, or `check`
/// (asked before every retry) says to stop. `on_retry` is told of every retry. Returns the
/// number of attempts made. A step without an undo succeeds at once when undone.
pub async fn retrying<C, CF>(
    job: &mut dyn Job,
    index: usize,
    run: Run,
    backoff: &mut Backoff,
    mut check: C,
    mut on_retry: impl FnMut(u32, &str),
) -> Result<u32, (GaveUp, u32)>
where
    C: FnMut() -> CF,
    CF: Future<Output = Option<Stop>>,
{
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let outcome = match run {
            Run::Do => job.run(index).await,
            Run::Undo => match job.undo(index) {
                Some(undo) => undo.await,
                None => return Ok(attempts),
            },
        };
        match outcome {
            Ok(()) => return Ok(attempts),
            Err(StepError::Permanent(message)) => return Err((GaveUp::Failed(message), attempts)),
            Err(StepError::Transient {
                message,
                retry_after,
            }) => {
                if let Some(stop) = check().await {
                    return Err(match stop {
                        Stop::Deadline => (
                            GaveUp::Failed(format!("the task's deadline passed ({message})")),
                            attempts,
                        ),
                        other => (GaveUp::Stopped(other), attempts),
                    });
                }
                on_retry(attempts, &message);
                let pause = backoff.pause(retry_after);
                crate::timing::waiting(tokio::time::sleep(pause)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::{executor::workflow::StepFuture, model::StepDetail};

    fn no_jitter() -> f64 {
        1.0
    }

    /// One step that fails transiently `failures` times (asking for `retry_after`), then
    /// succeeds, recording when each attempt started.
    struct Flaky {
        failures: u32,
        retry_after: Option<Duration>,
        permanent: bool,
        starts: Vec<Instant>,
    }

    impl Flaky {
        fn new(failures: u32, retry_after: Option<Duration>) -> Flaky {
            Flaky {
                failures,
                retry_after,
                permanent: false,
                starts: Vec::new(),
            }
        }

        fn gaps(&self) -> Vec<Duration> {
            self.starts.windows(2).map(|w| w[1] - w[0]).collect()
        }
    }

    impl Job for Flaky {
        fn len(&self) -> usize {
            1
        }
        fn name(&self, _: usize) -> &'static str {
            "flaky"
        }
        fn forward_only(&self, _: usize) -> bool {
            false
        }
        fn run(&mut self, _: usize) -> StepFuture<'_> {
            Box::pin(async move {
                self.starts.push(Instant::now());
                if self.permanent {
                    return Err(StepError::permanent("refused"));
                }
                if self.starts.len() <= self.failures as usize {
                    Err(StepError::Transient {
                        message: "busy".into(),
                        retry_after: self.retry_after,
                    })
                } else {
                    Ok(())
                }
            })
        }
        fn undo(&mut self, _: usize) -> Option<StepFuture<'_>> {
            None
        }
        fn checkpoint(
            &self,
            _: Option<&crate::executor::workflow::Ending>,
        ) -> Result<String, serde_json::Error> {
            Ok("{}".into())
        }
        fn take_detail(&mut self) -> StepDetail {
            StepDetail::default()
        }
        fn result(&self) -> Option<String> {
            None
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_its_cap() {
        let mut step = Flaky::new(4, None);
        let mut backoff = Backoff::new(
            Duration::from_millis(200),
            Duration::from_millis(700),
            no_jitter,
        );
        let mut retries = 0;
        let attempts = retrying(
            &mut step,
            0,
            Run::Do,
            &mut backoff,
            || async { None },
            |_, _| retries += 1,
        )
        .await
        .unwrap();
        assert_eq!((attempts, retries), (5, 4));
        let ms = Duration::from_millis;
        assert_eq!(step.gaps(), [ms(200), ms(400), ms(700), ms(700)]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_at_least() {
        let mut step = Flaky::new(2, Some(Duration::from_secs(3)));
        let mut backoff = Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(10),
            no_jitter,
        );
        retrying(
            &mut step,
            0,
            Run::Do,
            &mut backoff,
            || async { None },
            |_, _| {},
        )
        .await
        .unwrap();
        assert_eq!(
            step.gaps(),
            [Duration::from_secs(3), Duration::from_secs(3)]
        );
        // A Retry-After shorter than the backoff does not shorten it.
        assert_eq!(
            backoff.pause(Some(Duration::from_millis(10))),
            Duration::from_millis(800)
        );
    }

    #[test]
    fn jitter_scales_each_pause() {
        fn high() -> f64 {
            1.25
        }
        let mut backoff = Backoff::new(Duration::from_millis(400), Duration::from_secs(1), high);
        assert_eq!(backoff.pause(None), Duration::from_millis(500));
        assert_eq!(backoff.pause(None), Duration::from_secs(1));
        assert_eq!(backoff.pause(None), Duration::from_millis(1250));
        let random = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(1),
            random_jitter,
        )
        .pause(None);
        assert!((Duration::from_millis(750)..Duration::from_millis(1250)).contains(&random));
    }

    #[tokio::test(start_paused = true)]
    async fn checks_stop_retries_and_permanent_failures_are_final() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), no_jitter);
        let outcome = retrying(
            &mut Flaky::new(10, None),
            0,
            Run::Do,
            &mut backoff,
            || async { Some(Stop::Deadline) },
            |_, _| {},
        )
        .await;
        match outcome {
            Err((GaveUp::Failed(message), 1)) => assert!(message.contains("deadline"), "{message}"),
            other => panic!("{other:?}"),
        }
        let outcome = retrying(
            &mut Flaky::new(10, None),
            0,
            Run::Do,
            &mut backoff,
            || async { Some(Stop::Aborted) },
            |_, _| {},
        )
        .await;
        assert_eq!(outcome, Err((GaveUp::Stopped(Stop::Aborted), 1)));
        let mut refusing = Flaky::new(0, None);
        refusing.permanent = true;
        let outcome = retrying(
            &mut refusing,
            0,
            Run::Do,
            &mut backoff,
            || async { None },
            |_, _| {},
        )
        .await;
        assert_eq!(outcome, Err((GaveUp::Failed("refused".into()), 1)));
        assert_eq!(
            retrying(
                &mut refusing,
                0,
                Run::Undo,
                &mut backoff,
                || async { None },
                |_, _| {}
            )
            .await,
            Ok(1),
            "a step without an undo is undone at once"
        );
    }
}
