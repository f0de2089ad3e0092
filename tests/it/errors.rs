//! Every error path answers JSON `{code, message, ref_id}` with the right status, and the
//! `hs-ref-id` header is honoured, generated or refused as the README says.

use reqwest::Method;
use serde_json::Value;

use crate::support::{Backend, TestServer, error_body};

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_json() {
    let server = TestServer::start(Backend::Sqlite).await;
    let unknown = server.get("/flex/api/v1/nothing/here").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(error_body(unknown).await["code"], "ROUTE_NOT_FOUND");

    let unauthenticated_unknown = server.client.get(server.url("/x")).send().await.unwrap();
    assert_eq!(unauthenticated_unknown.status(), 404);
    error_body(unauthenticated_unknown).await;

    let wrong_method = server
        .admin(Method::POST, "/flex/api/v1/hosts")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert!(wrong_method.headers().get("allow").is_some());
    assert_eq!(error_body(wrong_method).await["code"], "METHOD_NOT_ALLOWED");

    let patch_task = server
        .admin(Method::PATCH, "/api/echo/v1/tasks/abc")
        .send()
        .await
        .unwrap();
    assert_eq!(patch_task.status(), 405);
    error_body(patch_task).await;
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let padding = "x".repeat(1024 * 1024 + 10);
    let huge = format!(r#"{{"db_vendor":"mssql","pad":"{padding}"}}"#);
    let response = server
        .admin(Method::PUT, "/api/v1/hosts/host01")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(error_body(response).await["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(server.get("/api/v1/hosts/host01").await.status(), 404);

    // Just under the limit is read (and the unknown field ignored).
    let padding = "x".repeat(1024 * 1024 - 100);
    let fits = format!(r#"{{"db_vendor":"mssql","pad":"{padding}"}}"#);
    let response = server
        .admin(Method::PUT, "/api/v1/hosts/host01")
        .body(fits)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn malformed_json_is_a_clear_400() {
    let server = TestServer::start(Backend::Sqlite).await;
    // Deep nesting is refused at the first level that has the wrong type; the parser never
    // recurses 10,000 levels.
    let deep = format!(
        r#"{{"db_vendor":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "INVALID_JSON"),
        (b"[1,2,3]".to_vec(), "INVALID_FIELD"),
        (b"\"mssql\"".to_vec(), "INVALID_FIELD"),
        (deep.into_bytes(), "INVALID_FIELD"),
        (
            b"{\"db_vendor\":\"ms\xff\xfesql\"}".to_vec(),
            "INVALID_JSON",
        ),
        (b"{\"db_vendor\":null}".to_vec(), "INVALID_FIELD"),
    ];
    for (body, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        let response = server
            .admin(Method::PUT, "/api/v1/hosts/host01")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{shown}");
        assert_eq!(error_body(response).await["code"], code, "{shown}");
    }
    assert_eq!(server.get("/api/v1/hosts/host01").await.status(), 404);
}

#[tokio::test]
async fn ref_ids_are_echoed_generated_or_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let given = server
        .admin(Method::GET, "/api/v1/hosts")
        .header("hs-ref-id", "Hy6f50Ki")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["hs-ref-id"], "Hy6f50Ki");
    assert!(given.headers().get("x-request-id").is_some());

    let generated = server.get("/api/v1/hosts").await;
    let generated = generated.headers()["hs-ref-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 10);
    assert!(generated.bytes().all(|b| b.is_ascii_alphanumeric()));

    let on_error = server
        .admin(Method::GET, "/api/v1/hosts/ghost")
        .header("hs-ref-id", "abc123")
        .send()
        .await
        .unwrap();
    assert_eq!(error_body(on_error).await["ref_id"], "abc123");

    for bad in [
        "has space",
        "semi;colon",
        "a\u{7f}b",
        &"x".repeat(33),
        "",
        "../etc",
    ] {
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
        let error = error_body(response).await;
        assert_eq!(error["code"], "INVALID_HEADER");
        assert_ne!(error["ref_id"], Value::String(bad.to_owned()));
    }
}

#[tokio::test]
async fn bad_query_parameters_are_400() {
    let server = TestServer::start(Backend::Sqlite).await;
    let response = server.get("/api/echo/v1/tasks?state=sleeping").await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_body(response).await["code"], "INVALID_QUERY");
}

#[tokio::test]
async fn an_unreachable_database_is_503_and_readyz_says_so() {
    let server = TestServer::start(Backend::Postgres).await;
    assert_eq!(server.get("/api/v1/hosts").await.status(), 204);
    // Take the database away under the running server.
    let admin_url = crate::support::postgres_url();
    let name = server.db.url.rsplit('/').next().unwrap().to_owned();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .unwrap();
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")),
    )
    .await
    .unwrap();

    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(error_body(ready).await["code"], "NOT_READY");
    let hosts = server.get("/api/v1/hosts").await;
    assert_eq!(hosts.status(), 503);
    let error = error_body(hosts).await;
    assert_eq!(error["code"], "SERVICE_UNAVAILABLE");
    assert!(
        !error["message"].as_str().unwrap().contains("flex_test"),
        "5xx bodies carry no internals: {error}"
    );
}
