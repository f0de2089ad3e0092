//! Taking in what an agent sends that takes time: its inventory, joined to the array (SDP
//! round trips) before it is stored, and the replies sent after it.
//!
//! The join runs beside the socket, not on it: the connection keeps reading, pinging and
//! sending commands while the array answers. A reply that arrives while an inventory is being
//! taken in waits for it, so that a command seen answered (an attach) always finds the
//! inventory the host sent before answering (the database it attached) already stored. An
//! inventory is the host's whole state, so when several queue up only the newest is joined:
//! fifty attaches on one host cost about one join each batch, not fifty in a row.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{AgentHub, Outbox, protocol::Reply};
use crate::store::DatabaseRecord;

/// What waits to be taken in on one connection.
#[derive(Default)]
struct Queue {
    /// The newest inventory not stored yet.
    inventory: Option<Vec<DatabaseRecord>>,
    /// Replies that arrived while an inventory was pending, in arrival order.
    replies: Vec<Reply>,
    /// A task is taking in what is queued.
    running: bool,
}

/// One connection's intake; cheap while idle (no task runs until an inventory arrives).
pub(super) struct Ingest {
    hub: AgentHub,
    host_id: Arc<str>,
    /// Where a message that could not be stored is answered ("send it again").
    errors: Outbox,
    queue: Arc<Mutex<Queue>>,
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Ingest {
    pub(super) fn new(hub: AgentHub, host_id: &str, errors: Outbox) -> Ingest {
        Ingest {
            hub,
            host_id: host_id.into(),
            errors,
            queue: Arc::default(),
        }
    }

    /// Queues an inventory (replacing one that was not taken in yet) and starts taking it in.
    pub(super) fn inventory(&self, records: Vec<DatabaseRecord>) {
        let mut queue = lock(&self.queue);
        queue.inventory = Some(records);
        if !queue.running {
            queue.running = true;
            tokio::spawn(drain(
                self.hub.clone(),
                self.host_id.clone(),
                self.errors.clone(),
                self.queue.clone(),
            ));
        }
    }

    /// Stores a reply now, or after the inventory being taken in. `Err`: it could not be
    /// stored (the agent is told to send it again).
    pub(super) async fn reply(&self, reply: Reply) -> Result<(), crate::store::StoreError> {
        {
            let mut queue = lock(&self.queue);
            if queue.running {
                queue.replies.push(reply);
                return Ok(());
            }
        }
        self.hub.accept_reply(&self.host_id, &reply).await
    }
}

/// Takes in what is queued until nothing is: the newest inventory first, then the replies
/// that waited for it.
async fn drain(hub: AgentHub, host_id: Arc<str>, errors: Outbox, queue: Arc<Mutex<Queue>>) {
    loop {
        let (inventory, replies) = {
            let mut queue = lock(&queue);
            if queue.inventory.is_none() && queue.replies.is_empty() {
                queue.running = false;
                return;
            }
            (queue.inventory.take(), std::mem::take(&mut queue.replies))
        };
        if let Some(records) = inventory {
            match hub.store_inventory(&host_id, records).await {
                Ok(count) => tracing::info!(%host_id, databases = count, "inventory replaced"),
                Err(err) => not_stored(&errors, &host_id, &err).await,
            }
        }
        for reply in replies {
            if let Err(err) = hub.accept_reply(&host_id, &reply).await {
                not_stored(&errors, &host_id, &err).await;
            }
        }
    }
}

async fn not_stored(errors: &Outbox, host_id: &str, err: &crate::store::StoreError) {
    tracing::warn!(%host_id, error = %err, "agent message not stored");
    let _ = errors.send(super::connection::unavailable()).await;
}
