//! Tokens this replica read lately, so that an API request costs one query (its own), not two
//! (its token, then its own). An entry is trusted for one second: the longest a token revoked
//! on another replica may still be honoured here. Every token write on this replica empties the
//! cache after it commits, so the replica that revoked a token refuses it at once.
//!
//! A read that began before such a write is not cached: each entry carries the generation it
//! was read in, and only the current generation's entries are served.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::TokenRecord;

/// How long a token read may be served from memory.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// Entries kept at most; past it, stale ones go, and if none are stale, all.
const MOST: usize = 10_000;

#[derive(Debug, Default)]
pub(super) struct TokenCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<String, Seen>>,
}

#[derive(Debug)]
struct Seen {
    record: TokenRecord,
    read_at: Instant,
    generation: u64,
}

impl TokenCache {
    /// To be taken before reading a token from the database, and given to [`Self::keep`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub fn get(&self, id: &str) -> Option<TokenRecord> {
        let generation = self.generation();
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(id)
            .filter(|seen| seen.generation == generation && seen.read_at.elapsed() < FRESH_FOR)
            .map(|seen| seen.record.clone())
    }

    /// Keeps what was read in `generation`, unless a token write came since.
    pub fn keep(&self, id: &str, record: &TokenRecord, generation: u64) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if generation != self.generation() {
            return;
        }
        if entries.len() >= MOST {
            entries.retain(|_, seen| seen.read_at.elapsed() < FRESH_FOR);
            if entries.len() >= MOST {
                entries.clear();
            }
        }
        entries.insert(
            id.to_owned(),
            Seen {
                record: record.clone(),
                read_at: Instant::now(),
                generation,
            },
        );
    }

    /// After any token write has committed: nothing read before it is served again.
    pub fn forget_all(&self) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }
}
