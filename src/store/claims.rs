//! Claims on objects that several tasks share, by the running tasks that use them or take them
//! away: the SDP host object a Flex host is mapped through (imports map to it, deletes remove
//! it) and a db snapshot (imports clone from its VG snapshots, a snapshot delete removes
//! them). The two kinds exclude each other across tasks and replicas: each claim is checked
//! and written in one transaction, serialized per object (SQLite has one writer; Postgres
//! takes an advisory lock on the object). Claims end with their task.

use super::{Backend, Store, StoreResult, in_write_tx, on_reader};
use crate::clock::now_ms;

crate::wire_enum! {
    /// What a task does with a shared object.
    pub enum Claim ("claim") {
        /// It relies on it (maps to it, clones from it) until it ends.
        Use = "use",
        /// It removes it.
        Release = "release",
    }
}

impl Claim {
    fn excluded_by(self) -> Claim {
        match self {
            Claim::Use => Claim::Release,
            Claim::Release => Claim::Use,
        }
    }
}

/// A shared object tasks claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shared<'a> {
    /// The SDP host object (and initiator) of this Flex host.
    SdpHostOf(&'a str),
    /// This db snapshot, with its VG snapshots.
    DbSnapshot(&'a str),
}

impl Shared<'_> {
    fn key(self) -> String {
        match self {
            Shared::SdpHostOf(host_id) => format!("sdp_host:{host_id}"),
            Shared::DbSnapshot(id) => format!("db_snapshot:{id}"),
        }
    }
}

impl Store {
    /// Claims `object` for `task_id`. Refused while another running task holds the other kind
    /// of claim on it: `Err` names that task. Claiming again what the task holds is a no-op.
    pub async fn claim(
        &self,
        object: Shared<'_>,
        task_id: &str,
        claim: Claim,
    ) -> StoreResult<Result<(), String>> {
        let postgres = matches!(self.backend, Backend::Postgres(_));
        let resource = object.key();
        let now = now_ms();
        in_write_tx!(self, |tx| {
            if postgres {
                // Two claims on one object must not both see the other absent.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(&resource)
                    .execute(&mut *tx)
                    .await?;
            }
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT c.task_id FROM resource_claims c \
                 JOIN tasks t ON t.request_id = c.task_id \
                 WHERE c.resource = $1 AND c.kind = $2 AND c.task_id <> $3 \
                   AND t.state = 'running' \
                 ORDER BY c.created_ms LIMIT 1",
            )
            .bind(&resource)
            .bind(claim.excluded_by().as_str())
            .bind(task_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(holder) = holder {
                return Ok(Err(holder));
            }
            sqlx::query(
                "INSERT INTO resource_claims (resource, task_id, kind, created_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&resource)
            .bind(task_id)
            .bind(claim.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(Ok(()))
        })
    }

    /// The running tasks holding a `claim` on `object`, oldest first (for callers outside a
    /// task, such as the seed path's synchronous snapshot delete).
    pub async fn claimants(&self, object: Shared<'_>, claim: Claim) -> StoreResult<Vec<String>> {
        let resource = object.key();
        Ok(on_reader!(self, |pool| {
            sqlx::query_scalar(
                "SELECT c.task_id FROM resource_claims c \
                 JOIN tasks t ON t.request_id = c.task_id \
                 WHERE c.resource = $1 AND c.kind = $2 AND t.state = 'running' \
                 ORDER BY c.created_ms",
            )
            .bind(&resource)
            .bind(claim.as_str())
            .fetch_all(pool)
            .await?
        }))
    }
}
