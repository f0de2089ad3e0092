//! Webhooks against a real receiver on a loopback port: deliveries verify with a Standard
//! Webhooks library, a receiver that fails twice gets the same event a third time and then no
//! more, events arrive in order, a restart mid-retry still delivers, and bad endpoints are
//! refused.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode as AxumStatus},
    routing::post,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Backend, TestServer, error_body};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    answered: u16,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Requests still to refuse with a 500.
    failures_left: Arc<Mutex<u32>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let status = {
        let mut left = receiver.failures_left.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            AxumStatus::INTERNAL_SERVER_ERROR
        } else {
            AxumStatus::NO_CONTENT
        }
    };
    receiver.got.lock().unwrap().push(Received {
        headers,
        body,
        answered: status.as_u16(),
    });
    status
}

impl Receiver {
    /// Serves on a loopback port; returns the URL to register.
    async fn start(failures: u32) -> (Receiver, String) {
        let receiver = Receiver::default();
        *receiver.failures_left.lock().unwrap() = failures;
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, format!("http://127.0.0.1:{port}/hook"))
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests came.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("expected {n} deliveries, got {:#?}", self.got());
    }
}

fn fast_retries(config: &mut flex::Config) {
    config.webhook_retry_base = Duration::from_millis(200);
}

async fn register(server: &TestServer, url: &str, types: &[&str]) -> Value {
    let response = server
        .admin(Method::POST, "/api/v1/webhooks")
        .json(&json!({"url": url, "event_types": types, "description": "test receiver"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

fn header<'a>(received: &'a Received, name: &str) -> &'a str {
    received.headers[name].to_str().unwrap()
}

async fn a_failing_receiver_gets_the_event_until_it_succeeds_once(backend: Backend) {
    let server = TestServer::start_with(backend, fast_retries).await;
    let (receiver, url) = Receiver::start(2).await;
    let webhook = register(&server, &url, &["host.registered", "host.unregistered"]).await;
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{webhook}");
    let id = webhook["id"].as_str().unwrap().to_owned();

    server.register_host("hooked01").await;
    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    let answered: Vec<u16> = got.iter().map(|r| r.answered).collect();
    assert_eq!(answered, [500, 500, 204]);
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    for attempt in &got {
        verifier
            .verify(&attempt.body, &attempt.headers)
            .expect("the signature verifies");
        assert_eq!(header(attempt, "webhook-id"), header(&got[0], "webhook-id"));
        assert_eq!(attempt.body, got[0].body, "each retry sends the same event");
    }
    let event: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(event["type"], "host.registered");
    assert_eq!(event["host"]["host_id"], "hooked01");
    assert_eq!(event["id"].to_string(), header(&got[0], "webhook-id"));
    assert!(
        standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap()
            .verify(&got[0].body, &got[0].headers)
            .is_err(),
        "another secret does not verify"
    );
    // The attempts are listed, newest first (the last one once Flex has recorded the answer).
    let mut deliveries = Value::Null;
    for _ in 0..100 {
        deliveries = server
            .get(&format!("/api/v1/webhooks/{id}/deliveries"))
            .await
            .json()
            .await
            .unwrap();
        if deliveries.as_array().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let statuses: Vec<i64> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [204, 500, 500], "{deliveries}");
    assert_eq!(deliveries[0]["succeeded"], true);
    assert_eq!(
        deliveries[1]["error"],
        "the endpoint answered 500 Internal Server Error"
    );

    // Then events come in order, once each, and only the subscribed types.
    server.register_host("hooked02").await;
    let response = server
        .admin(Method::DELETE, "/flex/api/v1/hosts/hooked01")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let got = receiver.wait_for(5, Duration::from_secs(20)).await;
    let later: Vec<(String, String)> = got[3..]
        .iter()
        .map(|r| {
            let event: Value = serde_json::from_slice(&r.body).unwrap();
            (
                event["type"].as_str().unwrap().to_owned(),
                event["host"]["host_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        later,
        [
            ("host.registered".to_owned(), "hooked02".to_owned()),
            ("host.unregistered".to_owned(), "hooked01".to_owned()),
        ]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.got().len(),
        5,
        "nothing more, and no repeat of a success"
    );
    let shown: Value = server
        .get(&format!("/api/v1/webhooks/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown once: {shown}"
    );
    assert_eq!(shown["failed_attempts"], 0);
}

crate::on_both_backends!(a_failing_receiver_gets_the_event_until_it_succeeds_once);

/// A delivery that failed before a restart is retried by the restarted server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_retry_still_delivers() {
    let mut server = TestServer::start_with(Backend::Sqlite, |config| {
        config.webhook_retry_base = Duration::from_secs(2);
    })
    .await;
    let (receiver, url) = Receiver::start(1).await;
    let webhook = register(&server, &url, &["host.registered"]).await;
    server.register_host("restart01").await;
    let first = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(first[0].answered, 500);
    server.halt().await.unwrap();

    let mut config = flex::Config::new(server.db.url.clone());
    config.admin_token = Some(crate::support::ADMIN_TOKEN.to_owned());
    config.webhook_retry_base = Duration::from_secs(2);
    let again = TestServer::start_on(server.db.share(), config).await;
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(got[1].answered, 204);
    assert_eq!(header(&got[1], "webhook-id"), header(&got[0], "webhook-id"));
    // Once Flex has recorded the answer, the endpoint owes nothing.
    let id = webhook["id"].as_str().unwrap();
    let mut shown = Value::Null;
    for _ in 0..100 {
        shown = again
            .get(&format!("/api/v1/webhooks/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if shown["failed_attempts"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shown["failed_attempts"], 0, "{shown}");
    assert!(shown["delivered_event_id"].as_i64().unwrap() > 0, "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_endpoints_are_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    for (body, code) in [
        (
            json!({"url": "https://169.254.169.254/latest", "event_types": ["task.completed"]}),
            "INVALID_WEBHOOK_URL",
        ),
        (
            json!({"url": "http://hooks.example.com/", "event_types": ["task.completed"]}),
            "INVALID_WEBHOOK_URL",
        ),
        (
            json!({"url": "https://hooks.example.com/", "event_types": ["task.finished"]}),
            "INVALID_FIELD",
        ),
        (
            json!({"url": "https://hooks.example.com/", "event_types": []}),
            "INVALID_FIELD",
        ),
        (
            json!({"url": "https://hooks.example.com/", "event_types": ["task.failed"],
                   "secret": "whsec_c2hvcnQ="}),
            "INVALID_SECRET",
        ),
        (json!({"event_types": ["task.failed"]}), "INVALID_FIELD"),
    ] {
        let response = server
            .admin(Method::POST, "/api/v1/webhooks")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_body(response).await["code"], code, "{body}");
    }
    let listed: Value = server.get("/api/v1/webhooks").await.json().await.unwrap();
    assert_eq!(listed, json!([]), "nothing was half-made");

    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let response = server
        .admin(Method::POST, "/api/v1/webhooks")
        .json(
            &json!({"url": "https://hooks.example.com/in", "event_types": ["task.failed"],
                      "secret": secret}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let made: Value = response.json().await.unwrap();
    assert_eq!(made["secret"], secret, "a given secret is kept");
    let id = made["id"].as_str().unwrap();
    let path = format!("/api/v1/webhooks/{id}");
    let deleted = server.admin(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = server.get(&path).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_body(gone).await["code"], "WEBHOOK_NOT_FOUND");
    let gone = server.get(&format!("{path}/deliveries")).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}
