//! Authentication: admin token, login sessions, app tokens, and host tokens kept off the API.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer, error_body};

/// One route of each API resource; all must refuse a request without a valid API token.
const PROTECTED: [(&str, &str); 9] = [
    ("GET", "/flex/api/v1/hosts"),
    ("PUT", "/flex/api/v1/hosts/host01"),
    ("DELETE", "/api/v1/hosts/host01"),
    ("GET", "/api/hostess/v1/hosts/host01"),
    ("GET", "/api/v1/hosts/host01/databases"),
    ("GET", "/flex/api/v1/ocie/tasks"),
    ("GET", "/api/echo/v1/tasks/x"),
    ("GET", "/api/ocie/v1/topology"),
    ("GET", "/api/v2/flex_app_tokens"),
];

async fn every_api_route_needs_an_api_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let host_token = server.register_host("host01").await;
    for (method, path) in PROTECTED {
        let method: Method = method.parse().unwrap();
        let without = server
            .client
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(without.status(), 401, "{method} {path} without a token");
        assert_eq!(error_body(without).await["code"], "UNAUTHORIZED");

        let wrong = server
            .client
            .request(method.clone(), server.url(path))
            .bearer_auth("fx_AAAAAAAAAAAA_wrongwrongwrongwrongwrongwrongwr")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{method} {path} with a bad token");

        let basic = server
            .client
            .request(method.clone(), server.url(path))
            .basic_auth("admin", Some("admin"))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), 401, "{method} {path} with basic auth");

        let as_host = server
            .client
            .request(method.clone(), server.url(path))
            .bearer_auth(&host_token)
            .send()
            .await
            .unwrap();
        assert_eq!(as_host.status(), 403, "{method} {path} with a host token");
        let error = error_body(as_host).await;
        assert_eq!(error["code"], "FORBIDDEN");
        assert!(error["message"].as_str().unwrap().contains("agent token"));
    }
    // The refused PUT and DELETE changed nothing.
    assert_eq!(server.get("/flex/api/v1/hosts/host01").await.status(), 200);
}

async fn probes_and_login_need_no_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let health = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

async fn login_issues_a_week_long_session(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.admin_user = Some("admin".into());
        config.admin_password = Some("s3cret!".into());
    })
    .await;
    let login = |username: &'static str, password: &'static str| {
        server
            .client
            .post(server.url("/api/v1/auth/local/login"))
            .form(&[("username", username), ("password", password)])
            .send()
    };
    for (user, password) in [("admin", "wrong"), ("root", "s3cret!"), ("", "")] {
        let refused = login(user, password).await.unwrap();
        assert_eq!(refused.status(), 401, "{user}/{password}");
        assert_eq!(error_body(refused).await["code"], "UNAUTHORIZED");
    }
    let response = login("admin", "s3cret!").await.unwrap();
    assert_eq!(response.status(), 200);
    let session: Value = response.json().await.unwrap();
    assert_eq!(session["expiresIn"], 604_800);
    let expires_on = session["expiresOn"].as_str().unwrap();
    assert_eq!(
        expires_on.len(),
        "YYYY-MM-DD hh:mm:ss".len(),
        "{expires_on}"
    );
    let token = session["access_token"].as_str().unwrap();
    let hosts = server
        .client
        .get(server.url("/api/v1/hosts"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(hosts.status(), 204);

    // A body that says it is JSON is read as JSON.
    let json_login = server
        .client
        .post(server.url("/api/v1/auth/local/login"))
        .json(&json!({"username": "admin", "password": "s3cret!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_login.status(), 200);
    let session: Value = json_login.json().await.unwrap();
    assert!(session["access_token"].is_string(), "{session}");
    let missing_field = server
        .client
        .post(server.url("/api/v1/auth/local/login"))
        .form(&[("username", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing_field.status(), 400);
    assert!(
        error_body(missing_field).await["message"]
            .as_str()
            .unwrap()
            .contains("password")
    );
}

async fn login_is_refused_without_a_configured_user(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = server
        .client
        .post(server.url("/api/v1/auth/local/login"))
        .form(&[("username", "admin"), ("password", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

async fn app_tokens_are_created_listed_used_and_revoked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let empty: Value = server
        .get("/api/v2/flex_app_tokens")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!([]));

    let created = server
        .admin(Method::POST, "/api/v2/flex_app_tokens")
        .json(&json!({"app_name": "nightly", "description": "refresh QA", "ttl": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["app_name"], "nightly");
    assert_eq!(created["valid"], true);
    assert_eq!(created["ttl"], 3600);
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();

    let listed: Value = server
        .get("/api/v2/flex_app_tokens")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(
        listed[0].get("token").is_none(),
        "a token is shown only once"
    );

    let with_app_token = |token: String| {
        server
            .client
            .get(server.url("/api/echo/v1/topology"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(with_app_token(token.clone()).await.unwrap().status(), 200);

    for bad in [
        json!({"app_name": ""}),
        json!({"app_name": "x", "ttl": 0}),
        json!({"app_name": "x", "ttl": "soon"}),
        json!({"description": "no name"}),
    ] {
        let refused = server
            .admin(Method::POST, "/api/v2/flex_app_tokens")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{bad}");
        error_body(refused).await;
    }

    let revoked = server
        .admin(Method::DELETE, &format!("/api/v2/flex_app_tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(with_app_token(token).await.unwrap().status(), 401);
    let again = server
        .admin(Method::DELETE, &format!("/api/v2/flex_app_tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    assert_eq!(error_body(again).await["code"], "TOKEN_NOT_FOUND");
}

async fn unregistering_a_host_revokes_its_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token = server.register_host("host01").await;
    let store = server.db.store().await;
    assert!(
        flex::auth::authenticate(&store, &token)
            .await
            .unwrap()
            .is_some()
    );
    server
        .admin(Method::DELETE, "/api/v1/hosts/host01")
        .send()
        .await
        .unwrap();
    // A store of its own is another replica, which may trust what it read for a second
    // (`a_token_revoked_on_one_replica_…`); one that never read the token has nothing to trust.
    let store = server.db.store().await;
    assert!(
        flex::auth::authenticate(&store, &token)
            .await
            .unwrap()
            .is_none()
    );
    let response = server
        .client
        .get(server.url("/api/v1/hosts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "a revoked host token is simply unknown"
    );
}

crate::on_both_backends!(
    every_api_route_needs_an_api_token,
    probes_and_login_need_no_token,
    login_issues_a_week_long_session,
    login_is_refused_without_a_configured_user,
    app_tokens_are_created_listed_used_and_revoked,
    unregistering_a_host_revokes_its_token,
);

/// Replicas keep verified tokens for a second: the replica that revokes a token refuses it at
/// once, another one within that second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_replica_stops_on_the_other_within_a_second() {
    let first = TestServer::start(Backend::Postgres).await;
    let mut config = flex::Config::new(first.db.url.clone());
    config.admin_token = Some(crate::support::ADMIN_TOKEN.into());
    config.instance_id = "replica-2".into();
    let second = TestServer::start_on(first.db.share(), config).await;
    let created = first
        .create_app_token(json!({"app_name": "pipeline", "role": "viewer"}))
        .await;
    let (id, token) = (
        created["id"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    let read = |server: &TestServer| {
        server
            .client
            .get(server.url("/api/v2/flex/info"))
            .bearer_auth(token)
            .send()
    };
    // Both replicas have just verified it (and keep it).
    for _ in 0..3 {
        assert_eq!(read(&first).await.unwrap().status(), 200);
        assert_eq!(read(&second).await.unwrap().status(), 200);
    }
    let revoked = first
        .admin(Method::DELETE, &format!("/api/v2/flex_app_tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(read(&first).await.unwrap().status(), 401, "at once here");
    let revoked_at = std::time::Instant::now();
    while read(&second).await.unwrap().status() != 401 {
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(3),
            "the other replica still honours a token revoked {:?} ago",
            revoked_at.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let honoured_for = revoked_at.elapsed();
    assert!(
        honoured_for <= flex::store::TOKEN_FRESH_FOR + std::time::Duration::from_millis(500),
        "honoured for {honoured_for:?} after its revocation"
    );
    // And for good.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(read(&second).await.unwrap().status(), 401);
}
