//! Time a task spends waiting on others — SDP calls, agent replies, retry pauses — so the
//! executor can tell Flex's own cost of a step (its duration minus what it waited for) from the
//! array's and the hosts'. That difference is what orchestration overhead means, and what the
//! step log and the benchmarks report.

use std::{
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::time::Instant;

/// The waiting sections of one measurement. Sections may overlap (a step's SDP calls go out
/// together): what counts is the time at least one was open, not their sum, or a step that
/// waits on eight calls at once would seem to wait eight times as long as it took.
#[derive(Default)]
struct Waits {
    open: usize,
    since: Option<Instant>,
    total: Duration,
}

tokio::task_local! {
    static WAITS: Arc<Mutex<Waits>>;
}

fn lock(waits: &Mutex<Waits>) -> MutexGuard<'_, Waits> {
    waits
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One open waiting section; closed when dropped (also when its future is cancelled).
struct Section(Arc<Mutex<Waits>>);

impl Section {
    fn open() -> Option<Section> {
        WAITS
            .try_with(|waits| {
                let mut open = lock(waits);
                if open.open == 0 {
                    open.since = Some(Instant::now());
                }
                open.open += 1;
                Section(waits.clone())
            })
            .ok()
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        let mut waits = lock(&self.0);
        waits.open -= 1;
        if waits.open == 0
            && let Some(since) = waits.since.take()
        {
            waits.total += since.elapsed();
        }
    }
}

/// Runs `future`; returns its output and the time it spent inside [`waiting`] sections.
pub async fn measure<F: Future>(future: F) -> (F::Output, Duration) {
    let waits = Arc::new(Mutex::new(Waits::default()));
    let output = WAITS.scope(waits.clone(), future).await;
    let total = lock(&waits).total;
    (output, total)
}

/// Awaits `future`, counting its whole duration as waiting (outside [`measure`], just awaits).
pub async fn waiting<F: Future>(future: F) -> F::Output {
    let _section = Section::open();
    future.await
}

#[cfg(test)]
mod tests {
    use super::*;

    // The clock is tokio's, paused here: sleeps take exactly their time.
    #[tokio::test(start_paused = true)]
    async fn only_waiting_sections_count() {
        let ((), waited) = measure(async {
            waiting(tokio::time::sleep(Duration::from_millis(30))).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            waiting(tokio::time::sleep(Duration::from_millis(5))).await;
        })
        .await;
        assert_eq!(waited, Duration::from_millis(35));
        // Sections open at once count once: 40 ms of waiting, not 20 + 40.
        let ((), waited) = measure(async {
            let short = waiting(tokio::time::sleep(Duration::from_millis(20)));
            let long = waiting(tokio::time::sleep(Duration::from_millis(40)));
            tokio::join!(short, long);
        })
        .await;
        assert_eq!(waited, Duration::from_millis(40));
        // Outside a measurement it is a plain await.
        assert_eq!(waiting(async { 7 }).await, 7);
    }
}
