//! Db snapshots, echo DBs (the clones attached on destination hosts), and the SDP ledger:
//! every object Flex creates on an SDP, from creation until it is deleted.

use super::{Store, StoreResult, in_write_tx, on_reader};

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct DbSnapshotRecord {
    pub id: String,
    pub host_id: String,
    pub host_name: String,
    pub sdp_id: String,
    pub consistency_level: String,
    pub db_engine_version: String,
    pub is_vss_based: i64,
    pub created_ts: i64,
    pub task_id: String,
    /// JSON: `[{"vg_id", "sdp_snapshot_id"}]`.
    pub vg_snapshots: String,
    /// JSON: `[{"db_id", "db_name", "files": [...]}]`.
    pub databases: String,
}

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct EchoDbRecord {
    pub host_id: String,
    pub db_id: String,
    pub name: String,
    pub snapshot_id: String,
    pub src_host_id: String,
    pub src_db_id: String,
    pub src_db_name: String,
    pub task_id: String,
    pub created_ts: i64,
    /// JSON: `[{"volume_id", "serial", "mapping_id", "sdp_host_id"}]`.
    pub volumes: String,
}

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct LedgerEntry {
    pub kind: String,
    pub sdp_id: i64,
    pub name: String,
    pub task_id: String,
    pub created_ms: i64,
    pub deleted_ms: Option<i64>,
}

macro_rules! snapshot_columns {
    () => {
        "id, host_id, host_name, sdp_id, consistency_level, db_engine_version, is_vss_based, \
         created_ts, task_id, vg_snapshots, databases"
    };
}
macro_rules! echo_columns {
    () => {
        "host_id, db_id, name, snapshot_id, src_host_id, src_db_id, src_db_name, task_id, \
         created_ts, volumes"
    };
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Store {
    /// Records a db snapshot; recording it again (a re-run step) changes nothing.
    pub async fn insert_db_snapshot(&self, s: &DbSnapshotRecord) -> StoreResult<()> {
        in_write_tx!(self, |tx| {
            sqlx::query(concat!(
                "INSERT INTO db_snapshots (",
                snapshot_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(&s.id)
            .bind(&s.host_id)
            .bind(&s.host_name)
            .bind(&s.sdp_id)
            .bind(&s.consistency_level)
            .bind(&s.db_engine_version)
            .bind(s.is_vss_based)
            .bind(s.created_ts)
            .bind(&s.task_id)
            .bind(&s.vg_snapshots)
            .bind(&s.databases)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    pub async fn get_db_snapshot(&self, id: &str) -> StoreResult<Option<DbSnapshotRecord>> {
        let sql = concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM db_snapshots WHERE id = $1"
        );
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        }))
    }

    pub async fn list_db_snapshots(&self) -> StoreResult<Vec<DbSnapshotRecord>> {
        let sql = concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM db_snapshots ORDER BY created_ts, id"
        );
        Ok(on_reader!(self, |pool| sqlx::query_as(sql)
            .fetch_all(pool)
            .await?))
    }

    pub async fn delete_db_snapshot_row(&self, id: &str) -> StoreResult<bool> {
        in_write_tx!(self, |tx| {
            let deleted = sqlx::query("DELETE FROM db_snapshots WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(deleted > 0)
        })
    }

    pub async fn insert_echo_db(&self, e: &EchoDbRecord) -> StoreResult<()> {
        in_write_tx!(self, |tx| {
            sqlx::query(concat!(
                "INSERT INTO echo_dbs (",
                echo_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (host_id, db_id) DO NOTHING"
            ))
            .bind(&e.host_id)
            .bind(&e.db_id)
            .bind(&e.name)
            .bind(&e.snapshot_id)
            .bind(&e.src_host_id)
            .bind(&e.src_db_id)
            .bind(&e.src_db_name)
            .bind(&e.task_id)
            .bind(e.created_ts)
            .bind(&e.volumes)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    pub async fn get_echo_db(
        &self,
        host_id: &str,
        db_id: &str,
    ) -> StoreResult<Option<EchoDbRecord>> {
        let sql = concat!(
            "SELECT ",
            echo_columns!(),
            " FROM echo_dbs WHERE host_id = $1 AND db_id = $2"
        );
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(host_id)
                .bind(db_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn list_echo_dbs(&self) -> StoreResult<Vec<EchoDbRecord>> {
        let sql = concat!(
            "SELECT ",
            echo_columns!(),
            " FROM echo_dbs ORDER BY host_id, name"
        );
        Ok(on_reader!(self, |pool| sqlx::query_as(sql)
            .fetch_all(pool)
            .await?))
    }

    pub async fn delete_echo_db_row(&self, host_id: &str, db_id: &str) -> StoreResult<bool> {
        in_write_tx!(self, |tx| {
            let deleted = sqlx::query("DELETE FROM echo_dbs WHERE host_id = $1 AND db_id = $2")
                .bind(host_id)
                .bind(db_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(deleted > 0)
        })
    }

    /// Notes an object Flex created on the SDP (idempotent).
    pub async fn ledger_created(
        &self,
        kind: &str,
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
            .bind(kind)
            .bind(sdp_id as i64)
            .bind(name)
            .bind(task_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM sdp_intents WHERE kind = $1 AND name = $2 AND task_id = $3")
                .bind(kind)
                .bind(name)
                .bind(task_id)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    /// Records that the task is about to create an object of that kind and name (see the
    /// `sdp_intents` migration for why).
    pub async fn ledger_intend(&self, kind: &str, name: &str, task_id: &str) -> StoreResult<()> {
        let now = now_ms();
        in_write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO sdp_intents (kind, name, task_id, created_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kind, name, task_id) DO NOTHING",
            )
            .bind(kind)
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
        kind: &str,
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
            .bind(kind)
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
    pub async fn ledger_entry(&self, kind: &str, sdp_id: u64) -> StoreResult<Option<LedgerEntry>> {
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, sdp_id, name, task_id, created_ms, deleted_ms FROM sdp_ledger \
                 WHERE kind = $1 AND sdp_id = $2",
            )
            .bind(kind)
            .bind(sdp_id as i64)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Live objects of one kind that a task created.
    pub async fn ledger_live_of_task(
        &self,
        kind: &str,
        task_id: &str,
    ) -> StoreResult<Vec<LedgerEntry>> {
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, sdp_id, name, task_id, created_ms, deleted_ms FROM sdp_ledger \
                 WHERE kind = $1 AND task_id = $2 AND deleted_ms IS NULL ORDER BY sdp_id",
            )
            .bind(kind)
            .bind(task_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Notes that an object Flex created is gone from the SDP.
    pub async fn ledger_deleted(&self, kind: &str, sdp_id: u64) -> StoreResult<()> {
        let now = now_ms();
        in_write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE sdp_ledger SET deleted_ms = $3 WHERE kind = $1 AND sdp_id = $2 AND deleted_ms IS NULL",
            )
            .bind(kind)
            .bind(sdp_id as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    /// Objects Flex created that still exist on the SDP.
    pub async fn ledger_live(&self) -> StoreResult<Vec<LedgerEntry>> {
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, sdp_id, name, task_id, created_ms, deleted_ms FROM sdp_ledger \
                 WHERE deleted_ms IS NULL ORDER BY kind, sdp_id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn ledger_is_ours(&self, kind: &str, sdp_id: u64) -> StoreResult<bool> {
        let found: Option<i64> = on_reader!(self, |pool| {
            sqlx::query_scalar("SELECT sdp_id FROM sdp_ledger WHERE kind = $1 AND sdp_id = $2")
                .bind(kind)
                .bind(sdp_id as i64)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }
}
