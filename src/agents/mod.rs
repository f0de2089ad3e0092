//! The agent hub: the live WebSocket of each host's agent, what the agents report, and the
//! commands Flex sends them.
//!
//! Commands go through the `agent_commands` outbox so that the replica waiting for a reply
//! and the replica holding the socket need not be the same, and a command outlives a restart:
//! [`AgentHub::call`] enqueues and waits; whichever replica holds the host's socket delivers
//! (at once when it is this one, else from its delivery loop); the first reply is stored and
//! wakes the waiter. A reconnecting agent is given every command still waiting for a reply.

mod connection;
mod ingest;
mod inventory;
pub mod protocol;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde_json::Value;
use tokio::sync::{Notify, mpsc, watch};

pub use connection::serve_socket;
use protocol::{Command, FlexMessage, Reply, commands::HostCommand};

use crate::{
    clock::{self, now_ms, now_ts},
    logging::escaped,
    store::{AgentCommandRecord, OutboxState, Store, StoreError},
};

/// How often a replica looks for commands other replicas enqueued for its agents, and a
/// waiter for replies another replica stored.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// A waiting call re-reads its command this often even without a wake-up (a safety net: the
/// delivery loop wakes waiters whose replies another replica stored).
const RECHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Outgoing messages queued per connection before senders wait.
const OUTBOX_DEPTH: usize = 16;

/// Messages for one socket, already serialized: small slots keep idle connections cheap.
type Outbox = mpsc::Sender<String>;

fn encode(message: &FlexMessage) -> String {
    serde_json::to_string(message).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No agent socket is open for the host: retry when it reconnects.
    #[error("the agent of host '{0}' is not connected")]
    NotConnected(String),
    /// No reply came before the deadline: the agent may be slow or away; retry.
    #[error("the agent of host '{host_id}' did not answer '{command}' in time")]
    TimedOut { host_id: String, command: String },
    /// The agent tried and failed, and says trying again may work.
    #[error("the agent failed '{command}' ({code}): {message}")]
    Failed {
        command: String,
        code: String,
        message: String,
    },
    /// The agent refused; repeating the command will not help.
    #[error("the agent refused '{command}' ({code}): {message}")]
    Refused {
        command: String,
        code: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AgentError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, AgentError::Refused { .. })
    }
}

/// A command as it goes into the outbox: a [`HostCommand`]'s name and arguments, or (for
/// tests of the protocol itself) any name and arguments.
#[derive(Clone, Debug)]
pub struct AgentCommand {
    /// Deterministic for (task, step, attempt kind); see [`protocol::Command`].
    pub id: String,
    pub name: String,
    pub args: Value,
    /// The `hs-ref-id` of the task, for the logs on both sides.
    pub ref_id: String,
}

impl AgentCommand {
    pub fn new<C: HostCommand>(id: &str, ref_id: &str, command: &C) -> AgentCommand {
        AgentCommand {
            id: id.to_owned(),
            name: C::NAME.as_str().to_owned(),
            args: serde_json::to_value(command).unwrap_or(Value::Null),
            ref_id: ref_id.to_owned(),
        }
    }
}

struct Connection {
    id: u64,
    sender: Outbox,
    close: Arc<Notify>,
}

struct HubInner {
    store: Store,
    /// Joins inventories to the array's volumes, when an SDP is configured.
    sdp: Option<crate::sdp::SdpClient>,
    instance_id: String,
    heartbeat: Duration,
    silence: Duration,
    connections: Mutex<HashMap<String, Connection>>,
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    next_connection: AtomicU64,
    stop: watch::Sender<bool>,
    /// Where each command's duration and outcome go (`/metrics`).
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// Cheap to clone; one per process.
#[derive(Clone)]
pub struct AgentHub {
    inner: Arc<HubInner>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AgentHub {
    /// A hub for this replica. `heartbeat` is how often it pings agents; after `silence`
    /// without a word an agent counts as gone.
    pub fn new(
        store: Store,
        instance_id: &str,
        heartbeat: Duration,
        silence: Duration,
    ) -> AgentHub {
        let (stop, _) = watch::channel(false);
        AgentHub {
            inner: Arc::new(HubInner {
                store,
                sdp: None,
                instance_id: instance_id.to_owned(),
                heartbeat,
                silence,
                connections: Mutex::new(HashMap::new()),
                waiters: Mutex::new(HashMap::new()),
                next_connection: AtomicU64::new(1),
                stop,
                metrics: None,
            }),
        }
    }

    /// The array to join inventories to. Call before the hub is shared.
    /// The same hub, recording every command in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> AgentHub {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.metrics = Some(metrics);
        }
        self
    }

    pub fn with_sdp(mut self, sdp: Option<crate::sdp::SdpClient>) -> AgentHub {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.sdp = sdp;
        }
        self
    }

    /// Stores a host's inventory, joined to the array's volumes when an SDP is configured (an
    /// unreachable array does not hold the inventory back; it is stored without the join).
    async fn store_inventory(
        &self,
        host_id: &str,
        mut records: Vec<crate::store::DatabaseRecord>,
    ) -> Result<usize, StoreError> {
        if let Some(sdp) = &self.inner.sdp {
            let host = self.inner.store.get_host(host_id).await?;
            let (name, iqn) = host.map(|h| (h.host_name, h.host_iqn)).unwrap_or_default();
            let joined_host = inventory::JoinedHost {
                name: if name.is_empty() { host_id } else { &name },
                iqn: &iqn,
            };
            let joined = match sdp.system_id().await {
                Ok(sdp_id) => {
                    inventory::join_to_sdp(sdp, &sdp_id, &joined_host, &mut records).await
                }
                Err(err) => Err(err),
            };
            match joined {
                Ok(facts) => {
                    self.inner
                        .store
                        .record_host_sdps(host_id, &facts.sdps)
                        .await?;
                }
                Err(err) => {
                    tracing::warn!(%host_id, error = %err, "inventory stored without its SDP join");
                }
            }
        }
        self.inner
            .store
            .replace_databases(host_id, &records)
            .await?;
        Ok(records.len())
    }

    /// Forgets sockets this replica held before a restart, and starts delivering commands
    /// that other replicas enqueue for agents connected here.
    pub async fn start(&self) -> Result<(), StoreError> {
        let forgotten = self
            .inner
            .store
            .forget_agent_connections(&self.inner.instance_id)
            .await?;
        if forgotten > 0 {
            tracing::info!(forgotten, "cleared agent connections held before a restart");
        }
        let hub = self.clone();
        let mut stop = self.inner.stop.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                if let Err(err) = hub.deliver_enqueued().await {
                    tracing::warn!(error = %err, "agent command delivery failed");
                }
                if let Err(err) = hub.wake_settled_waiters().await {
                    tracing::warn!(error = %err, "cannot check for replies");
                }
            }
        });
        Ok(())
    }

    /// Wakes the calls whose replies landed on another replica (those that landed here woke
    /// their caller already): one query for all waiting calls, not one poll per call.
    async fn wake_settled_waiters(&self) -> Result<(), StoreError> {
        let waiting: Vec<String> = lock(&self.inner.waiters).keys().cloned().collect();
        if waiting.is_empty() {
            return Ok(());
        }
        for id in self.inner.store.settled_agent_commands(&waiting).await? {
            if let Some(waiter) = lock(&self.inner.waiters).get(&id) {
                waiter.notify_one();
            }
        }
        Ok(())
    }

    /// Closes every socket and stops the delivery loop (server shutdown).
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let hosts: Vec<(String, Arc<Notify>)> = lock(&self.inner.connections)
            .iter()
            .map(|(host, conn)| (host.clone(), conn.close.clone()))
            .collect();
        for (host_id, close) in hosts {
            close.notify_one();
            let _ = self
                .inner
                .store
                .record_agent_disconnect(&host_id, &self.inner.instance_id)
                .await;
        }
    }

    pub fn heartbeat(&self) -> Duration {
        self.inner.heartbeat
    }

    pub fn silence(&self) -> Duration {
        self.inner.silence
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// Number of agent sockets this replica holds.
    pub fn connected_here(&self) -> usize {
        lock(&self.inner.connections).len()
    }

    /// Registers a new socket for a host, closing the one it replaces. Returns its id.
    fn register(&self, host_id: &str, sender: Outbox, close: Arc<Notify>) -> u64 {
        let id = self.inner.next_connection.fetch_add(1, Ordering::Relaxed);
        let previous = lock(&self.inner.connections)
            .insert(host_id.to_owned(), Connection { id, sender, close });
        if let Some(previous) = previous {
            tracing::info!(%host_id, "a newer agent connection replaces the older one");
            previous.close.notify_one();
        }
        id
    }

    /// Forgets a socket; true when it was the host's current one (not already replaced).
    fn unregister(&self, host_id: &str, connection: u64) -> bool {
        let mut connections = lock(&self.inner.connections);
        if connections.get(host_id).is_some_and(|c| c.id == connection) {
            connections.remove(host_id);
            true
        } else {
            false
        }
    }

    /// Closes the host's socket on this replica (the host was unregistered). Other replicas
    /// notice on their next liveness check, when the revoked token no longer matches.
    pub fn disconnect(&self, host_id: &str) {
        if let Some(connection) = lock(&self.inner.connections).remove(host_id) {
            connection.close.notify_one();
        }
    }

    fn local_sender(&self, host_id: &str) -> Option<Outbox> {
        lock(&self.inner.connections)
            .get(host_id)
            .map(|c| c.sender.clone())
    }

    fn wire_command(record: &AgentCommandRecord) -> String {
        encode(&FlexMessage::Command(Command {
            id: record.id.clone(),
            name: record.name.clone(),
            args: serde_json::from_str(&record.args).unwrap_or(Value::Null),
            deadline_ms: record.deadline_ms,
            ref_id: record.ref_id.clone(),
        }))
    }

    /// Sends a pending command if this replica holds the host's socket and nobody sent it yet.
    async fn deliver_if_local(&self, record: &AgentCommandRecord) -> Result<(), StoreError> {
        let Some(sender) = self.local_sender(&record.host_id) else {
            return Ok(());
        };
        if self.inner.store.claim_agent_command(&record.id).await? {
            tracing::debug!(ref_id = %record.ref_id, command = %record.name, id = %record.id, "delivering agent command");
            // A closed socket keeps the command for the reconnect.
            let _ = sender.send(Self::wire_command(record)).await;
        }
        Ok(())
    }

    async fn deliver_enqueued(&self) -> Result<(), StoreError> {
        if lock(&self.inner.connections).is_empty() {
            return Ok(());
        }
        let pending = self
            .inner
            .store
            .undelivered_commands_for(&self.inner.instance_id, now_ms())
            .await?;
        for record in pending {
            self.deliver_if_local(&record).await?;
        }
        Ok(())
    }

    /// Gives a (re)connected agent every command still waiting for its reply.
    async fn redeliver_unanswered(
        &self,
        host_id: &str,
        sender: &Outbox,
    ) -> Result<usize, StoreError> {
        let open = self
            .inner
            .store
            .unanswered_commands_of(host_id, now_ms())
            .await?;
        for record in &open {
            self.inner
                .store
                .count_agent_command_redelivery(&record.id)
                .await?;
            let _ = sender.send(Self::wire_command(record)).await;
        }
        Ok(open.len())
    }

    /// Stores a reply and wakes whoever waits for it on this replica.
    async fn accept_reply(&self, host_id: &str, reply: &Reply) -> Result<(), StoreError> {
        let Some(command) = self.inner.store.get_agent_command(&reply.id).await? else {
            tracing::warn!(%host_id, id = %escaped(&reply.id), "reply to an unknown command");
            return Ok(());
        };
        if command.host_id != host_id {
            tracing::warn!(%host_id, id = %escaped(&reply.id), "reply to another host's command ignored");
            return Ok(());
        }
        let json = serde_json::to_string(reply).unwrap_or_default();
        if !self
            .inner
            .store
            .store_agent_reply(&reply.id, &json, now_ms())
            .await?
        {
            tracing::debug!(id = %escaped(&reply.id), "repeated reply ignored");
        }
        if let Some(waiter) = lock(&self.inner.waiters).get(&reply.id) {
            waiter.notify_one();
        }
        Ok(())
    }

    /// Sends a typed command to the host's agent (`id` deterministic for the caller's step)
    /// and waits until `deadline` for its typed reply.
    pub async fn send<C: HostCommand>(
        &self,
        host_id: &str,
        id: &str,
        ref_id: &str,
        command: C,
        deadline: Duration,
    ) -> Result<C::Reply, AgentError> {
        let result = self
            .call(host_id, AgentCommand::new(id, ref_id, &command), deadline)
            .await?;
        serde_json::from_value(result).map_err(|err| AgentError::Refused {
            command: C::NAME.to_string(),
            code: "BAD_REPLY".into(),
            message: format!("the reply does not match the protocol: {err}"),
        })
    }

    /// Sends `command` to the host's agent and waits until `deadline` for its reply's result;
    /// timed for `/metrics`.
    pub async fn call(
        &self,
        host_id: &str,
        command: AgentCommand,
        deadline: Duration,
    ) -> Result<Value, AgentError> {
        let started = std::time::Instant::now();
        let name = command.name.clone();
        let answer = self.exchange(host_id, command, deadline).await;
        if let Some(metrics) = &self.inner.metrics {
            let outcome = match &answer {
                Ok(_) => "ok",
                Err(AgentError::NotConnected(_)) => "not_connected",
                Err(AgentError::TimedOut { .. }) => "timed_out",
                Err(AgentError::Failed { .. }) => "failed",
                Err(AgentError::Refused { .. }) => "refused",
                Err(AgentError::Store(_)) => "store_error",
            };
            metrics.agent_command(&name, outcome, started.elapsed().as_secs_f64());
        }
        answer
    }

    async fn exchange(
        &self,
        host_id: &str,
        command: AgentCommand,
        deadline: Duration,
    ) -> Result<Value, AgentError> {
        let host = self.inner.store.get_host(host_id).await?;
        let connected = host
            .as_ref()
            .is_some_and(|h| h.is_connected(self.inner.silence, now_ts()));
        let created_ms = now_ms();
        let deadline_ms = created_ms + clock::millis(deadline);
        let record = AgentCommandRecord {
            id: command.id.clone(),
            host_id: host_id.to_owned(),
            name: command.name.clone(),
            args: command.args.to_string(),
            ref_id: command.ref_id.clone(),
            state: OutboxState::Pending,
            reply: None,
            created_ms,
            deadline_ms,
            delivered_count: 0,
            replied_ms: None,
        };
        // A command already answered (a retried step) is not sent again.
        if let Some(existing) = self.inner.store.get_agent_command(&command.id).await?
            && let Some(reply) = existing.reply.as_deref()
        {
            return Self::interpret(&command.name, reply);
        }
        if !connected {
            return Err(AgentError::NotConnected(host_id.to_owned()));
        }
        let stored = self.inner.store.enqueue_agent_command(&record).await?;
        let waiter = Arc::new(Notify::new());
        lock(&self.inner.waiters).insert(command.id.clone(), waiter.clone());
        let outcome = self.wait_for_reply(&stored, waiter).await;
        lock(&self.inner.waiters).remove(&command.id);
        outcome
    }

    async fn wait_for_reply(
        &self,
        stored: &AgentCommandRecord,
        waiter: Arc<Notify>,
    ) -> Result<Value, AgentError> {
        self.deliver_if_local(stored).await?;
        loop {
            let current = self.inner.store.get_agent_command(&stored.id).await?;
            if let Some(reply) = current.as_ref().and_then(|c| c.reply.as_deref()) {
                return Self::interpret(&stored.name, reply);
            }
            let remaining = stored.deadline_ms - now_ms();
            if remaining <= 0 {
                let already_expired = current
                    .as_ref()
                    .is_some_and(|c| c.state == OutboxState::Expired);
                if already_expired || self.inner.store.expire_agent_command(&stored.id).await? {
                    return Err(AgentError::TimedOut {
                        host_id: stored.host_id.clone(),
                        command: stored.name.clone(),
                    });
                }
                // The reply landed just before the deadline: read it on the next turn.
                continue;
            }
            let wait = RECHECK_INTERVAL.min(Duration::from_millis(remaining.unsigned_abs()));
            let _ = crate::timing::waiting(tokio::time::timeout(wait, waiter.notified())).await;
        }
    }

    fn interpret(command: &str, reply: &str) -> Result<Value, AgentError> {
        let reply: Reply = serde_json::from_str(reply).map_err(|err| AgentError::Failed {
            command: command.to_owned(),
            code: "BAD_REPLY".into(),
            message: err.to_string(),
        })?;
        if reply.ok {
            return Ok(reply.result);
        }
        let failure = reply.error.unwrap_or(protocol::Failure {
            code: "UNKNOWN".into(),
            message: "the agent reported a failure without details".into(),
            retryable: false,
        });
        if failure.retryable {
            Err(AgentError::Failed {
                command: command.to_owned(),
                code: failure.code,
                message: failure.message,
            })
        } else {
            Err(AgentError::Refused {
                command: command.to_owned(),
                code: failure.code,
                message: failure.message,
            })
        }
    }
}
