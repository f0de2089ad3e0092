//! What Flex does by itself: it deletes expired echo DBs, runs due snapshot schedules, and
//! prunes events older than their retention.
//! Every action is an ordinary task (steps, ledger, undo) created through the store with a
//! guard, so it is durable and happens once however many replicas look at the same moment.
//! Each replica checks every `--expiry-check-secs`, and once at start (a run missed while
//! Flex was down happens then, once).

pub mod cadence;
mod expiry;
mod schedules;

use std::time::Duration;

use tokio::{sync::watch, task::JoinHandle};

use crate::{clock::now_ts, executor::Waker, store::Store};

pub use expiry::RETRY_AFTER_SECS;

/// How long what the store only appends to is kept.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub events: Duration,
    pub audit: Duration,
}

/// The running checker; [`Automation::stop`] ends it.
pub struct Automation {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Automation {
    /// Checks every `every`, starting now; tasks it creates are owned by `owner`. Events and
    /// audit rows older than their `retention` are pruned as it goes.
    pub fn start(
        store: Store,
        executor: Waker,
        owner: String,
        every: Duration,
        retention: Retention,
    ) -> Automation {
        let (stop, mut stopped) = watch::channel(false);
        let handle = tokio::spawn(async move {
            loop {
                check_once(&store, &executor, &owner).await;
                prune(&store, retention).await;
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => break,
                }
            }
        });
        Automation { stop, handle }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

/// Forgets events and audit rows past their retention; a store that does not answer is tried
/// again next time.
async fn prune(store: &Store, retention: Retention) {
    let before = |kept: Duration| {
        crate::clock::now_ms() - i64::try_from(kept.as_millis()).unwrap_or(i64::MAX)
    };
    if let Err(err) = store.prune_events(before(retention.events)).await {
        tracing::warn!(error = %err, "pruning old events failed");
    }
    if let Err(err) = store.prune_audit(before(retention.audit)).await {
        tracing::warn!(error = %err, "pruning old audit rows failed");
    }
}

/// One look at what is due; a store that does not answer is tried again next time.
async fn check_once(store: &Store, executor: &Waker, owner: &str) {
    let now = now_ts();
    let mut started = 0;
    match expiry::expire_due(store, owner, now).await {
        Ok(tasks) => started += tasks.len(),
        Err(err) => tracing::warn!(error = %err, "expiry check failed"),
    }
    match schedules::run_due(store, owner, now).await {
        Ok(tasks) => started += tasks.len(),
        Err(err) => tracing::warn!(error = %err, "schedule check failed"),
    }
    if started > 0 {
        executor.wake();
    }
}
