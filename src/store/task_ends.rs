//! Who is told when a task ends: long-polls wait on this instead of asking the database every
//! tick. A task ending here is announced in-process at once; on Postgres its transaction also
//! sends a `NOTIFY`, which every replica's relay ([`Store::relay_task_ends`]) passes on to its
//! own waiters, so a task finished by one replica wakes the long-polls served by another.
//! A notification lost while a relay reconnects only delays an answer to the waiter's own
//! deadline, when it reads the task again. The same relay passes on new events (`events.rs`).

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::{sync::broadcast, task::JoinHandle};

use super::{Backend, Store};

/// The Postgres channel a task's end is announced on (payload: its request id).
pub(super) const CHANNEL: &str = "flex_task_ended";
/// Ends announced and not yet read by a slow waiter before it must re-read its task.
pub(super) const BACKLOG: usize = 4096;

pub(super) fn channel() -> broadcast::Sender<String> {
    broadcast::channel(BACKLOG).0
}

impl Store {
    /// The request ids of tasks as they end (completed, failed or aborted), from now on.
    pub fn task_ends(&self) -> broadcast::Receiver<String> {
        self.ended.subscribe()
    }

    pub(super) fn announce_end(&self, request_id: &str) {
        // Nobody waiting is not an error.
        let _ = self.ended.send(request_id.to_owned());
    }

    /// On Postgres, passes on the task ends and new events other replicas announce (and this
    /// one's, again: a waiter reads once more, which is harmless). `None` on SQLite, where one
    /// process has the database.
    pub fn relay_announcements(&self) -> Option<JoinHandle<()>> {
        let Backend::Postgres(pool) = &self.backend else {
            return None;
        };
        let (pool, ended, events) = (pool.clone(), self.ended.clone(), self.events.clone());
        Some(tokio::spawn(async move {
            loop {
                let listening = async {
                    let mut listener = PgListener::connect_with(&pool).await?;
                    listener
                        .listen_all([CHANNEL, super::events::CHANNEL])
                        .await?;
                    // Events written while no listener was up are in the log: read it again.
                    super::events::wake(&events);
                    loop {
                        let notification = listener.recv().await?;
                        if notification.channel() == CHANNEL {
                            let _ = ended.send(notification.payload().to_owned());
                        } else {
                            super::events::wake(&events);
                        }
                    }
                };
                let result: Result<(), sqlx::Error> = listening.await;
                if let Err(err) = result {
                    tracing::warn!(error = %err, "the relay of task ends and events lost its connection; reconnecting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }))
    }
}
