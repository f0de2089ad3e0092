//! Every documented operation, called with a token of every role: the roles at or above its
//! `x-flex-role` get past the role check, the ones below get 403 `FORBIDDEN_FOR_ROLE`, and a
//! refused request changes nothing. The spec states the roles; this holds the server to it.

use reqwest::Method;
use serde_json::{Value, json};

use super::Spec;
use crate::support::{Backend, TestServer};

const ROLES: [&str; 3] = ["viewer", "operator", "admin"];

fn rank(role: &str) -> usize {
    ROLES
        .iter()
        .position(|r| *r == role)
        .unwrap_or_else(|| panic!("unknown role '{role}'"))
}

/// (path template, method, least role) of every operation that takes an API token.
fn operations(spec: &Spec) -> Vec<(String, Method, String)> {
    let mut all = Vec::new();
    for template in spec.doc["paths"].as_object().unwrap().keys() {
        for (method, operation) in spec.path_item(template).as_object().unwrap() {
            let public = operation.get("security") == Some(&json!([]));
            if public || template == "/api/v1/agent/ws" {
                assert!(
                    operation.get("x-flex-role").is_none(),
                    "{method} {template}"
                );
                continue;
            }
            let role = operation["x-flex-role"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {template} names no x-flex-role"));
            rank(role);
            all.push((
                template.clone(),
                method.to_uppercase().parse().unwrap(),
                role.to_owned(),
            ));
        }
    }
    all
}

async fn send(
    server: &TestServer,
    method: &Method,
    template: &str,
    token: &str,
) -> reqwest::Response {
    let path = template
        .replace("{host_id}", "host01")
        .replace("{db_id}", "5")
        .replace("{request_id}", "t1")
        .replace("{id}", "some-id");
    let mut request = server
        .client
        .request(method.clone(), server.url(&path))
        .bearer_auth(token);
    if *method != Method::GET {
        request = request.json(&json!({}));
    }
    request.send().await.unwrap()
}

/// What the refused requests would have changed, were they not refused.
async fn everything(server: &TestServer) -> Value {
    let mut all = json!({});
    for path in [
        "/api/v2/flex_app_tokens",
        "/api/v1/hosts",
        "/api/echo/v1/tasks",
        "/api/v1/webhooks",
        "/api/echo/v1/snapshot_schedules",
        "/api/echo/v1/db_snapshots",
    ] {
        let response = server.get(path).await;
        all[path] = response.json().await.unwrap_or(Value::Null);
    }
    all
}

async fn roles_hold(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut tokens = Vec::new();
    for role in ROLES {
        let created = server
            .create_app_token(json!({"app_name": format!("{role}-ci"), "role": role}))
            .await;
        assert_eq!(created["role"], role, "{created}");
        tokens.push((role, created["token"].as_str().unwrap().to_owned()));
    }
    let refused_role = server
        .create_app_token(json!({"app_name": "x", "role": "root"}))
        .await;
    assert_eq!(refused_role["code"], "INVALID_FIELD");

    let spec = Spec::load();
    let operations = operations(&spec);
    assert!(operations.len() > 40, "{} operations", operations.len());
    let before = everything(&server).await;
    let mut refused = 0;
    for (template, method, needed) in &operations {
        for (role, token) in tokens.iter().filter(|(role, _)| rank(role) < rank(needed)) {
            refused += 1;
            let response = send(&server, method, template, token).await;
            assert_eq!(response.status(), 403, "{role} on {method} {template}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "FORBIDDEN_FOR_ROLE", "{body}");
            let message = body["message"].as_str().unwrap();
            assert!(message.contains(&format!("'{needed}'")), "{message}");
        }
    }
    assert!(refused > 30, "only {refused} refusals");
    assert_eq!(
        everything(&server).await,
        before,
        "a request refused for its role changes nothing"
    );
    for (template, method, needed) in &operations {
        for (role, token) in tokens.iter().filter(|(role, _)| rank(role) >= rank(needed)) {
            let response = send(&server, method, template, token).await;
            // Past the role check: whatever the handler says of these made-up ids and bodies.
            if response.status() == 403 {
                let body = response.text().await.unwrap();
                panic!("{role} refused on {method} {template}: {body}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_admits_the_roles_it_names_and_refuses_the_rest_on_sqlite() {
    roles_hold(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_admits_the_roles_it_names_and_refuses_the_rest_on_postgres() {
    roles_hold(Backend::Postgres).await;
}
