//! Task lists rendered to bytes and kept until the store's task-list generation moves: a
//! pipeline polling the list of a thousand tasks asked for a thousand rows, and their
//! rendering, on every call, while the tasks had not changed since the last one.
//!
//! A request reads the generation first, so a kept list is used only if it was rendered at
//! that generation or later: every change committed before the request (by this replica or
//! another) is in what it gets. The generation counts only what a task's view shows, so the
//! executor claiming and renewing leases leaves the lists kept.

use std::sync::Mutex;

use axum::body::Bytes;

use crate::model::{CommandType, TaskState};

/// The most lists kept at once: one per distinct query, the least recently used going first.
const MAX_KEPT: usize = 16;
/// The most bytes kept in all; a list longer than this is rendered on every call.
const MAX_KEPT_BYTES: usize = 64 << 20;

/// What a list answers: its filter and, for a page, its size and cursor.
#[derive(Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub state: Option<TaskState>,
    pub command_type: Option<CommandType>,
    pub ref_id: Option<String>,
    /// `(limit, before)` for a page; `None` for the whole list.
    pub page: Option<(usize, Option<String>)>,
}

struct KeptList {
    query: ListQuery,
    generation: i64,
    body: Bytes,
    last_used: u64,
}

/// The lists this replica rendered last, shared by its requests.
#[derive(Default)]
pub struct TaskListCache {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    lists: Vec<KeptList>,
    /// Counts uses, to tell which list was used least recently.
    clock: u64,
}

impl Kept {
    fn bytes(&self) -> usize {
        self.lists.iter().map(|list| list.body.len()).sum()
    }
}

impl TaskListCache {
    /// The body kept for `query`, if it was rendered at `generation` or later.
    pub fn get(&self, query: &ListQuery, generation: i64) -> Option<Bytes> {
        let mut kept = self
            .kept
            .lock()
            .expect("the task list cache is never poisoned");
        kept.clock += 1;
        let now = kept.clock;
        let list = kept
            .lists
            .iter_mut()
            .find(|list| list.query == *query && list.generation >= generation)?;
        list.last_used = now;
        Some(list.body.clone())
    }

    /// Keeps `body`, rendered from rows read after the generation read `generation`, unless a
    /// newer render of the same query is kept already.
    pub fn keep(&self, query: ListQuery, generation: i64, body: Bytes) {
        if body.len() > MAX_KEPT_BYTES {
            return;
        }
        let mut kept = self
            .kept
            .lock()
            .expect("the task list cache is never poisoned");
        kept.clock += 1;
        let now = kept.clock;
        if let Some(list) = kept.lists.iter_mut().find(|list| list.query == query) {
            if list.generation < generation {
                list.generation = generation;
                list.body = body;
            }
            list.last_used = now;
        } else {
            kept.lists.push(KeptList {
                query,
                generation,
                body,
                last_used: now,
            });
        }
        while kept.lists.len() > MAX_KEPT || kept.bytes() > MAX_KEPT_BYTES {
            let Some(oldest) = (0..kept.lists.len()).min_by_key(|&i| kept.lists[i].last_used)
            else {
                break;
            };
            kept.lists.swap_remove(oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(ref_id: &str) -> ListQuery {
        ListQuery {
            state: None,
            command_type: None,
            ref_id: Some(ref_id.to_owned()),
            page: None,
        }
    }

    #[test]
    fn a_kept_list_serves_its_generation_and_older_reads_only() {
        let cache = TaskListCache::default();
        cache.keep(query("a"), 5, Bytes::from_static(b"[1]"));
        assert_eq!(cache.get(&query("a"), 5).as_deref(), Some(&b"[1]"[..]));
        assert_eq!(cache.get(&query("a"), 4).as_deref(), Some(&b"[1]"[..]));
        assert!(
            cache.get(&query("a"), 6).is_none(),
            "a newer change was missed"
        );
        assert!(
            cache.get(&query("b"), 5).is_none(),
            "another query's list was served"
        );
        // An older render arriving late does not replace the newer one.
        cache.keep(query("a"), 3, Bytes::from_static(b"[0]"));
        assert_eq!(cache.get(&query("a"), 5).as_deref(), Some(&b"[1]"[..]));
    }

    #[test]
    fn the_least_recently_used_list_goes_first() {
        let cache = TaskListCache::default();
        for n in 0..MAX_KEPT {
            cache.keep(query(&n.to_string()), 1, Bytes::from_static(b"[]"));
        }
        assert!(cache.get(&query("0"), 1).is_some());
        cache.keep(query("new"), 1, Bytes::from_static(b"[]"));
        assert!(
            cache.get(&query("0"), 1).is_some(),
            "the list just used went"
        );
        assert!(
            cache.get(&query("1"), 1).is_none(),
            "the least recently used stayed"
        );
        assert!(cache.get(&query("new"), 1).is_some());
    }
}
