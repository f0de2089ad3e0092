//! Hostile and broken input: a clear 4xx in our error shape, nothing stored, nothing broken.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    support::{Backend, TestServer, error_body},
    support::{Echo, Options},
};

const SQL_METACHARACTERS: [&str; 6] = [
    "'; DROP TABLE hosts; --",
    "\" OR 1=1 --",
    "x' UNION SELECT token_hash FROM tokens --",
    "%' OR '%'='",
    "\\\\'; --",
    "$1; DELETE FROM tasks",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_metacharacters_in_every_string_field_are_data() {
    let echo = Echo::start(Backend::Sqlite, Options::default()).await;
    let server = &echo.server;
    for nasty in SQL_METACHARACTERS {
        let encoded = nasty
            .replace('%', "%25")
            .replace('\\', "%5C")
            .replace('#', "%23")
            .replace('?', "%3F")
            .replace(' ', "%20");
        // As path ids: unknown, not an error of ours.
        for path in [
            format!("/api/v1/hosts/{encoded}"),
            format!("/api/v1/hosts/src-01/databases/{encoded}"),
            format!("/api/echo/v1/tasks/{encoded}"),
        ] {
            let response = server.admin(Method::GET, &path).send().await.unwrap();
            assert_eq!(response.status(), 404, "{path}");
            error_body(response).await;
        }
        let response = server
            .admin(Method::PUT, &format!("/api/v1/hosts/{encoded}"))
            .body(r#"{"db_vendor":"mssql"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{nasty} as a host id");
        // As query filters and body fields.
        let response = server
            .admin(Method::GET, "/api/echo/v1/tasks")
            .query(&[("ref_id", nasty), ("command_type", nasty)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap(), json!([]));
        for (path, body) in [
            (
                "/api/echo/v1/echo_dbs",
                json!({"source_host_id": nasty, "destinations": [{"host_id": nasty, "db_id": nasty, "db_name": nasty}], "name_prefix": nasty}),
            ),
            (
                "/api/echo/v1/db_snapshots",
                json!({"source_host_id": "src-01", "database_ids": [nasty]}),
            ),
            (
                "/api/echo/v1/hosts/src-01/databases/_refresh",
                json!({"snapshot_id": nasty, "db_names": [nasty]}),
            ),
        ] {
            let response = echo.send(Method::POST, path, body).await;
            assert!(
                response.status().is_client_error(),
                "{path} {nasty}: {}",
                response.status()
            );
            error_body(response).await;
        }
        let response = server
            .admin(Method::POST, "/api/v2/flex_app_tokens")
            .json(&json!({"app_name": nasty, "description": nasty}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "names are data, stored as given");
        let token: Value = response.json().await.unwrap();
        assert_eq!(token["app_name"], nasty);
    }
    // Everything is still there and nothing else was written.
    let hosts: Value = server.get("/api/v1/hosts").await.json().await.unwrap();
    assert_eq!(hosts.as_array().unwrap().len(), 3);
    let tasks: Value = server.get("/api/echo/v1/tasks").await.json().await.unwrap();
    assert_eq!(tasks, json!([]));
}

#[tokio::test]
async fn traversal_injection_and_broken_encodings_are_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.register_host("host01").await;
    for path in [
        "/api/v1/hosts/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/hosts/%2e%2e",
        "/api/echo/v1/tasks/..%2Ftasks",
        "/api/v1/hosts/host01/databases/..%2F..",
    ] {
        let response = server.admin(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        error_body(response).await;
    }
    let response = server
        .admin(Method::PUT, "/api/v1/hosts/..%2Fadmin")
        .body(r#"{"db_vendor":"mssql"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Header injection through hs-ref-id never reaches a response header or a log line.
    for bad in ["abc\tdef", "abc,def", "x-admin: 1", "abc\u{0}"] {
        let Ok(value) = reqwest::header::HeaderValue::from_str(bad) else {
            continue;
        };
        let response = server
            .admin(Method::GET, "/api/v1/hosts")
            .header("hs-ref-id", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad:?}");
        let echoed = response.headers()["hs-ref-id"].to_str().unwrap().to_owned();
        assert!(
            echoed.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{echoed}"
        );
    }
    let raw = reqwest::header::HeaderValue::from_bytes(b"ab\xffcd").unwrap();
    let response = server
        .admin(Method::GET, "/api/v1/hosts")
        .header("hs-ref-id", raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Invalid UTF-8 and control characters in JSON bodies.
    for body in [
        &b"{\"db_vendor\":\"\xc3\x28\"}"[..],
        b"{\"db_vendor\":\"ms\x01sql\"}",
        b"\xef\xbb\xbf{\"db_vendor\":\"mssql\"}",
    ] {
        let response = server
            .admin(Method::PUT, "/api/v1/hosts/host02")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            400,
            "{:?}",
            String::from_utf8_lossy(body)
        );
        error_body(response).await;
    }
    // A bearer token with garbage is a 401, not a 500.
    for token in ["fx_\u{e9}\u{e9}\u{e9}", "fx____", "fx_AAAAAAAAAAAA_"] {
        let response = server
            .client
            .get(server.url("/api/v1/hosts"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{token}");
    }
    let hosts: Value = server.get("/api/v1/hosts").await.json().await.unwrap();
    assert_eq!(
        hosts.as_array().unwrap().len(),
        1,
        "nothing was stored by refused requests"
    );
}
