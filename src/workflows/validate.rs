//! The checks every Echo operation runs before a task exists: the same ones answer the
//! `…/__validate` dry runs, so a dry run and the real request never disagree.
//!
//! Issue codes: `HOST_NOT_FOUND`, `HOST_NOT_CONNECTED`, `DB_NOT_FOUND`, `DB_NAME_IS_IN_USE`,
//! `INVALID_DB_NAME`, `NO_DATABASES`, `NO_DESTINATIONS`, `INVALID_NAME_PREFIX`,
//! `INVALID_CONSISTENCY_LEVEL`, `INVALID_TARGET_STATE`, `SNAPSHOT_NOT_FOUND`,
//! `SNAPSHOT_IN_USE`, `ECHO_DB_NOT_FOUND`, `SDP_NOT_CONFIGURED`.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Destination, SnapshotSpec, delete::snapshot_users, snapshot::SourceDb};
use crate::store::{HostRecord, Store, StoreError, now_ts};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Issue {
    pub issue_type: &'static str,
    pub description: String,
    pub body: Value,
}

fn issue(issue_type: &'static str, description: impl Into<String>) -> Issue {
    Issue {
        issue_type,
        description: description.into(),
        body: json!({}),
    }
}

/// The HTTP status a request that fails this check gets.
pub fn status_of(issue: &Issue) -> u16 {
    let code = issue.issue_type;
    if code.ends_with("NOT_FOUND") {
        404
    } else if code.contains("IN_USE")
        || code == "HOST_NOT_CONNECTED"
        || code == "SDP_NOT_CONFIGURED"
    {
        409
    } else {
        400
    }
}

/// What the checks need besides the store.
pub struct Checker<'a> {
    pub store: &'a Store,
    pub silence: Duration,
    pub sdp_configured: bool,
}

pub const VALID_CONSISTENCY: [&str; 2] = ["application", "crash"];
pub const VALID_TARGET_STATES: [&str; 2] = ["online", "recovery"];

/// `^[a-z][a-z0-9_-]+$`, 4 to 20 characters, as documented.
pub fn is_valid_name_prefix(prefix: &str) -> bool {
    let bytes = prefix.as_bytes();
    (4..=20).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// SQL Server database names: 1 to 128 characters, no control characters, brackets or
/// quotes, no leading or trailing space (openapi.yaml states the same as a pattern).
pub fn is_valid_db_name(name: &str) -> bool {
    (1..=128).contains(&name.chars().count())
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '[' | ']' | '\''))
        && !name.starts_with(' ')
        && !name.ends_with(' ')
}

impl Checker<'_> {
    fn connected(&self, host: &HostRecord) -> bool {
        host.connected_by.is_some() && now_ts() - host.last_seen_ts <= self.silence.as_secs() as i64
    }

    /// The host, if registered and connected; issues otherwise.
    async fn host(
        &self,
        host_id: &str,
        issues: &mut Vec<Issue>,
    ) -> Result<Option<HostRecord>, StoreError> {
        let Some(host) = self.store.get_host(host_id).await? else {
            issues.push(issue(
                "HOST_NOT_FOUND",
                format!("host '{host_id}' is not registered"),
            ));
            return Ok(None);
        };
        if !self.connected(&host) {
            issues.push(issue(
                "HOST_NOT_CONNECTED",
                format!("the agent of host '{host_id}' is not connected"),
            ));
        }
        Ok(Some(host))
    }

    fn sdp(&self, issues: &mut Vec<Issue>) {
        if !self.sdp_configured {
            issues.push(issue(
                "SDP_NOT_CONFIGURED",
                "Flex has no SDP configured (--sdp-url)",
            ));
        }
    }

    pub async fn snapshot(&self, spec: &SnapshotSpec) -> Result<Vec<Issue>, StoreError> {
        let mut issues = Vec::new();
        self.sdp(&mut issues);
        if !is_valid_name_prefix(&spec.name_prefix) {
            issues.push(issue(
                "INVALID_NAME_PREFIX",
                format!(
                    "name_prefix '{}' must be 4-20 characters matching ^[a-z][a-z0-9_-]+$",
                    spec.name_prefix
                ),
            ));
        }
        if !VALID_CONSISTENCY.contains(&spec.consistency_level.as_str()) {
            issues.push(issue(
                "INVALID_CONSISTENCY_LEVEL",
                format!(
                    "consistency_level '{}' must be 'application' or 'crash'",
                    spec.consistency_level
                ),
            ));
        }
        if spec.database_ids.is_empty() {
            issues.push(issue(
                "NO_DATABASES",
                "database_ids must name at least one database",
            ));
        }
        if self
            .host(&spec.source_host_id, &mut issues)
            .await?
            .is_some()
        {
            let inventory = self.store.list_databases(&spec.source_host_id).await?;
            for db_id in &spec.database_ids {
                if !inventory.iter().any(|db| &db.db_id == db_id) {
                    issues.push(issue(
                        "DB_NOT_FOUND",
                        format!(
                            "host_id='{}'. database '{db_id}' does not exist",
                            spec.source_host_id
                        ),
                    ));
                }
            }
        }
        Ok(issues)
    }

    /// Destination checks; `sources` are the databases that may be cloned (by id).
    pub async fn destinations(
        &self,
        destinations: &[Destination],
        sources: &[String],
        target_state: &str,
    ) -> Result<Vec<Issue>, StoreError> {
        let mut issues = Vec::new();
        if destinations.is_empty() {
            issues.push(issue(
                "NO_DESTINATIONS",
                "destinations must hold at least one destination",
            ));
        }
        if !VALID_TARGET_STATES.contains(&target_state) {
            issues.push(issue(
                "INVALID_TARGET_STATE",
                format!("target_state '{target_state}' must be 'online' or 'recovery'"),
            ));
        }
        let mut checked_hosts: Vec<&str> = Vec::new();
        for (n, destination) in destinations.iter().enumerate() {
            if !sources.contains(&destination.db_id) {
                issues.push(issue(
                    "DB_NOT_FOUND",
                    format!(
                        "destinations[{n}]: database '{}' is not among the sources",
                        destination.db_id
                    ),
                ));
            }
            if !is_valid_db_name(&destination.db_name) {
                issues.push(issue(
                    "INVALID_DB_NAME",
                    format!(
                        "destinations[{n}]: db_name '{}' is not a valid database name",
                        destination.db_name
                    ),
                ));
            }
            if checked_hosts.contains(&destination.host_id.as_str()) {
                continue;
            }
            checked_hosts.push(&destination.host_id);
            if self
                .host(&destination.host_id, &mut issues)
                .await?
                .is_none()
            {
                continue;
            }
            let inventory = self.store.list_databases(&destination.host_id).await?;
            let wanted: Vec<&Destination> = destinations
                .iter()
                .filter(|d| d.host_id == destination.host_id)
                .collect();
            let mut in_use: Vec<&str> = wanted
                .iter()
                .filter(|d| {
                    inventory
                        .iter()
                        .any(|db| db.name.eq_ignore_ascii_case(&d.db_name))
                })
                .map(|d| d.db_name.as_str())
                .collect();
            for (i, a) in wanted.iter().enumerate() {
                if wanted[..i]
                    .iter()
                    .any(|b| b.db_name.eq_ignore_ascii_case(&a.db_name))
                {
                    in_use.push(&a.db_name);
                }
            }
            if !in_use.is_empty() {
                issues.push(Issue {
                    issue_type: "DB_NAME_IS_IN_USE",
                    description: format!(
                        "host_id='{}'. db names already in use: {}",
                        destination.host_id,
                        in_use.join(", ")
                    ),
                    body: json!({"host_id": destination.host_id, "db_names": in_use}),
                });
            }
        }
        Ok(issues)
    }

    /// A snapshot's source databases, or an issue.
    pub async fn snapshot_sources(
        &self,
        snapshot_id: &str,
        issues: &mut Vec<Issue>,
    ) -> Result<Option<Vec<SourceDb>>, StoreError> {
        match self.store.get_db_snapshot(snapshot_id).await? {
            Some(snapshot) => Ok(Some(
                serde_json::from_str(&snapshot.databases).unwrap_or_default(),
            )),
            None => {
                issues.push(issue(
                    "SNAPSHOT_NOT_FOUND",
                    format!("db snapshot '{snapshot_id}' does not exist"),
                ));
                Ok(None)
            }
        }
    }

    pub async fn delete_snapshot(&self, snapshot_id: &str) -> Result<Vec<Issue>, StoreError> {
        let mut issues = Vec::new();
        if self
            .snapshot_sources(snapshot_id, &mut issues)
            .await?
            .is_some()
            && let Some(users) = snapshot_users(self.store, snapshot_id).await?
        {
            issues.push(Issue {
                issue_type: "SNAPSHOT_IN_USE",
                description: format!(
                    "db snapshot '{snapshot_id}' is used by echo DBs: {}",
                    users.join(", ")
                ),
                body: json!({"echo_dbs": users}),
            });
        }
        Ok(issues)
    }

    pub async fn delete_echo_db(
        &self,
        host_id: &str,
        db_id: &str,
    ) -> Result<Vec<Issue>, StoreError> {
        let mut issues = Vec::new();
        if self.host(host_id, &mut issues).await?.is_none() {
            return Ok(issues);
        }
        self.sdp(&mut issues);
        if self.store.get_echo_db(host_id, db_id).await?.is_none() {
            issues.push(issue(
                "ECHO_DB_NOT_FOUND",
                format!("database '{db_id}' on host '{host_id}' is not an echo DB"),
            ));
        }
        Ok(issues)
    }

    pub async fn refresh(
        &self,
        host_id: &str,
        snapshot_id: &str,
        db_names: &[String],
        target_state: &str,
    ) -> Result<Vec<Issue>, StoreError> {
        let mut issues = Vec::new();
        self.sdp(&mut issues);
        self.host(host_id, &mut issues).await?;
        let sources = self.snapshot_sources(snapshot_id, &mut issues).await?;
        if db_names.is_empty() {
            issues.push(issue(
                "NO_DATABASES",
                "db_names must name at least one echo DB",
            ));
        }
        if !VALID_TARGET_STATES.contains(&target_state) {
            issues.push(issue(
                "INVALID_TARGET_STATE",
                format!("target_state '{target_state}' must be 'online' or 'recovery'"),
            ));
        }
        let echo_dbs = self.store.list_echo_dbs().await?;
        for name in db_names {
            let Some(echo) = echo_dbs
                .iter()
                .find(|e| e.host_id == host_id && &e.name == name)
            else {
                issues.push(issue(
                    "ECHO_DB_NOT_FOUND",
                    format!("'{name}' is not an echo DB on host '{host_id}'"),
                ));
                continue;
            };
            if let Some(sources) = &sources
                && !sources.iter().any(|s| s.db_id == echo.src_db_id)
                && sources.len() != 1
            {
                issues.push(issue(
                    "DB_NOT_FOUND",
                    format!(
                        "the snapshot does not hold database '{}', the source of '{name}'",
                        echo.src_db_id
                    ),
                ));
            }
        }
        Ok(issues)
    }
}
