//! The audit trail and login throttling, on both backends: every mutating request and every
//! login is recorded with who, from where, what and how it was answered; reads are not; a
//! user name or an address that keeps failing to log in is held off with 429.

use std::{net::IpAddr, time::Duration};

use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, Backend, Echo, Options, TestServer};

async fn audit(server: &TestServer, query: &str) -> Vec<Value> {
    let response = server.get(&format!("/api/v1/audit{query}")).await;
    assert_eq!(response.status(), 200);
    let rows: Value = response.json().await.unwrap();
    rows.as_array().unwrap().clone()
}

async fn app_token(server: &TestServer, name: &str, role: &str) -> String {
    let created = server
        .create_app_token(json!({"app_name": name, "role": role}))
        .await;
    created["token"].as_str().unwrap().to_owned()
}

async fn requests_are_audited(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    let server = &echo.server;
    let operator = app_token(server, "ci-operator", "operator").await;
    let viewer = app_token(server, "ci-viewer", "viewer").await;
    let http = &server.client;

    let created = http
        .post(server.url("/api/echo/v1/echo_dbs"))
        .bearer_auth(&operator)
        .header("hs-ref-id", "AuditRef1")
        .json(&json!({"source_host_id": "src-01",
            "destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "audited"}]}))
        .send()
        .await
        .unwrap();
    let status = created.status().as_u16();
    assert!(created.status().is_success());
    let task: Value = created.json().await.unwrap();
    let rows = audit(server, "?ref_id=AuditRef1").await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = &rows[0];
    assert_eq!(row["method"], "POST");
    assert_eq!(row["path"], "/api/echo/v1/echo_dbs");
    assert_eq!(row["status"], status);
    assert_eq!(row["task_id"], task["request_id"], "the task it made");
    assert_eq!(row["token_name"], "ci-operator");
    assert_eq!(row["role"], "operator");
    assert_eq!(row["client_addr"], "127.0.0.1");
    assert!(!row["token_id"].as_str().unwrap().is_empty());
    echo.wait(&task).await;

    // Refused for its role: recorded, with what it was refused.
    let refused = http
        .delete(server.url("/api/v1/hosts/dev-02"))
        .bearer_auth(&viewer)
        .header("hs-ref-id", "AuditRef2")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let rows = audit(server, "?ref_id=AuditRef2").await;
    assert_eq!(rows[0]["status"], 403);
    assert_eq!(rows[0]["role"], "viewer");
    assert_eq!(rows[0]["task_id"], Value::Null);

    // Logins, failed and not.
    let login = |password: &'static str| {
        http.post(server.url("/api/v1/auth/local/login"))
            .header("hs-ref-id", "AuditLogin")
            .form(&[("username", "admin"), ("password", password)])
            .send()
    };
    assert_eq!(login("wrong").await.unwrap().status(), 401);
    let session: Value = login("pw").await.unwrap().json().await.unwrap();
    let rows = audit(server, "?ref_id=AuditLogin").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["status"].clone(), rows[1]["status"].clone()),
        (json!(200), json!(401))
    );
    assert!(rows.iter().all(|r| r["user_name"] == "admin"), "{rows:#?}");
    assert_eq!(rows[0]["token_name"], "login", "the session it opened");
    assert_eq!(rows[1]["token_id"], "", "a failed login has no token");

    // Reads are not recorded.
    let before = audit(server, "?limit=1000").await.len();
    server.get("/api/v1/hosts").await;
    server.get("/api/echo/v1/topology").await;
    assert_eq!(audit(server, "?limit=1000").await.len(), before);

    // No token ever appears in the trail, only ids.
    let all = serde_json::to_string(&audit(server, "?limit=1000").await).unwrap();
    for secret in [
        operator.as_str(),
        viewer.as_str(),
        ADMIN_TOKEN,
        session["access_token"].as_str().unwrap(),
    ] {
        assert!(!all.contains(secret), "a token is in the audit trail");
    }

    // Filters.
    let newest = audit(server, "?limit=1").await;
    assert_eq!(newest.len(), 1);
    let ts = newest[0]["ts"].as_i64().unwrap();
    assert!(
        audit(server, &format!("?since={}", ts + 1))
            .await
            .is_empty()
    );
    assert!(
        !audit(server, &format!("?until={}", ts + 1))
            .await
            .is_empty()
    );
    for bad in [
        "?limit=0",
        "?limit=1001",
        "?since=-1",
        "?until=9007199254740992",
        "?since=soon",
    ] {
        let refused = server.get(&format!("/api/v1/audit{bad}")).await;
        assert_eq!(refused.status(), 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_audited_on_sqlite() {
    requests_are_audited(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_audited_on_postgres() {
    requests_are_audited(Backend::Postgres).await;
}

/// A client whose requests come from `127.0.0.n` (all of 127/8 is loopback here).
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, n]))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn login_status(
    server: &TestServer,
    from: u8,
    user: &str,
    password: &str,
) -> reqwest::Response {
    client_from(from)
        .post(server.url("/api/v1/auth/local/login"))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .unwrap()
}

async fn logins_are_throttled(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.admin_user = Some("admin".into());
        config.admin_password = Some("pw".into());
    })
    .await;

    // One address trying many names: after five failures it is held off, whoever it names.
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        assert_eq!(login_status(&server, 3, user, "x").await.status(), 401);
    }
    let held = login_status(&server, 3, "admin", "pw").await;
    assert_eq!(held.status(), 429);
    let retry_after: u64 = held.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body: Value = held.json().await.unwrap();
    assert_eq!(body["code"], "TOO_MANY_LOGIN_FAILURES");
    // Another address logs in as ever.
    assert_eq!(login_status(&server, 4, "admin", "pw").await.status(), 200);

    // One name tried from many addresses: held off from everywhere, right password or not.
    for from in 10..15 {
        assert_eq!(
            login_status(&server, from, "admin", "guess").await.status(),
            401
        );
    }
    assert_eq!(login_status(&server, 20, "admin", "pw").await.status(), 429);
    // A name that does not exist is held off the same way: nothing tells them apart.
    for from in 30..35 {
        assert_eq!(
            login_status(&server, from, "ghost", "guess").await.status(),
            401
        );
    }
    let ghost = login_status(&server, 40, "ghost", "guess").await;
    assert_eq!(ghost.status(), 429);
    let ghost: Value = ghost.json().await.unwrap();
    assert_eq!(ghost["code"], "TOO_MANY_LOGIN_FAILURES");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_throttled_on_sqlite() {
    logins_are_throttled(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_throttled_on_postgres() {
    logins_are_throttled(Backend::Postgres).await;
}
