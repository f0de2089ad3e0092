//! `openapi.yaml` tells the truth: every documented operation and status is exercised against
//! the real server, each response body is validated against its documented schema, and a
//! status the spec does not document fails the test.

mod events_ops;
mod lifecycle_ops;
mod roles_ops;

use std::collections::{BTreeSet, HashSet};

use flex::{
    emulators::sdp::{FaultAction, FaultRule},
    model::{CommandType, TaskState},
    store::NewTask,
};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::{
    support::builders::{database, task},
    support::{ADMIN_TOKEN, Backend, TestServer},
    support::{Echo, Options},
};

struct Spec {
    doc: Value,
    /// `components.schemas`, as JSON Schema: what response bodies are validated against.
    schemas: Value,
}

/// OpenAPI 3.0's schema dialect as JSON Schema: `nullable: true` becomes `null` among the
/// allowed types (or an `anyOf` with `null` where the schema has no `type` of its own).
fn json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut converted: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(key, _)| key.as_str() != "nullable")
                .map(|(key, value)| (key.clone(), json_schema(value)))
                .collect();
            if map.get("nullable") != Some(&Value::Bool(true)) {
                return Value::Object(converted);
            }
            if let Some(Value::String(kind)) = converted.get("type").cloned() {
                converted.insert("type".into(), json!([kind, "null"]));
                if let Some(Value::Array(allowed)) = converted.get_mut("enum") {
                    allowed.push(Value::Null);
                }
                Value::Object(converted)
            } else {
                json!({"anyOf": [Value::Object(converted), {"type": "null"}]})
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

impl Spec {
    fn load() -> Spec {
        let doc: Value = serde_yaml::from_str(include_str!("../../openapi.yaml")).unwrap();
        let schemas = json_schema(&doc["components"]["schemas"]);
        Spec { doc, schemas }
    }

    /// The path item of a template, through its `$ref` when it shares one.
    fn path_item(&self, template: &str) -> &Value {
        self.resolve(&self.doc["paths"][template])
    }

    /// Every (path template, method, status) the spec documents.
    fn documented(&self) -> BTreeSet<(String, String, String)> {
        let mut all = BTreeSet::new();
        for path in self.doc["paths"].as_object().unwrap().keys() {
            for (method, operation) in self.path_item(path).as_object().unwrap() {
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

    /// Validates a body against a documented schema, with a maintained JSON Schema validator.
    fn validate(&self, schema: &Value, value: &Value) -> Result<(), String> {
        let mut root = json_schema(schema);
        let Value::Object(root_map) = &mut root else {
            return Err(format!("schema is not an object: {schema}"));
        };
        // `#/components/schemas/…` references resolve against this copy of them.
        root_map.insert("components".into(), json!({"schemas": self.schemas}));
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .map_err(|err| format!("the schema does not compile: {err}"))?;
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|err| format!("at '{}': {err}", err.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Sends requests, checks each response against the spec, and remembers what was covered.
struct Checker<'a> {
    spec: Spec,
    server: &'a TestServer,
    covered: HashSet<(String, String, String)>,
}

impl Checker<'_> {
    /// Sends `request` for the operation `method template`, checks the response against the
    /// spec, and returns its JSON body (Null when empty).
    async fn check(&mut self, method: &Method, template: &str, request: RequestBuilder) -> Value {
        let response: Response = request.send().await.unwrap();
        let status = response.status().as_u16().to_string();
        let method_key = method.as_str().to_ascii_lowercase();
        let operation = &self.spec.path_item(template)[&method_key];
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
            Some(content)
                if let Some(text_type) = ["text/plain", "application/openmetrics-text"]
                    .into_iter()
                    .find(|media| content.get(*media).is_some()) =>
            {
                assert!(
                    content_type.unwrap_or_default().starts_with(text_type),
                    "{method} {template} {status} is not {text_type}"
                );
                assert!(!bytes.is_empty());
                Value::String(String::from_utf8(bytes.to_vec()).unwrap())
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
                if let Err(mismatch) = self.spec.validate(schema, &body) {
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
        ("PATCH", _) => request.json(&json!({})),
        ("POST", "/api/echo/v1/snapshot_schedules") => request
            .json(&json!({"source_host_id": "host01", "database_ids": ["5"], "interval_secs": 60})),
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
    // The full rig (SDP emulator, connected hosts) so that Echo operations can succeed too.
    let echo = Echo::start(Backend::Postgres, Options::default()).await;
    let server = &echo.server;
    let store = server.db.store().await;
    let mut c = Checker {
        spec: Spec::load(),
        server,
        covered: HashSet::new(),
    };
    let (get, put, post, delete) = (Method::GET, Method::PUT, Method::POST, Method::DELETE);

    c.check(&get, "/healthz", c.request(&get, "/healthz", None))
        .await;
    c.check(&get, "/readyz", c.request(&get, "/readyz", None))
        .await;
    c.check(&get, "/metrics", c.request(&get, "/metrics", None))
        .await;
    for core in [
        "/api/v2/flex/info",
        "/api/v1/version",
        "/api/v1/pages/dashboard",
    ] {
        c.check(&get, core, c.admin(&get, core)).await;
    }

    // No hosts at all is a 204: only a server without the rig's hosts can show it.
    let empty = TestServer::start(Backend::Sqlite).await;
    for family in HOST_FAMILIES {
        let list = format!("{family}/hosts");
        c.check(&get, &list, empty.admin(get.clone(), &list)).await;
    }
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
            record: task("busy-task", TaskState::Running, CommandType::Deploy, "ref"),
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
        let paged = format!("{path}?q=host&limit=1&after=a");
        let page = c.check(&get, path, c.admin(&get, &paged)).await;
        assert_eq!(page.as_array().unwrap().len(), 1, "{page}");
        let bad = format!("{path}?limit=0");
        c.check(&get, path, c.admin(&get, &bad)).await;
        let body = c.check(&get, path, c.admin(&get, path)).await;
        assert_eq!(
            body.as_array().unwrap().len(),
            5,
            "3 rig hosts, busy01, host01"
        );
    }

    let mut done = task(
        "t1",
        TaskState::Completed,
        CommandType::CreateDbSnapshot,
        "ref",
    );
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
        let paged = format!("{list}?limit=1&before=t1");
        c.check(&get, &list, c.admin(&get, &paged)).await;
        let cursor_alone = format!("{list}?before=t1");
        c.check(&get, &list, c.admin(&get, &cursor_alone)).await;
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

    echo_operations(&mut c, &echo).await;
    lifecycle_ops::lifecycle_operations(&mut c, &echo).await;
    events_ops::event_operations(&mut c).await;

    let audit = "/api/v1/audit";
    for query in ["?limit=5&ref_id=x", "?since=0", "?limit=0"] {
        let path = format!("{audit}{query}");
        c.check(&get, audit, c.admin(&get, &path)).await;
    }
    // Reconcile: read and applied, answered 502 when the array cannot be read, and 409 by a
    // Flex without an SDP.
    let reconcile = "/api/v1/sdp/reconcile";
    for method in [&get, &post] {
        c.check(method, reconcile, c.admin(method, reconcile)).await;
        let no_sdp = empty.admin(method.clone(), reconcile);
        c.check(method, reconcile, no_sdp).await;
        echo.sdp.add_fault(FaultRule {
            method: Some("GET".into()),
            collection: Some("volumes".into()),
            status: Some(400),
            error_code: Some("MC_ERR_BAD_PARAMETER".into()),
            ..FaultRule::new(FaultAction::Error)
        });
        c.check(method, reconcile, c.admin(method, reconcile)).await;
    }
    // Held off after five failures (a name of its own; the address is held off too, so last).
    for _ in 0..6 {
        let request = c
            .request(&post, login, None)
            .form(&[("username", "ghost"), ("password", "no")]);
        c.check(&post, login, request).await;
    }

    // Every protected operation: without a token, and with a host agent's token.
    let documented = c.spec.documented();
    for (template, method, status) in &documented {
        if template == agent {
            continue;
        }
        let method: Method = method.to_uppercase().parse().unwrap();
        let request = match status.as_str() {
            "401" if template != login => sample_request(&c, &method, template, None),
            "403" => sample_request(&c, &method, template, Some(host_token.as_str())),
            // Every operation refuses a malformed hs-ref-id.
            "400" => sample_request(&c, &method, template, Some(ADMIN_TOKEN))
                .header("hs-ref-id", "not valid!"),
            _ => continue,
        };
        c.check(&method, template, request).await;
    }

    // With the database gone, every operation that needs it answers 503.
    let name = server.db.url.rsplit('/').next().unwrap().to_owned();
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&crate::support::postgres_url())
            .await
            .unwrap();
    sqlx::Executor::execute(
        &mut admin,
        sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")),
    )
    .await
    .unwrap();
    // A token read in the last second is served from memory (`store/token_cache.rs`): until
    // that has passed, a request with a malformed body gets past authentication and is
    // rightly refused for its body (400) without the database. Past it, authentication
    // needs the database, as every protected operation then does.
    tokio::time::sleep(flex::store::TOKEN_FRESH_FOR + std::time::Duration::from_millis(100)).await;
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

/// Sends a request with a JSON body through the checker.
async fn send(
    c: &mut Checker<'_>,
    method: &Method,
    template: &str,
    path: &str,
    body: Value,
) -> Value {
    let request = c.admin(method, path).json(&body);
    c.check(method, template, request).await
}

/// Sends a task-creating request through the checker and waits for the task to end.
async fn run(
    c: &mut Checker<'_>,
    echo: &Echo,
    method: &Method,
    template: &str,
    path: &str,
    body: Value,
) -> Value {
    let task = send(c, method, template, path, body).await;
    assert_eq!(task["state"], "running", "{method} {path}: {task}");
    let done = echo.wait(&task).await;
    assert_eq!(done["state"], "completed", "{method} {path}: {done}");
    done
}

fn dest(host: &str, db: &str, name: &str) -> Value {
    json!({"host_id": host, "db_id": db, "db_name": name})
}

/// Every Echo operation, each documented status.
async fn echo_operations(c: &mut Checker<'_>, echo: &Echo) {
    let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
    let bad_json =
        |c: &Checker<'_>, method: &Method, path: &str| c.admin(method, path).body("{oops");

    // Snapshots on all three families; 400, 404 and 409 on each.
    let mut snapshots = Vec::new();
    for (template, db, level) in [
        ("/flex/api/v1/db_snapshots", "5", "application"),
        ("/api/echo/v1/db_snapshots", "6", "crash"),
        ("/api/ocie/v1/db_snapshots", "5", "crash"),
    ] {
        let done = run(
            c,
            echo,
            &post,
            template,
            template,
            json!({"source_host_id": "src-01", "database_ids": [db], "consistency_level": level}),
        )
        .await;
        snapshots.push(
            done["result"]["db_snapshot"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        send(
            c,
            &post,
            template,
            template,
            json!({"source_host_id": "src-01", "database_ids": ["5"], "name_prefix": "X"}),
        )
        .await;
        send(
            c,
            &post,
            template,
            template,
            json!({"source_host_id": "ghost", "database_ids": ["5"]}),
        )
        .await;
        send(
            c,
            &post,
            template,
            template,
            json!({"source_host_id": "host01", "database_ids": ["5"]}),
        )
        .await;
    }
    let (snap_a, snap_b, snap_c) = (
        snapshots[0].clone(),
        snapshots[1].clone(),
        snapshots[2].clone(),
    );
    for template in ["/api/echo/v1/db_snapshots", "/api/ocie/v1/db_snapshots"] {
        let listed = c.check(&get, template, c.admin(&get, template)).await;
        assert!(listed.as_array().unwrap().len() >= 3);
    }
    let check = "/api/echo/v1/db_snapshots/__validate";
    send(
        c,
        &post,
        check,
        check,
        json!({"source_host_id": "src-01", "database_ids": ["5"]}),
    )
    .await;
    let request = bad_json(c, &post, check);
    c.check(&post, check, request).await;

    // Snapshot + clone on all three families.
    let mut clones = Vec::new();
    for (template, host, db, name) in [
        ("/flex/api/v1/ocie/clone", "dev-01", "5", "c1"),
        ("/api/echo/v1/echo_dbs", "dev-02", "6", "c2"),
        ("/api/ocie/v1/clone", "dev-01", "6", "c3"),
    ] {
        let done = run(
            c,
            echo,
            &post,
            template,
            template,
            json!({"source_host_id": "src-01", "destinations": [dest(host, db, name)]}),
        )
        .await;
        clones.push(done);
        send(
            c,
            &post,
            template,
            template,
            json!({"source_host_id": "src-01"}),
        )
        .await;
        send(
            c,
            &post,
            template,
            template,
            json!({"source_host_id": "src-01", "destinations": [dest("dev-09", "5", "x")]}),
        )
        .await;
        send(
            c,
            &post,
            template,
            template,
            json!({"source_host_id": "src-01", "destinations": [dest("dev-01", "5", "c1")]}),
        )
        .await;
    }
    let check = "/api/echo/v1/echo_dbs/__validate";
    send(
        c,
        &post,
        check,
        check,
        json!({"source_host_id": "src-01", "destinations": [dest("dev-01", "5", "c1")]}),
    )
    .await;
    let request = bad_json(c, &post, check);
    c.check(&post, check, request).await;

    // Clone from an existing snapshot: seed POST and GET, current, legacy.
    let import = |template: &'static str| (template, template.replace("{id}", &snap_a));
    let mut name = 0;
    for (template, path, method) in [
        (
            import("/flex/api/v1/db_snapshots/{id}/clone").0,
            import("/flex/api/v1/db_snapshots/{id}/clone").1,
            &post,
        ),
        (
            import("/flex/api/v1/db_snapshots/{id}/clone").0,
            import("/flex/api/v1/db_snapshots/{id}/clone").1,
            &get,
        ),
        (
            import("/api/echo/v1/db_snapshots/{id}/echo_db").0,
            import("/api/echo/v1/db_snapshots/{id}/echo_db").1,
            &post,
        ),
        (
            import("/api/ocie/v1/db_snapshots/{id}/clone").0,
            import("/api/ocie/v1/db_snapshots/{id}/clone").1,
            &post,
        ),
    ] {
        name += 1;
        run(
            c,
            echo,
            method,
            template,
            &path,
            json!({"destinations": [{"host_id": "dev-02", "db_name": format!("i{name}")}]}),
        )
        .await;
        send(c, method, template, &path, json!({"destinations": [{"host_id": "dev-02", "db_name": "z"}], "target_state": "asleep"})).await;
        let unknown = template.replace("{id}", "nope");
        send(
            c,
            method,
            template,
            &unknown,
            json!({"destinations": [{"host_id": "dev-02", "db_name": "z"}]}),
        )
        .await;
        send(
            c,
            method,
            template,
            &path,
            json!({"destinations": [{"host_id": "dev-02", "db_name": "i1"}]}),
        )
        .await;
    }
    let check = "/api/echo/v1/db_snapshots/{id}/echo_db/__validate";
    let path = check.replace("{id}", &snap_a);
    send(
        c,
        &post,
        check,
        &path,
        json!({"destinations": [{"host_id": "dev-02", "db_name": "i1"}]}),
    )
    .await;
    let request = bad_json(c, &post, &path);
    c.check(&post, check, request).await;

    // Refresh and its alias on every family: c1 and c3 on dev-01 get the newer snapshot.
    let refreshes = ["/api/echo/v1", "/api/ocie/v1", "/flex/api/v1"]
        .into_iter()
        .flat_map(|family| [(family, "_refresh", "c1"), (family, "_replace", "c3")]);
    for (family, verb, echo_db) in refreshes {
        let template = format!("{family}/hosts/{{host_id}}/databases/{verb}");
        let path = template.replace("{host_id}", "dev-01");
        let newer = if echo_db == "c1" { &snap_c } else { &snap_b };
        run(
            c,
            echo,
            &post,
            &template,
            &path,
            json!({"snapshot_id": newer, "db_names": [echo_db]}),
        )
        .await;
        send(
            c,
            &post,
            &template,
            &path,
            json!({"snapshot_id": newer, "db_names": [echo_db], "target_state": "asleep"}),
        )
        .await;
        send(
            c,
            &post,
            &template,
            &path,
            json!({"snapshot_id": newer, "db_names": [echo_db], "keep_backup": true}),
        )
        .await;
        send(
            c,
            &post,
            &template,
            &path,
            json!({"snapshot_id": "nope", "db_names": [echo_db]}),
        )
        .await;
        let offline = template.replace("{host_id}", "host01");
        send(
            c,
            &post,
            &template,
            &offline,
            json!({"snapshot_id": newer, "db_names": ["x"]}),
        )
        .await;
        let check = format!("{template}/__validate");
        let check_path = format!("{path}/__validate");
        send(
            c,
            &post,
            &check,
            &check_path,
            json!({"snapshot_id": newer, "db_names": [echo_db]}),
        )
        .await;
        let request = bad_json(c, &post, &check_path);
        c.check(&post, &check, request).await;
    }

    // Delete echo DBs on all three families.
    for (template, host, name) in [
        ("/flex/api/v1/ocie/clone", "dev-01", "c1"),
        ("/api/echo/v1/echo_dbs", "dev-02", "c2"),
        ("/api/ocie/v1/clone", "dev-01", "c3"),
    ] {
        let id = echo.database_id(host, name).await;
        let check = "/api/echo/v1/echo_dbs/__validate";
        send(
            c,
            &delete,
            check,
            check,
            json!({"host_id": host, "database_id": id}),
        )
        .await;
        let task = send(
            c,
            &delete,
            template,
            template,
            json!({"host_id": host, "database_id": id}),
        )
        .await;
        assert_eq!(echo.wait(&task).await["state"], "completed");
        send(c, &delete, template, template, json!({"host_id": host})).await;
        send(
            c,
            &delete,
            template,
            template,
            json!({"host_id": host, "database_id": "777"}),
        )
        .await;
        send(
            c,
            &delete,
            template,
            template,
            json!({"host_id": "host01", "database_id": "777"}),
        )
        .await;
    }
    let check = "/api/echo/v1/echo_dbs/__validate";
    let request = bad_json(c, &delete, check);
    c.check(&delete, check, request).await;

    // Delete snapshots: the seed path at once, the others as tasks; refused while in use.
    let seed = "/flex/api/v1/db_snapshots/{id}";
    let in_use = seed.replace("{id}", &snap_a);
    c.check(&delete, seed, c.admin(&delete, &in_use)).await;
    c.check(
        &delete,
        seed,
        c.admin(&delete, &seed.replace("{id}", "nope")),
    )
    .await;
    let unused = |n: usize| {
        clones[n]["result"]["db_snapshot"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    c.check(
        &delete,
        seed,
        c.admin(&delete, &seed.replace("{id}", &unused(0))),
    )
    .await;
    for (template, n) in [
        ("/api/echo/v1/db_snapshots/{id}", 1),
        ("/api/ocie/v1/db_snapshots/{id}", 2),
    ] {
        let path = template.replace("{id}", &unused(n));
        let task = c.check(&delete, template, c.admin(&delete, &path)).await;
        assert_eq!(echo.wait(&task).await["state"], "completed");
        c.check(
            &delete,
            template,
            c.admin(&delete, &template.replace("{id}", "nope")),
        )
        .await;
        c.check(
            &delete,
            template,
            c.admin(&delete, &template.replace("{id}", &snap_a)),
        )
        .await;
    }
    let check = "/api/echo/v1/db_snapshots/{id}/__validate";
    let verdict = c
        .check(
            &delete,
            check,
            c.admin(&delete, &check.replace("{id}", &snap_a)),
        )
        .await;
    assert_eq!(verdict["valid"], false);
    c.check(
        &delete,
        check,
        c.admin(&delete, &check.replace("{id}", "nope")),
    )
    .await;

    // Abort on all three families: a running task, a finished one, an unknown one.
    let finished = clones[0]["request_id"].as_str().unwrap().to_owned();
    for family in ["/flex/api/v1/ocie", "/api/echo/v1", "/api/ocie/v1"] {
        let template = format!("{family}/tasks/{{request_id}}/abort");
        for id in ["busy-task", finished.as_str(), "nope"] {
            let path = template.replace("{request_id}", id);
            c.check(&post, &template, c.admin(&post, &path)).await;
        }
    }
}

/// The validator the contract test relies on refuses what the spec does not allow.
#[test]
fn the_spec_validator_tells_good_bodies_from_bad() {
    let spec = Spec::load();
    let task = json!({"$ref": "#/components/schemas/Task"});
    let good = json!({
        "state": "running", "create_ts": 1, "update_ts": 1, "request_id": "t", "owner": "ocie-0",
        "command_type": "CreateCloneCommand", "ref_id": "r", "error": "", "result": null,
        "location": "/api/echo/v1/tasks/t",
    });
    assert_eq!(spec.validate(&task, &good), Ok(()));
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("state");
    assert!(spec.validate(&task, &missing).is_err());
    let mut wrong = good.clone();
    wrong["state"] = json!("sleeping");
    assert!(spec.validate(&task, &wrong).unwrap_err().contains("state"));
    let mut ill_typed = good;
    ill_typed["create_ts"] = json!("yesterday");
    assert!(spec.validate(&task, &ill_typed).is_err());
}
