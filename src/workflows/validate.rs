//! The checks every Echo operation runs before a task exists: the same ones answer the
//! `…/__validate` dry runs, so a dry run and the real request never disagree. Each issue has
//! a code ([`IssueCode`]), and each code the HTTP status a request failing it gets.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::{
    delete_snapshot::snapshot_users,
    requests::{Destination, SnapshotSpec},
};
use crate::{
    clock::now_ts,
    model::SourceDb,
    store::{Claim, HostRecord, Shared, Store, StoreError},
};

crate::wire_enum! {
    /// Why an Echo request cannot succeed.
    pub enum IssueCode ("issue code") {
        HostNotFound = "HOST_NOT_FOUND",
        DbNotFound = "DB_NOT_FOUND",
        SnapshotNotFound = "SNAPSHOT_NOT_FOUND",
        EchoDbNotFound = "ECHO_DB_NOT_FOUND",
        DbNameIsInUse = "DB_NAME_IS_IN_USE",
        SnapshotInUse = "SNAPSHOT_IN_USE",
        HostNotConnected = "HOST_NOT_CONNECTED",
        SdpNotConfigured = "SDP_NOT_CONFIGURED",
        InvalidNamePrefix = "INVALID_NAME_PREFIX",
        InvalidConsistencyLevel = "INVALID_CONSISTENCY_LEVEL",
        InvalidTargetState = "INVALID_TARGET_STATE",
        InvalidDbName = "INVALID_DB_NAME",
        NoDatabases = "NO_DATABASES",
        NoDestinations = "NO_DESTINATIONS",
        KeepBackupUnsupported = "KEEP_BACKUP_NOT_SUPPORTED",
        EchoDbProtected = "ECHO_DB_PROTECTED",
        InvalidTtl = "INVALID_TTL",
    }
}

impl IssueCode {
    /// The HTTP status a request that fails this check gets: 404 for what does not exist, 409
    /// for what the current state forbids, 400 for a request malformed in itself.
    pub fn status(self) -> u16 {
        match self {
            IssueCode::HostNotFound
            | IssueCode::DbNotFound
            | IssueCode::SnapshotNotFound
            | IssueCode::EchoDbNotFound => 404,
            IssueCode::DbNameIsInUse
            | IssueCode::SnapshotInUse
            | IssueCode::HostNotConnected
            | IssueCode::SdpNotConfigured
            | IssueCode::EchoDbProtected => 409,
            IssueCode::InvalidNamePrefix
            | IssueCode::InvalidConsistencyLevel
            | IssueCode::InvalidTargetState
            | IssueCode::InvalidDbName
            | IssueCode::NoDatabases
            | IssueCode::NoDestinations
            | IssueCode::KeepBackupUnsupported
            | IssueCode::InvalidTtl => 400,
        }
    }

    /// Malformed in itself, whatever the state: a dry run refuses it as the request would.
    pub fn is_malformed(self) -> bool {
        self.status() == 400
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Issue {
    pub issue_type: IssueCode,
    pub description: String,
    pub body: Value,
}

impl Issue {
    pub fn new(issue_type: IssueCode, description: impl Into<String>) -> Issue {
        Issue {
            issue_type,
            description: description.into(),
            body: json!({}),
        }
    }
}

fn issue(issue_type: IssueCode, description: impl Into<String>) -> Issue {
    Issue::new(issue_type, description)
}

/// A protected echo DB is neither deleted nor refreshed until it is unprotected.
fn protected(name: &str, host_id: &str) -> Issue {
    issue(
        IssueCode::EchoDbProtected,
        format!(
            "echo DB '{name}' on host '{host_id}' is protected; unprotect it first \
             (PATCH its database with {{\"protected\": false}})"
        ),
    )
}

/// What the checks need besides the store.
pub struct Checker<'a> {
    pub store: &'a Store,
    pub silence: Duration,
    pub sdp_configured: bool,
}

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
    /// The host, if registered and connected; issues otherwise.
    async fn host(
        &self,
        host_id: &str,
        issues: &mut Vec<Issue>,
    ) -> Result<Option<HostRecord>, StoreError> {
        let Some(host) = self.store.get_host(host_id).await? else {
            issues.push(issue(
                IssueCode::HostNotFound,
                format!("host '{host_id}' is not registered"),
            ));
            return Ok(None);
        };
        if !host.is_connected(self.silence, now_ts()) {
            issues.push(issue(
                IssueCode::HostNotConnected,
                format!("the agent of host '{host_id}' is not connected"),
            ));
        }
        Ok(Some(host))
    }

    fn sdp(&self, issues: &mut Vec<Issue>) {
        if !self.sdp_configured {
            issues.push(issue(
                IssueCode::SdpNotConfigured,
                "Flex has no SDP configured (--sdp-url)",
            ));
        }
    }

    pub async fn snapshot(&self, spec: &SnapshotSpec) -> Result<Vec<Issue>, StoreError> {
        let mut issues = Vec::new();
        self.sdp(&mut issues);
        if !is_valid_name_prefix(&spec.name_prefix) {
            issues.push(issue(
                IssueCode::InvalidNamePrefix,
                format!(
                    "name_prefix '{}' must be 4-20 characters matching ^[a-z][a-z0-9_-]+$",
                    spec.name_prefix
                ),
            ));
        }
        if spec.database_ids.is_empty() {
            issues.push(issue(
                IssueCode::NoDatabases,
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
                        IssueCode::DbNotFound,
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
    ) -> Result<Vec<Issue>, StoreError> {
        let mut issues = Vec::new();
        if destinations.is_empty() {
            issues.push(issue(
                IssueCode::NoDestinations,
                "destinations must hold at least one destination",
            ));
        }
        let mut checked_hosts: Vec<&str> = Vec::new();
        for (n, destination) in destinations.iter().enumerate() {
            if !sources.contains(&destination.db_id) {
                issues.push(issue(
                    IssueCode::DbNotFound,
                    format!(
                        "destinations[{n}]: database '{}' is not among the sources",
                        destination.db_id
                    ),
                ));
            }
            if !is_valid_db_name(&destination.db_name) {
                issues.push(issue(
                    IssueCode::InvalidDbName,
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
                    issue_type: IssueCode::DbNameIsInUse,
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
        if let Some(snapshot) = self.store.get_db_snapshot(snapshot_id).await? {
            Ok(Some(snapshot.databases))
        } else {
            issues.push(issue(
                IssueCode::SnapshotNotFound,
                format!("db snapshot '{snapshot_id}' does not exist"),
            ));
            Ok(None)
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
                issue_type: IssueCode::SnapshotInUse,
                description: format!(
                    "db snapshot '{snapshot_id}' is used by echo DBs: {}",
                    users.join(", ")
                ),
                body: json!({"echo_dbs": users}),
            });
        }
        let importing = self
            .store
            .claimants(Shared::DbSnapshot(snapshot_id), Claim::Use)
            .await?;
        if !importing.is_empty() {
            issues.push(Issue {
                issue_type: IssueCode::SnapshotInUse,
                description: super::importing_message(snapshot_id, &importing),
                body: json!({"tasks": importing}),
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
        match self.store.get_echo_db(host_id, db_id).await? {
            None => issues.push(issue(
                IssueCode::EchoDbNotFound,
                format!("database '{db_id}' on host '{host_id}' is not an echo DB"),
            )),
            Some(echo) if echo.lifecycle.protected => issues.push(protected(&echo.name, host_id)),
            Some(_) => {}
        }
        Ok(issues)
    }

    pub async fn refresh(
        &self,
        host_id: &str,
        snapshot_id: &str,
        db_names: &[String],
    ) -> Result<Vec<Issue>, StoreError> {
        let mut issues = Vec::new();
        self.sdp(&mut issues);
        self.host(host_id, &mut issues).await?;
        let sources = self.snapshot_sources(snapshot_id, &mut issues).await?;
        if db_names.is_empty() {
            issues.push(issue(
                IssueCode::NoDatabases,
                "db_names must name at least one echo DB",
            ));
        }
        let echo_dbs = self.store.list_echo_dbs().await?;
        for name in db_names {
            let Some(echo) = echo_dbs
                .iter()
                .find(|e| e.host_id == host_id && &e.name == name)
            else {
                issues.push(issue(
                    IssueCode::EchoDbNotFound,
                    format!("'{name}' is not an echo DB on host '{host_id}'"),
                ));
                continue;
            };
            if echo.lifecycle.protected {
                issues.push(protected(name, host_id));
            }
            if let Some(sources) = &sources
                && !sources.iter().any(|s| s.db_id == echo.src_db_id)
                && sources.len() != 1
            {
                issues.push(issue(
                    IssueCode::DbNotFound,
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
