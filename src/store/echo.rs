//! Db snapshots and echo DBs (the clones attached on destination hosts). Their JSON columns
//! (a snapshot's volume group snapshots and member databases, an echo DB's volumes) are read
//! into their typed documents here; a row that does not parse is an error naming it.

use super::{
    Store, StoreError, StoreResult, corrupt,
    events::{EventSubject, record_event},
    in_write_tx, on_reader, read_rows,
};
use crate::model::{ConsistencyLevel, EchoVolume, EventType, Lifecycle, SourceDb, VgSnapshot};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DbSnapshotRecord {
    pub id: String,
    pub host_id: String,
    pub host_name: String,
    pub sdp_id: String,
    pub consistency_level: ConsistencyLevel,
    pub db_engine_version: String,
    pub is_vss_based: bool,
    pub created_ts: i64,
    pub task_id: String,
    pub vg_snapshots: Vec<VgSnapshot>,
    pub databases: Vec<SourceDb>,
    /// The snapshot schedule it was taken for, whose retention may delete it.
    pub schedule_id: Option<String>,
}

#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct DbSnapshotRow {
    id: String,
    host_id: String,
    host_name: String,
    sdp_id: String,
    consistency_level: String,
    db_engine_version: String,
    is_vss_based: i64,
    created_ts: i64,
    task_id: String,
    vg_snapshots: String,
    databases: String,
    schedule_id: Option<String>,
}

impl TryFrom<DbSnapshotRow> for DbSnapshotRecord {
    type Error = StoreError;

    fn try_from(row: DbSnapshotRow) -> StoreResult<DbSnapshotRecord> {
        let unreadable = |detail: &dyn std::fmt::Display| corrupt("db_snapshots", &row.id, detail);
        Ok(DbSnapshotRecord {
            consistency_level: row
                .consistency_level
                .parse()
                .map_err(|e: crate::model::UnknownValue| unreadable(&e))?,
            vg_snapshots: serde_json::from_str(&row.vg_snapshots).map_err(|e| unreadable(&e))?,
            databases: serde_json::from_str(&row.databases).map_err(|e| unreadable(&e))?,
            id: row.id,
            host_id: row.host_id,
            host_name: row.host_name,
            sdp_id: row.sdp_id,
            db_engine_version: row.db_engine_version,
            is_vss_based: row.is_vss_based != 0,
            created_ts: row.created_ts,
            task_id: row.task_id,
            schedule_id: row.schedule_id,
        })
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
    pub volumes: Vec<EchoVolume>,
    /// Ids it had on its host before a refresh attached it under a new one, oldest first.
    pub former_db_ids: Vec<String>,
    pub lifecycle: Lifecycle,
    /// The delete Flex started when it expired (set by [`Store::create_task`]'s guard).
    pub expiry_task_id: Option<String>,
}

#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct EchoDbRow {
    host_id: String,
    db_id: String,
    name: String,
    snapshot_id: String,
    src_host_id: String,
    src_db_id: String,
    src_db_name: String,
    task_id: String,
    created_ts: i64,
    volumes: String,
    former_db_ids: String,
    expires_ts: Option<i64>,
    ttl_secs: Option<i64>,
    protected: i64,
    expiry_task_id: Option<String>,
}

impl TryFrom<EchoDbRow> for EchoDbRecord {
    type Error = StoreError;

    fn try_from(row: EchoDbRow) -> StoreResult<EchoDbRecord> {
        let key = || format!("{}/{}", row.host_id, row.db_id);
        let volumes =
            serde_json::from_str(&row.volumes).map_err(|e| corrupt("echo_dbs", &key(), e))?;
        let former_db_ids =
            serde_json::from_str(&row.former_db_ids).map_err(|e| corrupt("echo_dbs", &key(), e))?;
        Ok(EchoDbRecord {
            host_id: row.host_id,
            db_id: row.db_id,
            name: row.name,
            snapshot_id: row.snapshot_id,
            src_host_id: row.src_host_id,
            src_db_id: row.src_db_id,
            src_db_name: row.src_db_name,
            task_id: row.task_id,
            created_ts: row.created_ts,
            volumes,
            former_db_ids,
            lifecycle: Lifecycle {
                expires_ts: row.expires_ts,
                ttl_secs: row.ttl_secs,
                protected: row.protected != 0,
            },
            expiry_task_id: row.expiry_task_id,
        })
    }
}

macro_rules! snapshot_columns {
    () => {
        "id, host_id, host_name, sdp_id, consistency_level, db_engine_version, is_vss_based, \
         created_ts, task_id, vg_snapshots, databases, schedule_id"
    };
}
macro_rules! echo_columns {
    () => {
        "host_id, db_id, name, snapshot_id, src_host_id, src_db_id, src_db_name, task_id, \
         created_ts, volumes, former_db_ids, expires_ts, ttl_secs, protected, expiry_task_id"
    };
}

/// The echo DB `($host_id, $db_id)` as the open transaction `$tx` sees it, if it exists.
macro_rules! fetch_echo_db {
    ($tx:ident, $host_id:expr, $db_id:expr) => {{
        let row: Option<$crate::store::echo::EchoDbRow> = sqlx::query_as(concat!(
            "SELECT ",
            $crate::store::echo::echo_columns!(),
            " FROM echo_dbs WHERE host_id = $1 AND db_id = $2"
        ))
        .bind($host_id)
        .bind($db_id)
        .fetch_optional(&mut *$tx)
        .await?;
        row.map($crate::store::EchoDbRecord::try_from).transpose()?
    }};
}
pub(super) use {echo_columns, fetch_echo_db};

fn to_json<T: serde::Serialize>(table: &'static str, key: &str, value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| corrupt(table, key, e))
}

impl Store {
    /// Records a db snapshot; recording it again (a re-run step) changes nothing.
    pub async fn insert_db_snapshot(&self, s: &DbSnapshotRecord) -> StoreResult<()> {
        let vg_snapshots = to_json("db_snapshots", &s.id, &s.vg_snapshots)?;
        let databases = to_json("db_snapshots", &s.id, &s.databases)?;
        let postgres = self.is_postgres();
        let inserted = in_write_tx!(self, |tx| {
            let inserted = sqlx::query(concat!(
                "INSERT INTO db_snapshots (",
                snapshot_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING"
            ))
            .bind(&s.id)
            .bind(&s.host_id)
            .bind(&s.host_name)
            .bind(&s.sdp_id)
            .bind(s.consistency_level.as_str())
            .bind(&s.db_engine_version)
            .bind(i64::from(s.is_vss_based))
            .bind(s.created_ts)
            .bind(&s.task_id)
            .bind(&vg_snapshots)
            .bind(&databases)
            .bind(&s.schedule_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted > 0 {
                let subject = EventSubject::DbSnapshot(s.clone());
                record_event!(
                    tx,
                    postgres,
                    EventType::DbSnapshotCreated,
                    &s.task_id,
                    subject
                );
            }
            Ok(inserted > 0)
        })?;
        if inserted {
            self.announce_events();
        }
        Ok(())
    }

    pub async fn get_db_snapshot(&self, id: &str) -> StoreResult<Option<DbSnapshotRecord>> {
        let sql = concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM db_snapshots WHERE id = $1"
        );
        let row: Option<DbSnapshotRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        });
        row.map(DbSnapshotRecord::try_from).transpose()
    }

    pub async fn list_db_snapshots(&self) -> StoreResult<Vec<DbSnapshotRecord>> {
        let rows = read_rows!(
            self,
            DbSnapshotRow,
            "db_snapshots",
            snapshot_columns!(),
            from: "db_snapshots",
            order: "created_ts, id",
            |query| query
        );
        rows.into_iter().map(DbSnapshotRecord::try_from).collect()
    }

    /// The db snapshots taken on one host, oldest first.
    pub async fn list_db_snapshots_on(&self, host_id: &str) -> StoreResult<Vec<DbSnapshotRecord>> {
        let sql = concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM db_snapshots WHERE host_id = $1 ORDER BY created_ts, id"
        );
        let rows: Vec<DbSnapshotRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(host_id).fetch_all(pool).await?
        });
        rows.into_iter().map(DbSnapshotRecord::try_from).collect()
    }

    /// Forgets a db snapshot; `by_task` is the task deleting it (`""` for none).
    pub async fn delete_db_snapshot_row(&self, id: &str, by_task: &str) -> StoreResult<bool> {
        let postgres = self.is_postgres();
        let deleted = in_write_tx!(self, |tx| {
            let deleted: Option<DbSnapshotRow> = sqlx::query_as(concat!(
                "DELETE FROM db_snapshots WHERE id = $1 RETURNING ",
                snapshot_columns!()
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = deleted else {
                return Ok(false);
            };
            let subject = EventSubject::DbSnapshot(DbSnapshotRecord::try_from(row)?);
            record_event!(tx, postgres, EventType::DbSnapshotDeleted, by_task, subject);
            Ok(true)
        })?;
        if deleted {
            self.announce_events();
        }
        Ok(deleted)
    }

    pub async fn insert_echo_db(&self, e: &EchoDbRecord) -> StoreResult<()> {
        let volumes = to_json("echo_dbs", &e.db_id, &e.volumes)?;
        let former_db_ids = to_json("echo_dbs", &e.db_id, &e.former_db_ids)?;
        let postgres = self.is_postgres();
        let inserted = in_write_tx!(self, |tx| {
            let inserted = sqlx::query(concat!(
                "INSERT INTO echo_dbs (",
                echo_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
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
            .bind(&volumes)
            .bind(&former_db_ids)
            .bind(e.lifecycle.expires_ts)
            .bind(e.lifecycle.ttl_secs)
            .bind(i64::from(e.lifecycle.protected))
            .bind(&e.expiry_task_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted > 0 {
                let subject = EventSubject::EchoDb(e.clone());
                record_event!(tx, postgres, EventType::EchoDbCreated, &e.task_id, subject);
            }
            Ok(inserted > 0)
        })?;
        if inserted {
            self.announce_events();
        }
        Ok(())
    }

    /// The echo DB with this id on the host: its current id, or else an id it had before a
    /// refresh (an echo DB holding the id now wins over one that held it before).
    pub async fn get_echo_db(
        &self,
        host_id: &str,
        db_id: &str,
    ) -> StoreResult<Option<EchoDbRecord>> {
        if let Some(current) = self.get_echo_db_now(host_id, db_id).await? {
            return Ok(Some(current));
        }
        let on_host = self.list_echo_dbs_on(host_id).await?;
        Ok(on_host
            .into_iter()
            .find(|e| e.former_db_ids.iter().any(|id| id == db_id)))
    }

    async fn get_echo_db_now(
        &self,
        host_id: &str,
        db_id: &str,
    ) -> StoreResult<Option<EchoDbRecord>> {
        let sql = concat!(
            "SELECT ",
            echo_columns!(),
            " FROM echo_dbs WHERE host_id = $1 AND db_id = $2"
        );
        let row: Option<EchoDbRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(host_id)
                .bind(db_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(EchoDbRecord::try_from).transpose()
    }

    pub async fn list_echo_dbs(&self) -> StoreResult<Vec<EchoDbRecord>> {
        let rows = read_rows!(
            self,
            EchoDbRow,
            "echo_dbs",
            echo_columns!(),
            from: "echo_dbs",
            order: "host_id, name",
            |query| query
        );
        rows.into_iter().map(EchoDbRecord::try_from).collect()
    }

    /// The echo DBs on one host.
    pub async fn list_echo_dbs_on(&self, host_id: &str) -> StoreResult<Vec<EchoDbRecord>> {
        let sql = concat!(
            "SELECT ",
            echo_columns!(),
            " FROM echo_dbs WHERE host_id = $1 ORDER BY name"
        );
        let rows: Vec<EchoDbRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(host_id).fetch_all(pool).await?
        });
        rows.into_iter().map(EchoDbRecord::try_from).collect()
    }

    /// Forgets an echo DB; `by_task` is the task deleting it.
    pub async fn delete_echo_db_row(
        &self,
        host_id: &str,
        db_id: &str,
        by_task: &str,
    ) -> StoreResult<bool> {
        let postgres = self.is_postgres();
        let deleted = in_write_tx!(self, |tx| {
            let deleted: Option<EchoDbRow> = sqlx::query_as(concat!(
                "DELETE FROM echo_dbs WHERE host_id = $1 AND db_id = $2 RETURNING ",
                echo_columns!()
            ))
            .bind(host_id)
            .bind(db_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = deleted else {
                return Ok(false);
            };
            let subject = EventSubject::EchoDb(EchoDbRecord::try_from(row)?);
            record_event!(tx, postgres, EventType::EchoDbDeleted, by_task, subject);
            Ok(true)
        })?;
        if deleted {
            self.announce_events();
        }
        Ok(deleted)
    }

    /// Sets an echo DB's expiry and protection; false when there is no such echo DB.
    pub async fn set_lifecycle(
        &self,
        host_id: &str,
        db_id: &str,
        lifecycle: Lifecycle,
    ) -> StoreResult<bool> {
        in_write_tx!(self, |tx| {
            let changed = sqlx::query(
                "UPDATE echo_dbs SET expires_ts = $1, ttl_secs = $2, protected = $3 \
                 WHERE host_id = $4 AND db_id = $5",
            )
            .bind(lifecycle.expires_ts)
            .bind(lifecycle.ttl_secs)
            .bind(i64::from(lifecycle.protected))
            .bind(host_id)
            .bind(db_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok(changed > 0)
        })
    }

    /// The unprotected echo DBs whose expiry has passed at `now`, soonest expired first.
    pub async fn expired_echo_dbs(&self, now: i64) -> StoreResult<Vec<EchoDbRecord>> {
        let sql = concat!(
            "SELECT ",
            echo_columns!(),
            " FROM echo_dbs WHERE expires_ts IS NOT NULL AND expires_ts <= $1 AND protected = 0 \
             ORDER BY expires_ts, host_id, db_id"
        );
        let rows: Vec<EchoDbRow> = on_reader!(self, |pool| sqlx::query_as(sql)
            .bind(now)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(EchoDbRecord::try_from).collect()
    }

    /// The db snapshots a schedule took, oldest first.
    pub async fn db_snapshots_of_schedule(
        &self,
        schedule_id: &str,
    ) -> StoreResult<Vec<DbSnapshotRecord>> {
        let sql = concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM db_snapshots WHERE schedule_id = $1 ORDER BY created_ts, id"
        );
        let rows: Vec<DbSnapshotRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(schedule_id)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(DbSnapshotRecord::try_from).collect()
    }
}
