//! The event stream and webhook operations against the spec. The stream never ends, so its
//! 200 is read up to its first event, whose data must be an `Event`.

use reqwest::Method;
use serde_json::{Value, json};

use super::Checker;
use crate::support::sse::SseStream;

/// Opens the stream from the start of the log and checks its first event.
async fn check_stream(c: &mut Checker<'_>, template: &str) {
    let mut stream = SseStream::open(&c.server.url(""), &format!("{template}?after=0"), None).await;
    let first = stream
        .next(std::time::Duration::from_secs(10))
        .await
        .expect("the log has events");
    let schema = json!({"$ref": "#/components/schemas/Event"});
    if let Err(mismatch) = c.spec.validate(&schema, &first.data) {
        panic!("GET {template} 200: {mismatch}");
    }
    assert_eq!(first.data["type"], first.event.as_str());
    c.covered
        .insert((template.to_owned(), "get".to_owned(), "200".to_owned()));
}

pub async fn event_operations(c: &mut Checker<'_>) {
    let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
    let events = "/api/echo/v1/events";
    check_stream(c, events).await;
    c.check(
        &get,
        events,
        c.admin(&get, &format!("{events}?types=task.done")),
    )
    .await;

    let hooks = "/api/v1/webhooks";
    let made = c
        .check(
            &post,
            hooks,
            c.admin(&post, hooks).json(&json!({
                "url": "https://hooks.example.com/flex",
                "event_types": ["task.completed", "task.failed"],
                "description": "contract"
            })),
        )
        .await;
    let id = made["id"].as_str().unwrap().to_owned();
    c.check(
        &post,
        hooks,
        c.admin(&post, hooks)
            .json(&json!({"url": "http://169.254.169.254/", "event_types": ["task.failed"]})),
    )
    .await;
    let listed = c.check(&get, hooks, c.admin(&get, hooks)).await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w.get("secret").is_none())
    );

    let one = "/api/v1/webhooks/{id}";
    let deliveries = "/api/v1/webhooks/{id}/deliveries";
    let path = format!("/api/v1/webhooks/{id}");
    c.check(&get, one, c.admin(&get, &path)).await;
    c.check(
        &get,
        deliveries,
        c.admin(&get, &format!("{path}/deliveries")),
    )
    .await;
    c.check(
        &get,
        deliveries,
        c.admin(&get, &format!("{path}/deliveries?limit=0")),
    )
    .await;
    c.check(&delete, one, c.admin(&delete, &path)).await;
    let gone: Value = c.check(&get, one, c.admin(&get, &path)).await;
    assert_eq!(gone["code"], "WEBHOOK_NOT_FOUND");
    c.check(&delete, one, c.admin(&delete, &path)).await;
    c.check(
        &get,
        deliveries,
        c.admin(&get, &format!("{path}/deliveries")),
    )
    .await;
}
