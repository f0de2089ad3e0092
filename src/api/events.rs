//! `GET /api/echo/v1/events`: the event log as Server-Sent Events, for dashboards and
//! pipelines that would rather be told than poll.
//!
//! A stream starts after the event its client last saw (`Last-Event-ID`, or `?after=`), or at
//! the newest event when it names none. It reads the log itself, in id order, and waits for
//! the store's announcement of new events between reads, so the replay and the live part are
//! one sequence: no event is skipped and none comes twice. On Postgres the announcements of
//! other replicas arrive through the store's relay; a read every few seconds covers one lost
//! while the relay reconnects.
//!
//! [`event_body`] is the JSON of one event, here and in webhook deliveries alike.

use std::{collections::HashSet, collections::VecDeque, convert::Infallible, time::Duration};

use axum::{
    Router,
    extract::State,
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
    routing::get,
};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    AppState, echo::snapshot_view, error::ApiError, extract::QueryParams, hosts::HostView,
    tasks::TaskView,
};
use crate::{
    model::{EventType, Lifecycle},
    store::{EchoDbRecord, EventRecord, EventSubject},
};

/// Events read from the log at a time.
const BATCH: i64 = 500;
/// How long a stream waits for an announcement before it reads the log anyway.
const READ_AT_LEAST_EVERY: Duration = Duration::from_secs(5);
/// The comment a quiet stream sends so proxies and clients know it is alive.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/echo/v1/events", get(stream_events))
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<String>,
    types: Option<String>,
    ref_id: Option<String>,
}

/// Which events a client asked for.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// `None`: every type.
    pub types: Option<HashSet<EventType>>,
    pub ref_id: Option<String>,
}

impl EventFilter {
    pub fn matches(&self, event: &EventRecord) -> bool {
        self.types
            .as_ref()
            .is_none_or(|types| types.contains(&event.event_type))
            && self
                .ref_id
                .as_ref()
                .is_none_or(|ref_id| *ref_id == event.ref_id)
    }
}

/// A comma-separated list of event types; an unknown one is a 400 naming the known ones.
pub fn parse_types(name: &str, text: &str) -> Result<HashSet<EventType>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<EventType>()
                .map_err(|err| ApiError::bad_request("INVALID_QUERY", format!("'{name}': {err}")))
        })
        .collect()
}

fn event_id(name: &str, text: &str) -> Result<i64, ApiError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_EVENT_ID",
                format!("{name} '{text}' is not an event id (a whole number, 0 or more)"),
            )
        })
}

async fn stream_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let filter = EventFilter {
        types: query
            .types
            .as_deref()
            .map(|text| parse_types("types", text))
            .transpose()?,
        ref_id: query.ref_id.filter(|r| !r.is_empty()),
    };
    // A reconnecting browser sends the header; it wins over the address it first used.
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(event_id(
            "Last-Event-ID",
            value.to_str().unwrap_or("not text"),
        )?),
        None => query
            .after
            .as_deref()
            .map(|text| event_id("after", text))
            .transpose()?,
    };
    // Listening before the first read: an event committed in between is not missed.
    let writes = state.store.event_writes();
    let after = match resume {
        Some(after) => after,
        None => state.store.last_event_seq().await?,
    };
    let cursor = Cursor {
        state,
        after,
        filter,
        writes,
        pending: VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(cursor, next_event);
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(KEEP_ALIVE_EVERY)
            .text("keep-alive"),
    ))
}

/// Where one stream is in the log.
struct Cursor {
    state: AppState,
    /// The id of the last event read (sent, or filtered out).
    after: i64,
    filter: EventFilter,
    writes: tokio::sync::watch::Receiver<u64>,
    pending: VecDeque<EventRecord>,
}

async fn next_event(mut cursor: Cursor) -> Option<(Result<Event, Infallible>, Cursor)> {
    loop {
        if let Some(event) = cursor.pending.pop_front() {
            let body = event_body(&event, cursor.state.config.agent_silence);
            let sse = Event::default()
                .id(event.seq.to_string())
                .event(event.event_type.as_str())
                .data(body.to_string());
            return Some((Ok(sse), cursor));
        }
        // The server is stopping: end the stream (the client resumes from its last id).
        if *cursor.state.stopping.borrow() {
            return None;
        }
        cursor.writes.borrow_and_update();
        match cursor.state.store.events_after(cursor.after, BATCH).await {
            Ok(batch) if !batch.is_empty() => {
                cursor.after = batch.last().map_or(cursor.after, |e| e.seq);
                let filter = &cursor.filter;
                cursor
                    .pending
                    .extend(batch.into_iter().filter(|e| filter.matches(e)));
                continue;
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "event stream could not read the log; ending it");
                return None;
            }
        }
        let mut stopping = cursor.state.stopping.clone();
        tokio::select! {
            changed = cursor.writes.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            _ = stopping.changed() => {}
            () = tokio::time::sleep(READ_AT_LEAST_EVERY) => {}
        }
    }
}

/// An echo DB as events show it: where it is, what it was made from, its lifecycle.
#[derive(Serialize)]
struct EchoDbView<'a> {
    host_id: &'a str,
    db_id: &'a str,
    name: &'a str,
    snapshot_id: &'a str,
    source_host_id: &'a str,
    source_db_id: &'a str,
    source_db_name: &'a str,
    task_id: &'a str,
    created_ts: i64,
    former_db_ids: &'a [String],
    #[serde(flatten)]
    lifecycle: Lifecycle,
}

fn echo_db_view(echo: &EchoDbRecord) -> EchoDbView<'_> {
    EchoDbView {
        host_id: &echo.host_id,
        db_id: &echo.db_id,
        name: &echo.name,
        snapshot_id: &echo.snapshot_id,
        source_host_id: &echo.src_host_id,
        source_db_id: &echo.src_db_id,
        source_db_name: &echo.src_db_name,
        task_id: &echo.task_id,
        created_ts: echo.created_ts,
        former_db_ids: &echo.former_db_ids,
        lifecycle: echo.lifecycle,
    }
}

/// One event's JSON: `type`, `id`, `ts` (unix ms), `ref_id`, and the object it is about under
/// its kind's name (`task`, `echo_db`, `db_snapshot` or `host`), as it was just after the
/// change, in the shape the API's own reads give it.
pub fn event_body(event: &EventRecord, agent_silence: Duration) -> serde_json::Value {
    let (kind, object) = match &event.subject {
        EventSubject::Task(task) => ("task", json!(TaskView::from(task.clone()))),
        EventSubject::EchoDb(echo) => ("echo_db", json!(echo_db_view(echo))),
        EventSubject::DbSnapshot(snapshot) => ("db_snapshot", json!(snapshot_view(snapshot))),
        EventSubject::Host(host) => {
            let at = event.ts_ms / 1000;
            let view = HostView::new(host.clone(), agent_silence, at);
            ("host", json!(view))
        }
    };
    let mut body = json!({
        "type": event.event_type,
        "id": event.seq,
        "ts": event.ts_ms,
        "ref_id": event.ref_id,
    });
    body[kind] = object;
    body
}
