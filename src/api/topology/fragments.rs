//! The databases half of the topology, rendered to bytes once and kept until the store's
//! topology generation moves: a thousand-host estate is twenty megabytes of JSON, and
//! rendering it on every request cost ten times what sending it does.
//!
//! Hosts are not kept: their rows are read on every request, because an agent's
//! `last_seen_ts` moves every few seconds and whether it is connected moves with the clock.
//! Each database is kept as the bytes before and after its two fields that depend on the
//! latter (`db_snapshot_allowed`, `db_snapshot_disallowed_reason`); a host's whole array is
//! put together from them the first time a request needs it connected (or not), and kept.

use std::{
    collections::HashMap,
    ops::Range,
    sync::{Arc, OnceLock, RwLock},
};

use axum::body::Bytes;

use super::views::{EchoFacts, append_json, disallowed_reason, made_from};
use crate::{
    api::error::ApiError,
    store::{DatabaseRecord, DbSnapshotRecord, EchoDbRecord, Store},
};

/// Rendered databases, by host.
pub struct Fragments {
    bytes: Vec<u8>,
    by_host: HashMap<String, HostDatabases>,
}

#[derive(Default)]
struct HostDatabases {
    databases: Vec<DatabaseFragment>,
    /// The `databases` array, put together: with the agent not connected, and connected.
    arrays: [OnceLock<Bytes>; 2],
}

struct DatabaseFragment {
    /// `{"id":…,"db_snapshots":[…]`: the fields before the two of the moment.
    head: Range<usize>,
    /// `"parent":…}`: the fields after them.
    tail: Range<usize>,
    /// Whether a snapshot can be taken while the host's agent is connected.
    allowed_if_connected: bool,
    /// Why not, as a JSON string (usually `""`).
    reason_if_connected: String,
}

impl Fragments {
    /// Renders `databases` (detached echo DBs included), joined to `snapshots` and `echo_dbs`.
    pub fn render(
        databases: &[DatabaseRecord],
        snapshots: &[DbSnapshotRecord],
        echo_dbs: &[EchoDbRecord],
    ) -> Result<Fragments, ApiError> {
        let made_from = made_from(echo_dbs);
        let echo = EchoFacts::new(snapshots, echo_dbs, &made_from);
        let mut bytes = Vec::new();
        let mut by_host: HashMap<String, HostDatabases> = HashMap::new();
        for db in databases {
            let (head, tail) = echo.database(db);
            let start = bytes.len();
            append_json(&mut bytes, &head)?;
            // Without its closing brace: the fields of the moment follow.
            let head = start..bytes.len() - 1;
            let start = bytes.len();
            append_json(&mut bytes, &tail)?;
            // Without its opening brace (`parent` is always there, so it is never `{}`).
            let tail = start + 1..bytes.len();
            let reason = disallowed_reason(&db.host_id, true, &db.name, &db.status);
            by_host
                .entry(db.host_id.clone())
                .or_default()
                .databases
                .push(DatabaseFragment {
                    head,
                    tail,
                    allowed_if_connected: reason.is_empty(),
                    reason_if_connected: json_string(&reason),
                });
        }
        Ok(Fragments { bytes, by_host })
    }

    /// The `databases` array of `host_id`, as it stands with its agent `connected` or not.
    pub fn databases(&self, host_id: &str, connected: bool) -> Bytes {
        let Some(host) = self.by_host.get(host_id) else {
            return Bytes::from_static(b"[]");
        };
        host.arrays[usize::from(connected)]
            .get_or_init(|| Bytes::from(self.put_together(host_id, &host.databases, connected)))
            .clone()
    }

    fn put_together(
        &self,
        host_id: &str,
        databases: &[DatabaseFragment],
        connected: bool,
    ) -> Vec<u8> {
        let size: usize = databases
            .iter()
            .map(|db| db.head.len() + db.tail.len() + 128)
            .sum();
        let mut out = Vec::with_capacity(size + 2);
        out.push(b'[');
        let not_connected =
            (!connected).then(|| json_string(&disallowed_reason(host_id, false, "", "")));
        for (i, db) in databases.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&self.bytes[db.head.clone()]);
            let (allowed, reason) = match &not_connected {
                Some(reason) => (false, reason),
                None => (db.allowed_if_connected, &db.reason_if_connected),
            };
            out.extend_from_slice(b",\"db_snapshot_allowed\":");
            out.extend_from_slice(if allowed { b"true" } else { b"false" });
            out.extend_from_slice(b",\"db_snapshot_disallowed_reason\":");
            out.extend_from_slice(reason.as_bytes());
            out.push(b',');
            out.extend_from_slice(&self.bytes[db.tail.clone()]);
        }
        out.push(b']');
        out
    }
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The estate's fragments with the generation they were rendered after.
struct Rendered {
    generation: i64,
    fragments: Arc<Fragments>,
}

/// The last estate rendered, shared by every request of this replica.
#[derive(Default)]
pub struct TopologyCache {
    last: RwLock<Option<Rendered>>,
    /// One render at a time: requests that find the estate changed wait for it, not redo it.
    rendering: tokio::sync::Mutex<()>,
}

impl TopologyCache {
    /// The estate's fragments, holding every change committed before the call.
    pub async fn estate(&self, store: &Store) -> Result<Arc<Fragments>, ApiError> {
        let generation = store.topology_generation().await?;
        if let Some(fragments) = self.at_least(generation) {
            return Ok(fragments);
        }
        let _rendering = self.rendering.lock().await;
        if let Some(fragments) = self.at_least(generation) {
            return Ok(fragments);
        }
        // Read the counter again: whatever committed while this request waited is in the
        // rows read below, and the render is labelled with the newest generation it holds.
        let generation = store.topology_generation().await?;
        let echo_dbs = store.list_echo_dbs().await?;
        let databases = super::with_detached(store.list_all_databases().await?, &echo_dbs);
        let snapshots = store.list_db_snapshots().await?;
        let fragments = Arc::new(Fragments::render(&databases, &snapshots, &echo_dbs)?);
        let mut last = self
            .last
            .write()
            .expect("the topology cache is never poisoned");
        if last
            .as_ref()
            .is_none_or(|kept| kept.generation < generation)
        {
            *last = Some(Rendered {
                generation,
                fragments: fragments.clone(),
            });
        }
        Ok(fragments)
    }

    /// The estate's fragments if they hold every change committed before the call, without
    /// rendering them.
    pub async fn current(&self, store: &Store) -> Result<Option<Arc<Fragments>>, ApiError> {
        let generation = store.topology_generation().await?;
        Ok(self.at_least(generation))
    }

    fn at_least(&self, generation: i64) -> Option<Arc<Fragments>> {
        let last = self
            .last
            .read()
            .expect("the topology cache is never poisoned");
        last.as_ref()
            .filter(|kept| kept.generation >= generation)
            .map(|kept| kept.fragments.clone())
    }
}
