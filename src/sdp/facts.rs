//! What an array never changes under a running Flex, asked once per process and shared by
//! every clone of the client: its system id, the retention policies by name, and the names of
//! its volume groups. Each of these sat on every clone's critical path, one SDP round trip
//! each, for an answer that was always the same.
//!
//! A policy or group that is not there is not remembered (it may be made later), and a volume
//! group the cache does not know makes the next lookup list them all again.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use tokio::sync::OnceCell;

use super::{RetentionPolicy, SdpClient, SdpError};

#[derive(Default)]
pub(super) struct ArrayFacts {
    system_id: OnceCell<String>,
    policies: Mutex<HashMap<String, RetentionPolicy>>,
    group_names: Mutex<HashMap<u64, String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SdpClient {
    /// The array's system id (`GET /system/state` once per process, when it first answers).
    pub async fn system_id(&self) -> Result<String, SdpError> {
        self.facts
            .system_id
            .get_or_try_init(|| async { Ok(self.system_state().await?.system_id) })
            .await
            .cloned()
    }

    /// Remembers the system id a probe of `GET /system/state` read.
    pub fn remember_system_id(&self, system_id: &str) {
        let _ = self.facts.system_id.set(system_id.to_owned());
    }

    /// A retention policy by name, remembered once found.
    pub async fn retention_policy(&self, name: &str) -> Result<Option<RetentionPolicy>, SdpError> {
        if let Some(policy) = lock(&self.facts.policies).get(name) {
            return Ok(Some(policy.clone()));
        }
        let found = self.find_retention_policy(name).await?;
        if let Some(policy) = &found {
            lock(&self.facts.policies).insert(name.to_owned(), policy.clone());
        }
        Ok(found)
    }

    /// The names of these volume groups; one listing when any of them is not known yet.
    pub async fn volume_group_names(&self, ids: &[u64]) -> Result<HashMap<u64, String>, SdpError> {
        let known = |names: &HashMap<u64, String>| {
            ids.iter()
                .filter_map(|id| names.get(id).map(|name| (*id, name.clone())))
                .collect::<HashMap<_, _>>()
        };
        {
            let names = lock(&self.facts.group_names);
            let found = known(&names);
            if found.len() == ids.len() {
                return Ok(found);
            }
        }
        let listed = self.list_volume_groups().await?;
        let mut names = lock(&self.facts.group_names);
        names.extend(listed.into_iter().map(|vg| (vg.id, vg.name)));
        Ok(known(&names))
    }
}
