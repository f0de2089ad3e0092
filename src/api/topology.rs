//! Topology: every host, its SDPs and its databases in one document, in the shape of the real
//! Flex's response (`tests/fixtures/topology-example.json`). Built from one query per table, joined
//! in memory, and serialized from borrowed, typed views: with a thousand hosts the document runs
//! to megabytes, so it must not be assembled as a tree of `serde_json::Value`s.

use std::collections::{HashMap, HashSet};

use axum::{
    Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};

use super::{
    AppState,
    error::ApiError,
    extract::{QueryParams, limit_param},
    hosts::with_detached,
};
use crate::{
    clock::now_ts,
    model::{ConsistencyLevel, FileKind, Lifecycle, SdpHostName, SourceDb, serial_for_path},
    store::{DatabaseRecord, DbSnapshotRecord, EchoDbRecord, HostRecord, Store},
};

/// How many hosts match the search, whatever the page holds.
static TOTAL_COUNT: header::HeaderName = header::HeaderName::from_static("x-total-count");

pub fn routes() -> Router<AppState> {
    Router::new().route("/topology", get(topology))
}

#[derive(Serialize)]
struct Entry<'a> {
    host: HostView<'a>,
    sdps: &'a [SdpHostName],
    databases: Vec<DatabaseView<'a>>,
}

#[derive(Serialize)]
struct HostView<'a> {
    id: &'a str,
    name: &'a str,
    last_seen_ts: i64,
    is_connected: bool,
    os: &'a str,
    os_version: &'a str,
    agent_version: &'a str,
    iqn: &'a str,
    cloud_vendor: &'a str,
    db_vendor: &'a str,
    db_engine_version: &'a str,
    vm_id: &'a str,
    cidrs: &'a [String],
    instance_type: &'a str,
    cpus: u64,
    memory: u64,
    location: &'a str,
    zone: &'a str,
}

#[derive(Serialize)]
struct DatabaseView<'a> {
    id: &'a str,
    name: &'a str,
    vendor: &'a str,
    status: &'a str,
    files: Vec<FileView<'a>>,
    db_snapshots: &'a [SnapshotRef<'a>],
    db_snapshot_allowed: bool,
    db_snapshot_disallowed_reason: String,
    parent: Option<&'a Parent<'a>>,
    /// An echo DB's `expires_ts`, `ttl_secs` and `protected`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    lifecycle: Option<Lifecycle>,
}

/// A file as the agent reported it, with the SDP columns joined when its inventory arrived.
#[derive(Serialize)]
struct FileView<'a> {
    sdp_id: &'a str,
    name: &'a str,
    size_mb: u64,
    kind: FileKind,
    path: &'a str,
    volume_id: Option<u64>,
    volume_name: Option<&'a str>,
    volume_group_id: Option<u64>,
    volume_group_name: Option<&'a str>,
    volume_scsi_sn: Option<&'a str>,
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    id: &'a str,
    timestamp: i64,
    consistency_level: ConsistencyLevel,
    deletable: bool,
    /// The ids of the databases the snapshot holds (clients pick a snapshot by them).
    #[serde(rename = "db_ids", serialize_with = "db_ids")]
    databases: &'a [SourceDb],
    /// The echo DBs made from it, wherever they are: why it is not deletable (absent when
    /// none: a large estate's topology carries a hundred thousand snapshot entries).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    echo_dbs: &'a [EchoDbRef<'a>],
    /// The task that took it: its steps say how long the databases were frozen.
    task_id: &'a str,
}

#[derive(Serialize)]
struct EchoDbRef<'a> {
    host_id: &'a str,
    db_id: &'a str,
    name: &'a str,
}

/// The echo DBs made from each snapshot, by snapshot id.
fn made_from(echo_dbs: &[EchoDbRecord]) -> HashMap<&str, Vec<EchoDbRef<'_>>> {
    let mut made_from: HashMap<&str, Vec<EchoDbRef<'_>>> = HashMap::new();
    for echo in echo_dbs {
        made_from
            .entry(echo.snapshot_id.as_str())
            .or_default()
            .push(EchoDbRef {
                host_id: &echo.host_id,
                db_id: &echo.db_id,
                name: &echo.name,
            });
    }
    made_from
}

fn db_ids<S: serde::Serializer>(databases: &[SourceDb], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(databases.iter().map(|db| db.db_id.as_str()))
}

#[derive(Serialize)]
#[allow(clippy::struct_field_names)] // the documented field names
struct Parent<'a> {
    src_host_id: &'a str,
    src_db_id: &'a str,
    snap_id: &'a str,
}

/// Snapshots by the databases they hold, and the parents of echo DBs: built once per request.
struct EchoFacts<'a> {
    snapshots: HashMap<(&'a str, &'a str), Vec<SnapshotRef<'a>>>,
    parents: HashMap<(&'a str, &'a str), Parent<'a>>,
    lifecycles: HashMap<(&'a str, &'a str), Lifecycle>,
}

impl<'a> EchoFacts<'a> {
    fn new(
        snapshots: &'a [DbSnapshotRecord],
        echo_dbs: &'a [EchoDbRecord],
        made_from: &'a HashMap<&'a str, Vec<EchoDbRef<'a>>>,
    ) -> EchoFacts<'a> {
        let mut by_db: HashMap<(&'a str, &'a str), Vec<SnapshotRef<'a>>> = HashMap::new();
        for snapshot in snapshots {
            let echo_dbs = made_from
                .get(snapshot.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            for member in &snapshot.databases {
                by_db
                    .entry((snapshot.host_id.as_str(), member.db_id.as_str()))
                    .or_default()
                    .push(SnapshotRef {
                        id: &snapshot.id,
                        timestamp: snapshot.created_ts,
                        consistency_level: snapshot.consistency_level,
                        deletable: echo_dbs.is_empty(),
                        databases: &snapshot.databases,
                        echo_dbs,
                        task_id: &snapshot.task_id,
                    });
            }
        }
        let parents = echo_dbs
            .iter()
            .map(|echo| {
                (
                    (echo.host_id.as_str(), echo.db_id.as_str()),
                    Parent {
                        src_host_id: &echo.src_host_id,
                        src_db_id: &echo.src_db_id,
                        snap_id: &echo.snapshot_id,
                    },
                )
            })
            .collect();
        let lifecycles = echo_dbs
            .iter()
            .map(|echo| ((echo.host_id.as_str(), echo.db_id.as_str()), echo.lifecycle))
            .collect();
        EchoFacts {
            snapshots: by_db,
            parents,
            lifecycles,
        }
    }
}

/// Opt-in paging and search: without them the answer is every host, as documented.
#[derive(Deserialize)]
struct TopologyQuery {
    /// Hosts whose id or name, or one of whose databases' names, contains this (any case).
    q: Option<String>,
    /// Only hosts whose id sorts after this one: the last id of the previous page.
    after: Option<String>,
    limit: Option<i64>,
}

/// The most hosts one page may ask for.
const MAX_PAGE: i64 = 1000;

async fn topology(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<TopologyQuery>,
) -> Result<Response, ApiError> {
    let limit = query
        .limit
        .map(|given| limit_param(Some(given), given, MAX_PAGE))
        .transpose()?
        .map(|limit| usize::try_from(limit).expect("checked: 1 to 1000"));
    let hosts = state.store.list_hosts().await?;
    let echo_dbs = state.store.list_echo_dbs().await?;
    let (page, total) = page_of(&state.store, &hosts, &echo_dbs, &query, limit).await?;
    // The whole estate is read in one query per table; a page only its own hosts' rows, so
    // a page of a thousand-host estate costs its hosts, not the estate.
    let (inventory, snapshots) = if limit.is_some() {
        let (mut inventory, mut snapshots) = (Vec::new(), Vec::new());
        for host in &page {
            inventory.extend(state.store.list_databases(&host.host_id).await?);
            snapshots.extend(state.store.list_db_snapshots_on(&host.host_id).await?);
        }
        (inventory, snapshots)
    } else {
        (
            state.store.list_all_databases().await?,
            state.store.list_db_snapshots().await?,
        )
    };
    // Echo DBs a host no longer reports are shown too, detached, so none is out of sight.
    let databases = with_detached(inventory, &echo_dbs);

    let mut databases_by_host: HashMap<&str, Vec<&DatabaseRecord>> = HashMap::new();
    for db in &databases {
        databases_by_host
            .entry(db.host_id.as_str())
            .or_default()
            .push(db);
    }
    let made_from = made_from(&echo_dbs);
    let echo = EchoFacts::new(&snapshots, &echo_dbs, &made_from);
    let now = now_ts();
    let entries: Vec<Entry<'_>> = page
        .into_iter()
        .map(|host| {
            let connected = host.is_connected(state.config.agent_silence, now);
            let databases = databases_by_host
                .get(host.host_id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|db| database_view(db, host, connected, &echo))
                .collect();
            Entry {
                sdps: &host.sdps,
                host: host_view(host, connected),
                databases,
            }
        })
        .collect();
    let body = serde_json::to_vec(&entries).map_err(|err| ApiError::Internal(err.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (TOTAL_COUNT.clone(), total.to_string()),
        ],
        body,
    )
        .into_response())
}

/// The hosts `q`, `after` and `limit` ask for, in id order, and how many match `q`.
async fn page_of<'h>(
    store: &Store,
    hosts: &'h [HostRecord],
    echo_dbs: &[EchoDbRecord],
    query: &TopologyQuery,
    limit: Option<usize>,
) -> Result<(Vec<&'h HostRecord>, usize), ApiError> {
    let needle = query
        .q
        .as_deref()
        .map(str::to_lowercase)
        .unwrap_or_default();
    // Hosts one of whose databases (or echo DBs, reported or not) is named like the search.
    let mut named: HashSet<String> = HashSet::new();
    if !needle.is_empty() {
        let names = store.list_database_names().await?;
        let echo_names = echo_dbs
            .iter()
            .map(|echo| (echo.host_id.clone(), echo.name.clone()));
        for (host_id, name) in names.into_iter().chain(echo_names) {
            if name.to_lowercase().contains(&needle) {
                named.insert(host_id);
            }
        }
    }
    let mut matching: Vec<&HostRecord> = hosts
        .iter()
        .filter(|host| {
            needle.is_empty()
                || named.contains(&host.host_id)
                || host.host_id.to_lowercase().contains(&needle)
                || host.host_name.to_lowercase().contains(&needle)
        })
        .collect();
    // Byte order, whatever the database's collation, so that `after` pages without a gap.
    matching.sort_unstable_by(|a, b| a.host_id.cmp(&b.host_id));
    let total = matching.len();
    let page = matching
        .into_iter()
        .filter(|host| {
            query
                .after
                .as_deref()
                .is_none_or(|after| host.host_id.as_str() > after)
        })
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    Ok((page, total))
}

fn host_view(host: &HostRecord, connected: bool) -> HostView<'_> {
    let facts = &host.facts;
    HostView {
        id: &host.host_id,
        name: &host.host_name,
        last_seen_ts: host.last_seen_ts,
        is_connected: connected,
        os: &host.host_os,
        os_version: &host.host_os_version,
        agent_version: &host.agent_version,
        iqn: &host.host_iqn,
        cloud_vendor: &host.cloud_vendor,
        db_vendor: &host.db_vendor,
        db_engine_version: &host.db_engine_version,
        vm_id: &facts.vm_id,
        cidrs: &facts.cidrs,
        instance_type: &facts.instance_type,
        cpus: facts.cpus,
        memory: facts.memory,
        location: &facts.location,
        zone: &facts.zone,
    }
}

fn database_view<'a>(
    db: &'a DatabaseRecord,
    host: &'a HostRecord,
    connected: bool,
    echo: &'a EchoFacts<'a>,
) -> DatabaseView<'a> {
    let files = db
        .files
        .iter()
        .map(|stored| {
            let file = &stored.file;
            let sdp = stored.sdp.as_ref();
            FileView {
                volume_scsi_sn: serial_for_path(&file.path, &db.mount_points),
                sdp_id: sdp.map_or("", |s| s.sdp_id.as_str()),
                name: &file.name,
                size_mb: file.size_mb,
                kind: file.kind,
                path: &file.path,
                volume_id: sdp.map(|s| s.volume_id),
                volume_name: sdp.map(|s| s.volume_name.as_str()),
                volume_group_id: sdp.and_then(|s| s.volume_group_id),
                volume_group_name: sdp.and_then(|s| s.volume_group_name.as_deref()),
            }
        })
        .collect();
    let db_snapshots = echo
        .snapshots
        .get(&(host.host_id.as_str(), db.db_id.as_str()))
        .map(Vec::as_slice)
        .unwrap_or_default();
    let disallowed_reason = if !connected {
        format!("the agent of host '{}' is not connected", host.host_id)
    } else if !db.status.eq_ignore_ascii_case("ONLINE") {
        format!("database '{}' is {}, not ONLINE", db.name, db.status)
    } else {
        String::new()
    };
    DatabaseView {
        id: &db.db_id,
        name: &db.name,
        vendor: &db.vendor,
        status: &db.status,
        files,
        db_snapshots,
        db_snapshot_allowed: disallowed_reason.is_empty(),
        db_snapshot_disallowed_reason: disallowed_reason,
        parent: echo
            .parents
            .get(&(host.host_id.as_str(), db.db_id.as_str())),
        lifecycle: echo
            .lifecycles
            .get(&(host.host_id.as_str(), db.db_id.as_str()))
            .copied(),
    }
}
