//! `openapi.yaml` tells the truth: every documented operation and status is exercised against
//! the real server, each response body is validated against its documented schema, and a
//! status the spec does not document fails the test.

use std::collections::{BTreeSet, HashSet};

use flex::store::NewTask;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::{
    common::{ADMIN_TOKEN, Backend, TestServer},
    store::{database, task},
};

struct Spec {
    doc: Value,
}

impl Spec {
    fn load() -> Spec {
        let doc: Value = serde_yaml::from_str(include_str!("../../openapi.yaml")).unwrap();
        Spec { doc }
    }

    /// Every (path template, method, status) the spec documents.
    fn documented(&self) -> BTreeSet<(String, String, String)> {
        let mut all = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for status in operation["responses"].as_object().unwrap().keys() {
                    all.insert((path.clone(), method.clone(), status.clone()));
                }
            }
        }
        all
    }

    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            let pointer = reference.trim_start_matches('#');
            value = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
        }
        value
    }

    fn validate(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let schema = self.resolve(schema);
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            for part in parts {
                self.validate(part, value, at)?;
            }
            return Ok(());
        }
        if value.is_null() && schema["nullable"] == true {
            return Ok(());
        }
        let Some(kind) = schema.get("type").and_then(Value::as_str) else {
            return Ok(());
        };
        let type_ok = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            other => return Err(format!("{at}: spec uses unsupported type {other}")),
        };
        if !type_ok {
            return Err(format!("{at}: expected {kind}, got {value}"));
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for field in required {
                let field = field.as_str().unwrap();
                if value.get(field).is_none() {
                    return Err(format!("{at}: missing required '{field}' in {value}"));
                }
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                if let Some(inner) = value.get(name) {
                    self.validate(property, inner, &format!("{at}.{name}"))?;
                }
            }
        }
        if let Some(items) = schema.get("items") {
            let array = value.as_array().unwrap();
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (array.len() as u64) < min
            {
                return Err(format!("{at}: fewer than {min} items"));
            }
            for (n, item) in array.iter().enumerate() {
                self.validate(items, item, &format!("{at}[{n}]"))?;
            }
        }
        Ok(())
    }
}

/// Sends requests, checks each response against the spec, and remembers what was covered.
struct Checker<'a> {
    spec: Spec,
    server: &'a TestServer,
    covered: HashSet<(String, String, String)>,
}

impl<'a> Checker<'a> {
    /// Sends `request` for the operation `method template`, checks the response against the
    /// spec, and returns its JSON body (Null when empty).
    async fn check(&mut self, method: &Method, template: &str, request: RequestBuilder) -> Value {
        let response: Response = request.send().await.unwrap();
        let status = response.status().as_u16().to_string();
        let method_key = method.as_str().to_ascii_lowercase();
        let operation = &self.spec.doc["paths"][template][&method_key];
        assert!(
            operation.is_object(),
            "{method} {template} is not in openapi.yaml"
        );
        let documented = self.spec.resolve(&operation["responses"][&status]).clone();
        assert!(
            documented.is_object(),
            "{method} {template} answered {status}, which openapi.yaml does not document"
        );
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.bytes().await.unwrap();
        let body = match documented.get("content") {
            None => {
                assert!(
                    bytes.is_empty(),
                    "{method} {template} {status} documents no body but sent one"
                );
                Value::Null
            }
            Some(content) => {
                assert!(
                    content_type
                        .unwrap_or_default()
                        .starts_with("application/json"),
                    "{method} {template} {status} is not JSON"
                );
                let body: Value = serde_json::from_slice(&bytes).unwrap();
                let schema = &content["application/json"]["schema"];
                if let Err(mismatch) = self.spec.validate(schema, &body, "body") {
                    panic!("{method} {template} {status}: {mismatch}");
                }
                body
            }
        };
        self.covered
            .insert((template.to_owned(), method_key, status));
        body
    }

    fn request(&self, method: &Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self
            .server
            .client
            .request(method.clone(), self.server.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    fn admin(&self, method: &Method, path: &str) -> RequestBuilder {
        self.request(method, path, Some(ADMIN_TOKEN))
    }
}

/// A concrete path for a template, and a body that would be accepted.
fn sample_request(
    checker: &Checker<'_>,
    method: &Method,
    template: &str,
    token: Option<&str>,
) -> RequestBuilder {
    let path = template
        .replace("{host_id}", "host01")
        .replace("{db_id}", "5")
        .replace("{request_id}", "t1")
        .replace("{id}", "some-id");
    let request = checker.request(method, &path, token);
    match (method.as_str(), template) {
        ("PUT", _) => request.body(r#"{"db_vendor":"mssql"}"#),
        ("POST", "/api/v2/flex_app_tokens") => request.json(&json!({"app_name": "ci"})),
        ("POST", "/api/v1/auth/local/login") => {
            request.form(&[("username", "admin"), ("password", "pw")])
        }
        _ => request,
    }
}

const HOST_FAMILIES: [&str; 3] = ["/flex/api/v1", "/api/v1", "/api/hostess/v1"];
const TASK_FAMILIES: [&str; 3] = ["/flex/api/v1/ocie", "/api/echo/v1", "/api/ocie/v1"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_matches_openapi_yaml() {
    let server = TestServer::start_with(Backend::Postgres, |config| {
        config.admin_user = Some("admin".into());
        config.admin_password = Some("pw".into());
    })
    .await;
    let store = server.db.store().await;
    let mut c = Checker {
        spec: Spec::load(),
        server: &server,
        covered: HashSet::new(),
    };
    let (get, put, post, delete) = (Method::GET, Method::PUT, Method::POST, Method::DELETE);

    c.check(&get, "/healthz", c.request(&get, "/healthz", None))
        .await;
    c.check(&get, "/readyz", c.request(&get, "/readyz", None))
        .await;

    for family in HOST_FAMILIES {
        let list = format!("{family}/hosts");
        let one = format!("{family}/hosts/{{host_id}}");
        c.check(&get, &list, c.admin(&get, &list)).await;
        let host = format!("{family}/hosts/newhost");
        let body = r#"{"db_vendor":"mssql"}"#;
        c.check(&put, &one, c.admin(&put, &host).body(body)).await;
        c.check(&put, &one, c.admin(&put, &host).body(body)).await;
        let bad = format!("{family}/hosts/9lives");
        c.check(&put, &one, c.admin(&put, &bad).body(body)).await;
        let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1 << 21));
        c.check(&put, &one, c.admin(&put, &bad).body(huge)).await;
        c.check(&get, &list, c.admin(&get, &list)).await;
        c.check(&get, &one, c.admin(&get, &host)).await;
        let ghost = format!("{family}/hosts/ghost");
        c.check(&get, &one, c.admin(&get, &ghost)).await;
        c.check(&delete, &one, c.admin(&delete, &host)).await;
    }
    server.register_host("busy01").await;
    store
        .insert_task(&NewTask {
            record: task("busy-task", "running", "DeployCommand", "ref"),
            host_ids: vec!["busy01".into()],
        })
        .await
        .unwrap();
    for family in HOST_FAMILIES {
        let one = format!("{family}/hosts/{{host_id}}");
        let busy = format!("{family}/hosts/busy01");
        c.check(&delete, &one, c.admin(&delete, &busy)).await;
    }

    let host_token = server.register_host("host01").await;
    store
        .replace_databases("host01", &[database("host01", "5", "sales")])
        .await
        .unwrap();
    let dbs = "/api/v1/hosts/{host_id}/databases";
    let db = "/api/v1/hosts/{host_id}/databases/{db_id}";
    c.check(&get, dbs, c.admin(&get, "/api/v1/hosts/host01/databases"))
        .await;
    c.check(&get, dbs, c.admin(&get, "/api/v1/hosts/ghost/databases"))
        .await;
    c.check(&get, db, c.admin(&get, "/api/v1/hosts/host01/databases/5"))
        .await;
    c.check(&get, db, c.admin(&get, "/api/v1/hosts/host01/databases/9"))
        .await;
    for path in ["/api/ocie/v1/topology", "/api/echo/v1/topology"] {
        let body = c.check(&get, path, c.admin(&get, path)).await;
        assert_eq!(body.as_array().unwrap().len(), 2);
    }

    let mut done = task("t1", "completed", "CreateDBSnapshotCommand", "ref");
    done.result = Some(r#"{"db_snapshot":{"id":"snap_1"}}"#.into());
    store
        .insert_task(&NewTask {
            record: done,
            host_ids: vec![],
        })
        .await
        .unwrap();
    for family in TASK_FAMILIES {
        let list = format!("{family}/tasks");
        let one = format!("{family}/tasks/{{request_id}}");
        c.check(&get, &list, c.admin(&get, &list)).await;
        let filtered = format!("{list}?state=completed&ref_id=ref");
        c.check(&get, &list, c.admin(&get, &filtered)).await;
        let invalid = format!("{list}?state=bogus");
        c.check(&get, &list, c.admin(&get, &invalid)).await;
        c.check(&get, &one, c.admin(&get, &format!("{list}/t1")))
            .await;
        c.check(&get, &one, c.admin(&get, &format!("{list}/none")))
            .await;
    }

    let login = "/api/v1/auth/local/login";
    for pairs in [
        &[("username", "admin"), ("password", "pw")][..],
        &[("username", "admin"), ("password", "no")],
        &[("username", "admin")],
    ] {
        let request = c.request(&post, login, None).form(pairs);
        c.check(&post, login, request).await;
    }
    let as_json = c
        .request(&post, login, None)
        .json(&json!({"username": "admin"}));
    c.check(&post, login, as_json).await;

    let tokens = "/api/v2/flex_app_tokens";
    let token_one = "/api/v2/flex_app_tokens/{id}";
    let created = c
        .check(
            &post,
            tokens,
            c.admin(&post, tokens).json(&json!({"app_name": "ci"})),
        )
        .await;
    c.check(
        &post,
        tokens,
        c.admin(&post, tokens).json(&json!({"app_name": ""})),
    )
    .await;
    let huge = format!(r#"{{"app_name":"{}"}}"#, "x".repeat(1 << 21));
    c.check(&post, tokens, c.admin(&post, tokens).body(huge))
        .await;
    c.check(&get, tokens, c.admin(&get, tokens)).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("{tokens}/{id}");
    c.check(&delete, token_one, c.admin(&delete, &path)).await;
    c.check(&delete, token_one, c.admin(&delete, &path)).await;

    // The agent channel's door: upgrade with the host token, and each refusal.
    let agent = "/api/v1/agent/ws";
    let upgrade = |token: &str| {
        c.request(&get, agent, Some(token))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    };
    let switching = upgrade(&host_token);
    let refused_api_token = upgrade(ADMIN_TOKEN);
    c.check(&get, agent, switching).await;
    c.check(&get, agent, refused_api_token).await;
    c.check(&get, agent, c.request(&get, agent, Some(&host_token)))
        .await;
    c.check(&get, agent, c.request(&get, agent, None)).await;

    // Every protected operation: without a token, and with a host agent's token.
    let documented = c.spec.documented();
    for (template, method, status) in &documented {
        if template == agent {
            continue;
        }
        let method: Method = method.to_uppercase().parse().unwrap();
        let token = match status.as_str() {
            "401" if template != login => None,
            "403" => Some(host_token.as_str()),
            _ => continue,
        };
        let request = sample_request(&c, &method, template, token);
        c.check(&method, template, request).await;
    }

    // With the database gone, every operation that needs it answers 503.
    let name = server.db.url.rsplit('/').next().unwrap().to_owned();
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&crate::common::postgres_url())
            .await
            .unwrap();
    sqlx::Executor::execute(
        &mut admin,
        sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")),
    )
    .await
    .unwrap();
    for (template, method, status) in &documented {
        if status != "503" {
            continue;
        }
        let method: Method = method.to_uppercase().parse().unwrap();
        let token = (template.as_str() != login).then_some(ADMIN_TOKEN);
        let request = sample_request(&c, &method, template, token);
        c.check(&method, template, request).await;
    }

    let missing: Vec<_> = documented
        .iter()
        .filter(|entry| !c.covered.contains(*entry))
        .collect();
    assert!(
        missing.is_empty(),
        "documented but never exercised: {missing:#?}"
    );
}
