//! Registered hosts, the token each one was given, and the databases its agent reports.

use serde_json::Value;

use super::{
    Store, StoreError, StoreResult, TokenRecord, in_write_tx, now_ts, on_reader,
    tokens::insert_token_on,
};

/// A host as stored: the registration plus the facts its agent reported.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
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
    pub facts: String,
}

impl HostRecord {
    /// Extra facts (vm_id, cidrs, …) as a JSON object; `{}` when the agent sent none.
    pub fn facts_json(&self) -> Value {
        serde_json::from_str(&self.facts).unwrap_or_else(|_| Value::Object(Default::default()))
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
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct DatabaseRecord {
    pub host_id: String,
    pub db_id: String,
    pub name: String,
    pub vendor: String,
    pub status: String,
    /// JSON array of the database's files.
    pub files: String,
    /// JSON array of the volumes the files live on.
    pub mount_points: String,
    pub updated_ts: i64,
}

impl DatabaseRecord {
    /// Each file with the serial of the disk it lives on.
    pub fn files_with_serials(&self) -> Vec<(Value, Option<String>)> {
        let mounts: Vec<Value> = serde_json::from_str(&self.mount_points).unwrap_or_default();
        let files: Vec<Value> = serde_json::from_str(&self.files).unwrap_or_default();
        files
            .into_iter()
            .map(|file| {
                let path = file.get("path").and_then(Value::as_str).unwrap_or_default();
                let serial = serial_for_path(path, &mounts);
                (file, serial)
            })
            .collect()
    }
}

/// The serial of the disk holding `path`: the mount point whose path is the longest prefix
/// of it (Windows paths, so compared without case).
pub fn serial_for_path(path: &str, mount_points: &[Value]) -> Option<String> {
    mount_points
        .iter()
        .filter_map(|mount| {
            let mount_path = mount.get("path")?.as_str()?;
            let serial = mount.get("serial")?.as_str()?;
            let is_prefix = !mount_path.is_empty()
                && path.len() >= mount_path.len()
                && path.is_char_boundary(mount_path.len())
                && path[..mount_path.len()].eq_ignore_ascii_case(mount_path);
            is_prefix.then_some((mount_path.len(), serial))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, serial)| serial.to_owned())
}

macro_rules! host_columns {
    () => {
        "host_id, db_vendor, created_ts, last_seen_ts, host_name, host_iqn, \
     host_os, host_os_version, agent_version, cloud_vendor, db_engine_version, connected_by, facts"
    };
}
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
        in_write_tx!(self, |tx| {
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
                let record: HostRecord = sqlx::query_as(concat!(
                    "SELECT ",
                    host_columns!(),
                    " FROM hosts WHERE host_id = $1"
                ))
                .bind(&host.host_id)
                .fetch_one(&mut *tx)
                .await?;
                Ok(record)
            }
        })
    }

    /// Unregisters a host: its token, its inventory and the host row go together. Refused while
    /// a running task involves the host.
    pub async fn delete_host(&self, host_id: &str) -> StoreResult<DeleteHostOutcome> {
        in_write_tx!(self, |tx| {
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
            sqlx::query("DELETE FROM tokens WHERE host_id = $1")
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM databases WHERE host_id = $1")
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query("DELETE FROM hosts WHERE host_id = $1")
                .bind(host_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(if deleted == 0 {
                DeleteHostOutcome::NotFound
            } else {
                DeleteHostOutcome::Deleted
            })
        })
    }

    pub async fn get_host(&self, host_id: &str) -> StoreResult<Option<HostRecord>> {
        let sql = concat!("SELECT ", host_columns!(), " FROM hosts WHERE host_id = $1");
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(host_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn list_hosts(&self) -> StoreResult<Vec<HostRecord>> {
        let sql = concat!("SELECT ", host_columns!(), " FROM hosts ORDER BY host_id");
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(sql).fetch_all(pool).await?
        }))
    }

    /// Replaces everything known about a host's databases with what its agent just reported.
    /// Returns false when the host is not registered (nothing is written then).
    pub async fn replace_databases(
        &self,
        host_id: &str,
        databases: &[DatabaseRecord],
    ) -> StoreResult<bool> {
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
            for db in databases {
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
                .bind(&db.files)
                .bind(&db.mount_points)
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
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(host_id).fetch_all(pool).await?
        }))
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
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(host_id)
                .bind(db_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Every database of every host, in one query (topology joins them in memory).
    pub async fn list_all_databases(&self) -> StoreResult<Vec<DatabaseRecord>> {
        let sql = concat!(
            "SELECT ",
            database_columns!(),
            " FROM databases ORDER BY host_id, name, db_id"
        );
        Ok(on_reader!(self, |pool| {
            sqlx::query_as(sql).fetch_all(pool).await?
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::serial_for_path;

    #[test]
    fn files_take_the_serial_of_the_deepest_mount_point() {
        let mounts = vec![
            json!({"kind": "disk", "path": "E:\\", "serial": "E1"}),
            json!({"kind": "disk", "path": "E:\\Data\\Big\\", "serial": "BIG"}),
        ];
        assert_eq!(
            serial_for_path("e:\\data\\big\\x.mdf", &mounts).as_deref(),
            Some("BIG")
        );
        assert_eq!(
            serial_for_path("E:\\Logs\\y.ldf", &mounts).as_deref(),
            Some("E1")
        );
        assert_eq!(serial_for_path("F:\\z.mdf", &mounts), None);
    }
}
