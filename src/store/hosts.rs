//! Registered hosts, the token each one was given, and the databases its agent reports.

use std::time::Duration;

use super::{
    Store, StoreError, StoreResult, TokenRecord, corrupt,
    events::{EventSubject, record_event},
    in_write_tx, on_reader, read_rows,
    tokens::insert_token_on,
};
use crate::{
    clock::now_ts,
    model::{DatabaseFile, EventType, HostFacts, MountPoint, SdpHostName, serial_for_path},
};

/// A host as stored: the registration plus the facts its agent reported.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HostRecord {
    pub host_id: String,
    pub db_vendor: String,
    pub created_ts: i64,
    pub last_seen_ts: i64,
    pub host_name: String,
    pub host_iqn: String,
    pub host_os: String,
    pub host_os_version: String,
    pub agent_version: String,
    pub cloud_vendor: String,
    pub db_engine_version: String,
    pub connected_by: Option<String>,
    pub facts: HostFacts,
    /// The SDPs that have a host object for this host, found when its inventory was joined.
    pub sdps: Vec<SdpHostName>,
}

/// The `facts` column: what the agent reported, and what Flex found on the arrays.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(super) struct StoredFacts {
    #[serde(flatten)]
    pub facts: HostFacts,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sdps: Vec<SdpHostName>,
}

impl HostRecord {
    /// Connected means: an agent socket is open on some replica, and the agent spoke within
    /// `silence` of `now` (unix seconds).
    pub fn is_connected(&self, silence: Duration, now: i64) -> bool {
        self.connected_by.is_some()
            && now - self.last_seen_ts <= i64::try_from(silence.as_secs()).unwrap_or(i64::MAX)
    }
}

#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct HostRow {
    host_id: String,
    db_vendor: String,
    created_ts: i64,
    last_seen_ts: i64,
    host_name: String,
    host_iqn: String,
    host_os: String,
    host_os_version: String,
    agent_version: String,
    cloud_vendor: String,
    db_engine_version: String,
    connected_by: Option<String>,
    facts: String,
}

impl TryFrom<HostRow> for HostRecord {
    type Error = StoreError;

    fn try_from(row: HostRow) -> StoreResult<HostRecord> {
        let stored: StoredFacts =
            serde_json::from_str(&row.facts).map_err(|e| corrupt("hosts", &row.host_id, e))?;
        Ok(HostRecord {
            facts: stored.facts,
            sdps: stored.sdps,
            host_id: row.host_id,
            db_vendor: row.db_vendor,
            created_ts: row.created_ts,
            last_seen_ts: row.last_seen_ts,
            host_name: row.host_name,
            host_iqn: row.host_iqn,
            host_os: row.host_os,
            host_os_version: row.host_os_version,
            agent_version: row.agent_version,
            cloud_vendor: row.cloud_vendor,
            db_engine_version: row.db_engine_version,
            connected_by: row.connected_by,
        })
    }
}

#[derive(Clone, Debug)]
pub struct NewHost {
    pub host_id: String,
    pub db_vendor: String,
}

/// What unregistering found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteHostOutcome {
    Deleted,
    NotFound,
    /// Tasks that involve the host are still running (their request ids).
    Busy(Vec<String>),
}

/// One database as the host's agent reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseRecord {
    pub host_id: String,
    pub db_id: String,
    pub name: String,
    pub vendor: String,
    pub status: String,
    pub files: Vec<DatabaseFile>,
    /// The volumes the files live on.
    pub mount_points: Vec<MountPoint>,
    pub updated_ts: i64,
}

impl DatabaseRecord {
    /// Each file with the serial of the disk it lives on.
    pub fn files_with_serials(&self) -> impl Iterator<Item = (&DatabaseFile, Option<&str>)> {
        self.files
            .iter()
            .map(|file| (file, serial_for_path(&file.file.path, &self.mount_points)))
    }
}

#[derive(sqlx::FromRow, serde::Deserialize)]
struct DatabaseRow {
    host_id: String,
    db_id: String,
    name: String,
    vendor: String,
    status: String,
    files: String,
    mount_points: String,
    updated_ts: i64,
}

impl TryFrom<DatabaseRow> for DatabaseRecord {
    type Error = StoreError;

    fn try_from(row: DatabaseRow) -> StoreResult<DatabaseRecord> {
        let key = format!("{}/{}", row.host_id, row.db_id);
        Ok(DatabaseRecord {
            files: serde_json::from_str(&row.files).map_err(|e| corrupt("databases", &key, e))?,
            mount_points: serde_json::from_str(&row.mount_points)
                .map_err(|e| corrupt("databases", &key, e))?,
            host_id: row.host_id,
            db_id: row.db_id,
            name: row.name,
            vendor: row.vendor,
            status: row.status,
            updated_ts: row.updated_ts,
        })
    }
}

macro_rules! host_columns {
    () => {
        "host_id, db_vendor, created_ts, last_seen_ts, host_name, host_iqn, \
     host_os, host_os_version, agent_version, cloud_vendor, db_engine_version, connected_by, facts"
    };
}
/// The host `$host_id` as the open transaction `$tx` sees it, if it is registered.
macro_rules! fetch_host {
    ($tx:ident, $host_id:expr) => {{
        let row: Option<$crate::store::hosts::HostRow> = sqlx::query_as(concat!(
            "SELECT ",
            $crate::store::hosts::host_columns!(),
            " FROM hosts WHERE host_id = $1"
        ))
        .bind($host_id)
        .fetch_optional(&mut *$tx)
        .await?;
        row.map($crate::store::HostRecord::try_from).transpose()?
    }};
}
pub(super) use {fetch_host, host_columns};

macro_rules! database_columns {
    () => {
        "host_id, db_id, name, vendor, status, files, mount_points, updated_ts"
    };
}

impl Store {
    /// Registers a host together with its agent token, atomically. A host that already exists
    /// is a [`StoreError::Conflict`] and nothing is written.
    pub async fn insert_host(
        &self,
        host: &NewHost,
        token: &TokenRecord,
    ) -> StoreResult<HostRecord> {
        let now = now_ts();
        let postgres = self.is_postgres();
        let host = in_write_tx!(self, |tx| {
            let inserted = sqlx::query(
                "INSERT INTO hosts (host_id, db_vendor, created_ts, last_seen_ts) \
                 VALUES ($1, $2, $3, $3) ON CONFLICT (host_id) DO NOTHING",
            )
            .bind(&host.host_id)
            .bind(&host.db_vendor)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                Err(StoreError::Conflict(format!(
                    "host '{}' is already registered",
                    host.host_id
                )))
            } else {
                insert_token_on!(&mut *tx, token)?;
                let row: HostRow = sqlx::query_as(concat!(
                    "SELECT ",
                    host_columns!(),
                    " FROM hosts WHERE host_id = $1"
                ))
                .bind(&host.host_id)
                .fetch_one(&mut *tx)
                .await?;
                let host = HostRecord::try_from(row)?;
                let subject = EventSubject::Host(host.clone());
                record_event!(tx, postgres, EventType::HostRegistered, "", subject);
                Ok(host)
            }
        })?;
        self.announce_events();
        Ok(host)
    }

    /// Unregisters a host: its token, its inventory and the host row go together. Refused while
    /// a running task involves the host.
    pub async fn delete_host(&self, host_id: &str) -> StoreResult<DeleteHostOutcome> {
        let postgres = self.is_postgres();
        let outcome = in_write_tx!(self, |tx| {
            let busy: Vec<String> = sqlx::query_scalar(
                "SELECT t.request_id FROM task_hosts th \
                 JOIN tasks t ON t.request_id = th.request_id \
                 WHERE th.host_id = $1 AND t.state = 'running' ORDER BY t.request_id",
            )
            .bind(host_id)
            .fetch_all(&mut *tx)
            .await?;
            if !busy.is_empty() {
                return Ok(DeleteHostOutcome::Busy(busy));
            }
            let Some(host) = fetch_host!(tx, host_id) else {
                return Ok(DeleteHostOutcome::NotFound);
            };
            sqlx::query("DELETE FROM tokens WHERE host_id = $1")
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM databases WHERE host_id = $1")
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM hosts WHERE host_id = $1")
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
            record_event!(
                tx,
                postgres,
                EventType::HostUnregistered,
                "",
                EventSubject::Host(host)
            );
            Ok(DeleteHostOutcome::Deleted)
        })?;
        if outcome == DeleteHostOutcome::Deleted {
            // Its agent's token went with it.
            self.tokens_seen.forget_all();
            self.announce_events();
        }
        Ok(outcome)
    }

    pub async fn get_host(&self, host_id: &str) -> StoreResult<Option<HostRecord>> {
        let sql = concat!("SELECT ", host_columns!(), " FROM hosts WHERE host_id = $1");
        let row: Option<HostRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(host_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(HostRecord::try_from).transpose()
    }

    pub async fn list_hosts(&self) -> StoreResult<Vec<HostRecord>> {
        let rows = read_rows!(
            self,
            HostRow,
            "hosts",
            host_columns!(),
            from: "hosts",
            order: "host_id",
            |query| query
        );
        rows.into_iter().map(HostRecord::try_from).collect()
    }

    /// Replaces everything known about a host's databases with what its agent just reported.
    /// Returns false when the host is not registered (nothing is written then).
    pub async fn replace_databases(
        &self,
        host_id: &str,
        databases: &[DatabaseRecord],
    ) -> StoreResult<bool> {
        let mut documents = Vec::with_capacity(databases.len());
        for db in databases {
            let key = format!("{host_id}/{}", db.db_id);
            documents.push((
                serde_json::to_string(&db.files).map_err(|e| corrupt("databases", &key, e))?,
                serde_json::to_string(&db.mount_points)
                    .map_err(|e| corrupt("databases", &key, e))?,
            ));
        }
        in_write_tx!(self, |tx| {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT host_id FROM hosts WHERE host_id = $1")
                    .bind(host_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                return Ok(false);
            }
            sqlx::query("DELETE FROM databases WHERE host_id = $1")
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
            for (db, (files, mount_points)) in databases.iter().zip(&documents) {
                sqlx::query(concat!(
                    "INSERT INTO databases (",
                    database_columns!(),
                    ") \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ))
                .bind(host_id)
                .bind(&db.db_id)
                .bind(&db.name)
                .bind(&db.vendor)
                .bind(&db.status)
                .bind(files)
                .bind(mount_points)
                .bind(db.updated_ts)
                .execute(&mut *tx)
                .await?;
            }
            Ok(true)
        })
    }

    pub async fn list_databases(&self, host_id: &str) -> StoreResult<Vec<DatabaseRecord>> {
        let sql = concat!(
            "SELECT ",
            database_columns!(),
            " FROM databases WHERE host_id = $1 ORDER BY name, db_id"
        );
        let rows: Vec<DatabaseRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(host_id).fetch_all(pool).await?
        });
        rows.into_iter().map(DatabaseRecord::try_from).collect()
    }

    pub async fn get_database(
        &self,
        host_id: &str,
        db_id: &str,
    ) -> StoreResult<Option<DatabaseRecord>> {
        let sql = concat!(
            "SELECT ",
            database_columns!(),
            " FROM databases WHERE host_id = $1 AND db_id = $2"
        );
        let row: Option<DatabaseRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(host_id)
                .bind(db_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(DatabaseRecord::try_from).transpose()
    }

    /// Every database's host and name, and nothing else: what a search by name reads.
    pub async fn list_database_names(&self) -> StoreResult<Vec<(String, String)>> {
        let sql = "SELECT host_id, name FROM databases ORDER BY host_id, name, db_id";
        let rows: Vec<(String, String)> =
            on_reader!(self, |pool| { sqlx::query_as(sql).fetch_all(pool).await? });
        Ok(rows)
    }

    /// Every database of every host, in one query (topology joins them in memory).
    pub async fn list_all_databases(&self) -> StoreResult<Vec<DatabaseRecord>> {
        let rows = read_rows!(
            self,
            DatabaseRow,
            "databases",
            database_columns!(),
            from: "databases",
            order: "host_id, name, db_id",
            |query| query
        );
        rows.into_iter().map(DatabaseRecord::try_from).collect()
    }

    /// A number that every change to a database, db snapshot or echo DB moves, in that
    /// change's own transaction (a trigger of each backend's migration 0012): a topology
    /// rendered after reading it holds every change up to it.
    pub async fn topology_generation(&self) -> StoreResult<i64> {
        self.generation("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM topology_generation")
            .await
    }
}
