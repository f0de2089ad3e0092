//! The SDP ledger: every object Flex creates on an SDP, from creation until it is deleted,
//! and the intents recorded before creating objects named after a host rather than a task.
//! The ledger is how Flex proves that nothing it made is orphaned.

use super::{Store, StoreError, StoreResult, corrupt, in_write_tx, on_reader};
use crate::{clock::now_ms, model::LedgerKind};

#[derive(Clone, Debug, PartialEq)]
pub struct LedgerEntry {
    pub kind: LedgerKind,
    pub sdp_id: u64,
    pub name: String,
    pub task_id: String,
    pub created_ms: i64,
    pub deleted_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct LedgerRow {
    kind: String,
    sdp_id: i64,
    name: String,
    task_id: String,
    created_ms: i64,
    deleted_ms: Option<i64>,
}

impl TryFrom<LedgerRow> for LedgerEntry {
    type Error = StoreError;

    fn try_from(row: LedgerRow) -> StoreResult<LedgerEntry> {
        let key = format!("{}/{}", row.kind, row.sdp_id);
        Ok(LedgerEntry {
            kind: row
                .kind
                .parse()
                .map_err(|e: crate::model::UnknownValue| corrupt("sdp_ledger", &key, e))?,
            sdp_id: u64::try_from(row.sdp_id)
                .map_err(|_| corrupt("sdp_ledger", &key, "negative SDP id"))?,
            name: row.name,
            task_id: row.task_id,
            created_ms: row.created_ms,
            deleted_ms: row.deleted_ms,
        })
    }
}

/// SDP ids are unsigned; the databases store signed 64-bit integers (ids stay far below 2^63).
fn sql_id(sdp_id: u64) -> i64 {
    i64::try_from(sdp_id).unwrap_or(i64::MAX)
}

impl Store {
    /// How many objects the ledger holds (made, not yet deleted), by kind; and how many tasks
    /// are running: the levels `/metrics` shows.
    pub async fn metric_levels(&self) -> StoreResult<(Vec<(String, i64)>, i64)> {
        let (kinds, running): (Vec<(String, i64)>, i64) = on_reader!(self, |pool| {
            let kinds = sqlx::query_as(
                "SELECT kind, COUNT(*) FROM sdp_ledger WHERE deleted_ms IS NULL GROUP BY kind",
            )
            .fetch_all(pool)
            .await?;
            let running = sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE state = 'running'")
                .fetch_one(pool)
                .await?;
            (kinds, running)
        });
        // Every kind appears, at 0 when none is held, so a dashboard's series never vanish.
        let levels = LedgerKind::ALL
            .iter()
            .map(|kind| {
                let held = kinds
                    .iter()
                    .find(|(name, _)| name == kind.as_str())
                    .map_or(0, |(_, count)| *count);
                (kind.as_str().to_owned(), held)
            })
            .collect();
        Ok((levels, running))
    }

    /// Notes an object Flex created on the SDP (idempotent).
    pub async fn ledger_created(
        &self,
        kind: LedgerKind,
        sdp_id: u64,
        name: &str,
        task_id: &str,
    ) -> StoreResult<()> {
        let now = now_ms();
        in_write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO sdp_ledger (kind, sdp_id, name, task_id, created_ms, deleted_ms) \
                 VALUES ($1, $2, $3, $4, $5, NULL) \
                 ON CONFLICT (kind, sdp_id) DO UPDATE SET deleted_ms = NULL",
            )
            .bind(kind.as_str())
            .bind(sql_id(sdp_id))
            .bind(name)
            .bind(task_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM sdp_intents WHERE kind = $1 AND name = $2 AND task_id = $3")
                .bind(kind.as_str())
                .bind(name)
                .bind(task_id)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    /// Records that the task is about to create an object of that kind and name (see the
    /// `sdp_intents` migration for why).
    pub async fn ledger_intend(
        &self,
        kind: LedgerKind,
        name: &str,
        task_id: &str,
    ) -> StoreResult<()> {
        let now = now_ms();
        in_write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO sdp_intents (kind, name, task_id, created_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kind, name, task_id) DO NOTHING",
            )
            .bind(kind.as_str())
            .bind(name)
            .bind(task_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    /// Whether an object found on the SDP is Flex's: already in the ledger, or made by this
    /// task's own create whose answer was lost (then it is recorded now). False means an
    /// operator's object, which Flex uses but never deletes.
    pub async fn ledger_adopt(
        &self,
        kind: LedgerKind,
        sdp_id: u64,
        name: &str,
        task_id: &str,
    ) -> StoreResult<bool> {
        if self.ledger_is_ours(kind, sdp_id).await? {
            return Ok(true);
        }
        let intended: Option<String> = on_reader!(self, |pool| {
            sqlx::query_scalar(
                "SELECT name FROM sdp_intents WHERE kind = $1 AND name = $2 AND task_id = $3",
            )
            .bind(kind.as_str())
            .bind(name)
            .bind(task_id)
            .fetch_optional(pool)
            .await?
        });
        if intended.is_none() {
            return Ok(false);
        }
        self.ledger_created(kind, sdp_id, name, task_id).await?;
        Ok(true)
    }

    /// The ledger's line for an object, deleted or not.
    pub async fn ledger_entry(
        &self,
        kind: LedgerKind,
        sdp_id: u64,
    ) -> StoreResult<Option<LedgerEntry>> {
        let row: Option<LedgerRow> = on_reader!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, sdp_id, name, task_id, created_ms, deleted_ms FROM sdp_ledger \
                 WHERE kind = $1 AND sdp_id = $2",
            )
            .bind(kind.as_str())
            .bind(sql_id(sdp_id))
            .fetch_optional(pool)
            .await?
        });
        row.map(LedgerEntry::try_from).transpose()
    }

    /// Live objects of one kind that a task created.
    pub async fn ledger_live_of_task(
        &self,
        kind: LedgerKind,
        task_id: &str,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let rows: Vec<LedgerRow> = on_reader!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, sdp_id, name, task_id, created_ms, deleted_ms FROM sdp_ledger \
                 WHERE kind = $1 AND task_id = $2 AND deleted_ms IS NULL ORDER BY sdp_id",
            )
            .bind(kind.as_str())
            .bind(task_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(LedgerEntry::try_from).collect()
    }

    /// Notes that an object Flex created is gone from the SDP.
    pub async fn ledger_deleted(&self, kind: LedgerKind, sdp_id: u64) -> StoreResult<()> {
        let now = now_ms();
        in_write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE sdp_ledger SET deleted_ms = $3 WHERE kind = $1 AND sdp_id = $2 AND deleted_ms IS NULL",
            )
            .bind(kind.as_str())
            .bind(sql_id(sdp_id))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    /// Objects Flex created that still exist on the SDP.
    pub async fn ledger_live(&self) -> StoreResult<Vec<LedgerEntry>> {
        let rows: Vec<LedgerRow> = on_reader!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, sdp_id, name, task_id, created_ms, deleted_ms FROM sdp_ledger \
                 WHERE deleted_ms IS NULL ORDER BY kind, sdp_id",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(LedgerEntry::try_from).collect()
    }

    pub async fn ledger_is_ours(&self, kind: LedgerKind, sdp_id: u64) -> StoreResult<bool> {
        let found: Option<i64> = on_reader!(self, |pool| {
            sqlx::query_scalar("SELECT sdp_id FROM sdp_ledger WHERE kind = $1 AND sdp_id = $2")
                .bind(kind.as_str())
                .bind(sql_id(sdp_id))
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }
}
