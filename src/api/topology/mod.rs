//! Topology: every host, its SDPs and its databases in one document, in the shape of the real
//! Flex's response (`tests/fixtures/topology-example.json`). The hosts are read on every
//! request; their databases are rendered from one query per table, joined in memory, and kept
//! rendered until they change (`fragments`).

mod fragments;
mod pieces;
mod views;

pub use fragments::TopologyCache;

use std::{collections::HashSet, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;

use super::{
    AppState,
    error::ApiError,
    extract::{QueryParams, limit_param},
    hosts::with_detached,
};
use crate::{
    clock::now_ts,
    store::{EchoDbRecord, HostRecord, Store},
};
use fragments::Fragments;
use pieces::Pieces;
use views::{append_json, host_view};

/// How many hosts match the search, whatever the page holds.
static TOTAL_COUNT: header::HeaderName = header::HeaderName::from_static("x-total-count");

pub fn routes() -> Router<AppState> {
    Router::new().route("/topology", get(topology))
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
    // A whole topology renders the estate's databases when they changed and keeps them; a
    // page uses them if they are current, or else renders its own hosts' rows only, so that a
    // page of a busy thousand-host estate costs its hosts, not the estate.
    let kept = if limit.is_some() {
        state.topology.current(&state.store).await?
    } else {
        Some(state.topology.estate(&state.store).await?)
    };
    let hosts = state.store.list_hosts().await?;
    // Read once for both of their uses: the search by name and a page's own render.
    let searches = query.q.as_deref().is_some_and(|q| !q.is_empty());
    let echo_dbs = if searches || kept.is_none() {
        state.store.list_echo_dbs().await?
    } else {
        Vec::new()
    };
    let (page, total) = page_of(&state.store, &hosts, &echo_dbs, &query, limit).await?;
    let fragments = if let Some(fragments) = kept {
        fragments
    } else {
        let (mut inventory, mut snapshots) = (Vec::new(), Vec::new());
        for host in &page {
            inventory.extend(state.store.list_databases(&host.host_id).await?);
            snapshots.extend(state.store.list_db_snapshots_on(&host.host_id).await?);
        }
        // Echo DBs a host no longer reports are shown too, detached, so none is out of sight.
        let databases = with_detached(inventory, &echo_dbs);
        Arc::new(Fragments::render(&databases, &snapshots, &echo_dbs)?)
    };
    let now = now_ts();
    let mut body = Pieces::default();
    let mut entry = Vec::with_capacity(1024);
    entry.push(b'[');
    for (i, host) in page.iter().enumerate() {
        if i > 0 {
            entry.extend_from_slice(b"},");
        }
        let connected = host.is_connected(state.config.agent_silence, now);
        entry.extend_from_slice(b"{\"host\":");
        append_json(&mut entry, &host_view(host, connected))?;
        entry.extend_from_slice(b",\"sdps\":");
        append_json(&mut entry, &host.sdps)?;
        entry.extend_from_slice(b",\"databases\":");
        body.push(Bytes::from(std::mem::replace(
            &mut entry,
            Vec::with_capacity(1024),
        )));
        body.push(fragments.databases(&host.host_id, connected));
    }
    if !page.is_empty() {
        entry.push(b'}');
    }
    entry.push(b']');
    body.push(Bytes::from(entry));
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (TOTAL_COUNT.clone(), total.to_string()),
        ],
        axum::body::Body::new(body),
    )
        .into_response())
}

/// The hosts `q`, `after` and `limit` ask for, in id order, and how many match `q`
/// (`echo_dbs`: every echo DB, when `q` is given).
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
