//! The event stream (`GET /api/echo/v1/events`): what a clone tells it step by step, a replay
//! from `Last-Event-ID` that meets the live stream with no gap and no duplicate, filters, bad
//! input, and on Postgres an event written by another replica.

use std::time::{Duration, Instant};

use flex::{
    model::{CommandType, TaskState},
    store::NewTask,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{
    ADMIN_TOKEN, Backend, Echo, Options, TestServer,
    builders::task,
    error_body,
    rig::sales_copy,
    sse::{SseEvent, SseStream},
};

const PATIENCE: Duration = Duration::from_secs(30);

fn is_end_of(request_id: &str) -> impl Fn(&SseEvent) -> bool + '_ {
    move |e| e.event == "task.completed" && e.data["task"]["request_id"] == request_id
}

async fn start_clone(echo: &Echo) -> String {
    let created: Value = echo
        .send(Method::POST, "/api/echo/v1/echo_dbs", sales_copy())
        .await
        .json()
        .await
        .unwrap();
    created["request_id"].as_str().unwrap().to_owned()
}

async fn a_clone_is_told_step_by_step_and_replays_without_gaps(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    let base = echo.server.url("");

    // From the start of the log: the hosts the rig registered, and their agents connecting.
    let mut from_start = SseStream::open(&base, "/api/echo/v1/events?after=0", None).await;
    let first = from_start
        .until(PATIENCE, |e| e.event == "host.connected")
        .await;
    assert_eq!(first[0].event, "host.registered", "{first:#?}");
    assert!(
        first[0].data["host"]["host_id"].is_string(),
        "{:?}",
        first[0]
    );
    let connected = first.last().unwrap();
    assert_eq!(
        connected.data["host"]["is_connected"], true,
        "{connected:?}"
    );

    // A stream opened now hears the clone from its creation to its end.
    let mut live = SseStream::open(&base, "/api/echo/v1/events", None).await;
    let request_id = start_clone(&echo).await;
    let seen = live.until(PATIENCE, is_end_of(&request_id)).await;
    let ids: Vec<i64> = seen.iter().map(|e| e.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids must grow: {ids:?}"
    );
    for event in &seen {
        assert_eq!(event.data["id"], event.id, "{event:?}");
        assert_eq!(event.data["type"], event.event.as_str());
        assert!(event.data["ts"].as_i64().unwrap() > 1_700_000_000_000);
    }
    let of_task: Vec<&SseEvent> = seen
        .iter()
        .filter(|e| e.data["ref_id"] == "Pipe01")
        .collect();
    assert_eq!(of_task[0].event, "task.created", "{of_task:#?}");
    assert_eq!(of_task[0].data["task"]["state"], "running");
    let progress: Vec<i64> = of_task
        .iter()
        .filter(|e| e.event == "task.progress")
        .map(|e| e.data["task"]["progress"]["done"].as_i64().unwrap())
        .collect();
    assert_eq!(progress, (1..=12).collect::<Vec<_>>(), "one event per step");
    let kinds: Vec<&str> = of_task.iter().map(|e| e.event.as_str()).collect();
    assert!(kinds.contains(&"db_snapshot.created"), "{kinds:?}");
    let made = of_task
        .iter()
        .find(|e| e.event == "echo_db.created")
        .expect("the echo DB's creation");
    assert_eq!(made.data["echo_db"]["name"], "sales_copy", "{made:?}");
    let end = of_task.last().unwrap();
    assert_eq!(end.event, "task.completed");
    assert_eq!(end.data["task"]["state"], "completed");
    assert_eq!(end.data["task"]["progress"]["done"], 12);

    // A replay from the middle gives exactly what the live stream gave after that id.
    let middle = seen[seen.len() / 2].id;
    let mut replay = SseStream::open(&base, "/api/echo/v1/events", Some(middle)).await;
    let replayed = replay.until(PATIENCE, is_end_of(&request_id)).await;
    let expected: Vec<SseEvent> = seen.iter().filter(|e| e.id > middle).cloned().collect();
    assert_eq!(replayed, expected);

    // The seam: a stream resuming from the last id while a delete is running reads the
    // replay and then the live events as one sequence, the log's own.
    let last = seen.last().unwrap().id;
    let clone_to_delete = echo.database_id("dev-01", "sales_copy").await;
    let deleting: Value = echo
        .send(
            Method::DELETE,
            "/api/echo/v1/echo_dbs",
            serde_json::json!({"host_id": "dev-01", "database_id": clone_to_delete}),
        )
        .await
        .json()
        .await
        .unwrap();
    let delete_id = deleting["request_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut resumed =
        SseStream::open(&base, &format!("/api/echo/v1/events?after={last}"), None).await;
    let after_seam = resumed
        .until(PATIENCE, |e| {
            e.event == "task.completed" && e.data["task"]["request_id"] == delete_id.as_str()
        })
        .await;
    let store = echo.server.db.store().await;
    let logged: Vec<i64> = store
        .events_after(last, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .take_while(|seq| *seq <= after_seam.last().unwrap().id)
        .collect();
    let streamed: Vec<i64> = after_seam.iter().map(|e| e.id).collect();
    assert_eq!(streamed, logged, "no gap and no duplicate at the seam");
    assert!(
        after_seam
            .iter()
            .any(|e| e.event == "echo_db.deleted" && e.data["echo_db"]["name"] == "sales_copy"),
        "{after_seam:#?}"
    );

    // Filters: one type, one ref id.
    let mut ends = SseStream::open(
        &base,
        "/api/echo/v1/events?after=0&types=task.completed,task.failed&ref_id=Pipe01",
        None,
    )
    .await;
    let filtered = ends
        .until(PATIENCE, |e| {
            e.data["task"]["request_id"] == delete_id.as_str()
        })
        .await;
    assert_eq!(
        filtered.len(),
        2,
        "the clone's end, then the delete's: {filtered:#?}"
    );
    assert!(filtered.iter().all(|e| e.event == "task.completed"));
}

crate::on_both_backends!(a_clone_is_told_step_by_step_and_replays_without_gaps);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stream_requests_are_refused_with_our_error() {
    let server = TestServer::start(Backend::Sqlite).await;
    let refused = server.get("/api/echo/v1/events?types=task.done").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body = error_body(refused).await;
    assert_eq!(body["code"], "INVALID_QUERY");
    assert!(
        body["message"].as_str().unwrap().contains("task.completed"),
        "{body}"
    );
    for after in ["-1", "soon"] {
        let refused = server
            .get(&format!("/api/echo/v1/events?after={after}"))
            .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{after}");
        assert_eq!(error_body(refused).await["code"], "INVALID_EVENT_ID");
    }
    let refused = server
        .admin(Method::GET, "/api/echo/v1/events")
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let unauthenticated = reqwest::get(server.url("/api/echo/v1/events"))
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

/// An event another process writes to the same Postgres database reaches a stream here
/// within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_another_replica_reaches_the_stream() {
    let server = TestServer::start(Backend::Postgres).await;
    let mut stream = SseStream::open(&server.url(""), "/api/echo/v1/events", None).await;
    let other = flex::store::Store::connect(&server.db.url).await.unwrap();
    let record = task(
        "elsewhere",
        TaskState::Running,
        CommandType::Deploy,
        "Other01",
    );
    let written = Instant::now();
    other
        .insert_task(&NewTask {
            record,
            host_ids: vec![],
        })
        .await
        .unwrap();
    let event = stream
        .next(Duration::from_secs(5))
        .await
        .expect("the event");
    let after = written.elapsed();
    assert_eq!(event.event, "task.created");
    assert_eq!(event.data["ref_id"], "Other01");
    assert_eq!(event.data["task"]["request_id"], "elsewhere");
    assert!(
        after < Duration::from_secs(1),
        "arrived {after:?} after it was written"
    );
    let _ = ADMIN_TOKEN;
    other.close().await;
}
