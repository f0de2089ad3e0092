//! The lifecycle operations against the spec: PATCH and keep-alive of an echo DB, snapshot
//! schedules, and the 422 every task-creating operation answers to a reused Idempotency-Key.

use flex::{
    model::{CommandType, TaskState},
    store::{Idempotency, NewTask, Once},
};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Checker, run, send};
use crate::support::{Echo, builders::task};

/// A body each task-creating operation parses (so the request reaches its key).
fn task_body(method: &Method, template: &str) -> Option<Value> {
    let clone = json!({"source_host_id": "src-01",
        "destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "keyed"}]});
    let destinations =
        json!({"destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "keyed"}]});
    if template.contains("_refresh") || template.contains("_replace") {
        return Some(json!({"snapshot_id": "snap", "db_names": ["keyed"]}));
    }
    if template.ends_with("/echo_db") || template.ends_with("/{id}/clone") {
        return Some(destinations);
    }
    if template.ends_with("/db_snapshots") {
        return Some(json!({"source_host_id": "src-01", "database_ids": ["5"]}));
    }
    if template.ends_with("/echo_dbs") || template.ends_with("/clone") {
        return Some(if *method == Method::DELETE {
            json!({"host_id": "dev-01", "database_id": "5"})
        } else {
            clone
        });
    }
    None
}

pub async fn lifecycle_operations(c: &mut Checker<'_>, echo: &Echo) {
    let (get, post, delete, patch) = (Method::GET, Method::POST, Method::DELETE, Method::PATCH);
    let clone = json!({"source_host_id": "src-01", "ttl_secs": 3600, "protected": false,
        "destinations": [{"host_id": "dev-02", "db_id": "5", "db_name": "life_copy"}]});
    let clones = "/api/echo/v1/echo_dbs";
    let done = run(c, echo, &post, clones, clones, clone).await;
    let id = done["result"]["cloned_dbs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let listing = "/api/v1/hosts/{host_id}/databases";
    let listed = c
        .check(
            &get,
            listing,
            c.admin(&get, "/api/v1/hosts/dev-02/databases"),
        )
        .await;
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "life_copy");
    assert_eq!(mine.unwrap()["ttl_secs"], 3600, "{listed}");

    let one = "/api/echo/v1/hosts/{host_id}/databases/{db_id}";
    let path = format!("/api/echo/v1/hosts/dev-02/databases/{id}");
    let alive = format!("{path}/_keepalive");
    let keepalive = "/api/echo/v1/hosts/{host_id}/databases/{db_id}/_keepalive";
    let kept = c.check(&post, keepalive, c.admin(&post, &alive)).await;
    assert_eq!(kept["name"], "life_copy", "{kept}");
    send(c, &post, keepalive, &alive, json!({"ttl_secs": 0})).await;
    let unknown = "/api/echo/v1/hosts/dev-02/databases/404";
    send(
        c,
        &post,
        keepalive,
        &format!("{unknown}/_keepalive"),
        json!({}),
    )
    .await;
    let patched = send(c, &patch, one, &path, json!({"protected": true})).await;
    assert_eq!(patched["protected"], true, "{patched}");
    send(c, &patch, one, &path, json!({"protect": false})).await;
    send(c, &patch, one, unknown, json!({})).await;
    let never = send(
        c,
        &patch,
        one,
        &path,
        json!({"expires_ts": null, "protected": false}),
    )
    .await;
    assert_eq!(never["expires_ts"], Value::Null, "{never}");
    send(c, &post, keepalive, &alive, Value::Null).await;

    let schedules = "/api/echo/v1/snapshot_schedules";
    let schedule = "/api/echo/v1/snapshot_schedules/{id}";
    let created = send(
        c,
        &post,
        schedules,
        schedules,
        json!({"source_host_id": "src-01", "database_ids": ["5"], "cron": "0 3 * * *", "keep_last": 3}),
    )
    .await;
    send(
        c,
        &post,
        schedules,
        schedules,
        json!({"source_host_id": "src-01", "database_ids": ["5"]}),
    )
    .await;
    send(
        c,
        &post,
        schedules,
        schedules,
        json!({"source_host_id": "ghost", "database_ids": ["5"], "interval_secs": 60}),
    )
    .await;
    c.check(&get, schedules, c.admin(&get, schedules)).await;
    let this = format!("{schedules}/{}", created["id"].as_str().unwrap());
    c.check(&get, schedule, c.admin(&get, &this)).await;
    c.check(&delete, schedule, c.admin(&delete, &this)).await;
    c.check(&get, schedule, c.admin(&get, &this)).await;
    c.check(&delete, schedule, c.admin(&delete, &this)).await;

    // A key already holding another request's task: every task-creating operation says 422.
    let store = echo.server.db.store().await;
    let holder = NewTask {
        record: task(
            "keyed-task",
            TaskState::Completed,
            CommandType::CreateDbSnapshot,
            "ref",
        ),
        host_ids: vec![],
    };
    let key = Once::Key(Idempotency {
        key: "api:spec-reused".into(),
        fingerprint: "another request".into(),
    });
    store.create_task(&holder, &key).await.unwrap();
    let reused: Vec<(String, String)> = c
        .spec
        .documented()
        .into_iter()
        .filter(|(_, _, status)| status == "422")
        .map(|(template, method, _)| (template, method))
        .collect();
    assert!(reused.len() >= 9, "{reused:?}");
    for (template, method) in reused {
        let method: Method = method.to_uppercase().parse().unwrap();
        let path = template
            .replace("{host_id}", "dev-01")
            .replace("{id}", "snap");
        let mut request = c
            .admin(&method, &path)
            .header("Idempotency-Key", "spec-reused");
        if let Some(body) = task_body(&method, &template) {
            request = request.json(&body);
        }
        let refused = c.check(&method, &template, request).await;
        assert_eq!(
            refused["code"], "IDEMPOTENCY_KEY_REUSED",
            "{method} {template}: {refused}"
        );
    }
}
