//! Time a task spends waiting on others — SDP calls, agent replies, retry pauses — so the
//! executor can tell Flex's own cost of a step (its duration minus what it waited for) from the
//! array's and the hosts'. That difference is what orchestration overhead means, and what the
//! step log and the benchmarks report.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

tokio::task_local! {
    static WAITED_NANOS: Arc<AtomicU64>;
}

/// Runs `future`; returns its output and the time it spent inside [`waiting`] sections.
pub async fn measure<F: Future>(future: F) -> (F::Output, Duration) {
    let waited = Arc::new(AtomicU64::new(0));
    let output = WAITED_NANOS.scope(waited.clone(), future).await;
    (output, Duration::from_nanos(waited.load(Ordering::Relaxed)))
}

/// Awaits `future`, counting its whole duration as waiting (outside [`measure`], just awaits).
pub async fn waiting<F: Future>(future: F) -> F::Output {
    let started = Instant::now();
    let output = future.await;
    let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let _ = WAITED_NANOS.try_with(|waited| waited.fetch_add(elapsed, Ordering::Relaxed));
    output
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
        // Outside a measurement it is a plain await.
        assert_eq!(waiting(async { 7 }).await, 7);
    }
}
