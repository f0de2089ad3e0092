//! The public tools Silk's users run against Flex, call by call, sent exactly as each tool
//! sends them (headers, content type or none, body shape), checking the fields each tool reads:
//! the host installer scripts, the PowerShell module, the Terraform provider and the examples
//! of the Echo documentation.

use std::time::Duration;

use flex::emulators::agent::DatabaseIds;
use reqwest::{Method, header};
use serde_json::{Value, json};

use crate::support::{Backend, Echo, Options, TestServer};

/// The rig's bootstrap user (`support::rig::server_config`).
const USER: &str = "admin";
const PASSWORD: &str = "pw";

/// Logs in as `Connect-FLEX` does: a string body and no `Content-Type` at all.
async fn login_as_the_powershell_module(echo: &Echo) -> String {
    let response = echo
        .server
        .client
        .post(echo.server.url("/api/v1/auth/local/login"))
        .body(format!("password={PASSWORD}&username={USER}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["expiresOn"].is_string(), "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A GET as the PowerShell module sends it: `Bearer` followed by two spaces.
async fn module_get(echo: &Echo, token: &str, path: &str) -> Value {
    let response = echo
        .server
        .client
        .get(echo.server.url(path))
        .header(header::AUTHORIZATION, format!("Bearer  {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_installer_probes_flex_reads_the_sdp_and_registers_its_host() {
    let echo = Echo::start(Backend::Sqlite, Options::default()).await;
    // Its login: a form with its content type.
    let login: Value = echo
        .server
        .client
        .post(echo.server.url("/api/v1/auth/local/login"))
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("username={USER}&password={PASSWORD}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let call = |method: Method, path: &str| {
        echo.server
            .client
            .request(method, echo.server.url(path))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
    };

    let info = call(Method::GET, "/api/v2/flex/info").send().await.unwrap();
    assert_eq!(info.status(), 200, "the connectivity probe");
    let info: Value = info.json().await.unwrap();
    assert_eq!(info["sdp_configured"], true, "{info}");
    assert!(info["instance_id"].as_str().is_some_and(|i| !i.is_empty()));

    let dashboard: Value = call(Method::GET, "/api/v1/pages/dashboard")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let k2x = &dashboard["k2xs"][0];
    let array = echo.array();
    assert_eq!(k2x["id"], array.system_id.as_str(), "{dashboard}");
    assert_eq!(k2x["name"], array.system_name.as_str());
    assert_eq!(k2x["state"], "ONLINE");
    assert!(
        k2x["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{k2x}"
    );
    // It then calls the array itself where the dashboard says it is.
    let sdp = reqwest::Url::parse(&echo.sdp.url).unwrap();
    assert_eq!(k2x["mc_floating_ip"], sdp.host_str().unwrap());
    assert_eq!(k2x["mc_https_port"], sdp.port().unwrap());
    let state = echo
        .server
        .client
        .get(format!(
            "http://{}:{}/api/v2/system/state",
            k2x["mc_floating_ip"].as_str().unwrap(),
            k2x["mc_https_port"]
        ))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        state.status(),
        200,
        "the array answers where the dashboard points"
    );
    assert_eq!(
        k2x["cluster_id"], dashboard["clusters"][0]["id"],
        "{dashboard}"
    );

    // Unregister if it exists, then register, under the legacy prefix.
    let path = "/api/hostess/v1/hosts/win-sql-07";
    let gone = call(Method::DELETE, path).send().await.unwrap();
    assert_eq!(gone.status(), 204);
    let registered = call(Method::PUT, path)
        .body(r#"{"db_vendor": "mssql"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let registered: Value = registered.json().await.unwrap();
    assert!(registered["token"].as_str().is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn the_powershell_module_connects_and_checks_the_version_and_cluster() {
    let echo = Echo::start(Backend::Sqlite, Options::default()).await;
    let token = login_as_the_powershell_module(&echo).await;
    let version = module_get(&echo, &token, "/api/v1/version").await;
    let parts: Vec<u64> = version["version"]
        .as_str()
        .unwrap()
        .trim_start_matches('v')
        .split('.')
        .map(|part| part.parse().unwrap())
        .collect();
    assert_eq!(parts.len(), 3, "{version}");
    // Test-MinVersion refuses a Flex whose minor number is below 1.4's.
    assert!(parts[1] >= 4, "{version}");

    let dashboard = module_get(&echo, &token, "/api/v1/pages/dashboard").await;
    let cluster = &dashboard["clusters"][0];
    assert!(cluster["cluster_type"].is_string(), "{dashboard}");
    assert!(cluster["id"].is_string() && cluster["name"].is_string());
    let k2x = &dashboard["k2xs"][0];
    for field in [
        "id",
        "name",
        "version",
        "mc_floating_ip",
        "mc_url",
        "state",
        "cluster_id",
    ] {
        assert!(k2x[field].is_string(), "{field}: {k2x}");
    }
    assert!(k2x["mc_https_port"].is_u64(), "{k2x}");
}

#[tokio::test]
async fn without_an_sdp_the_dashboard_is_empty_and_the_probe_says_so() {
    let server = TestServer::start(Backend::Sqlite).await;
    let dashboard: Value = server
        .get("/api/v1/pages/dashboard")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dashboard, json!({"k2xs": [], "clusters": []}));
    let info: Value = server.get("/api/v2/flex/info").await.json().await.unwrap();
    assert_eq!(info["sdp_configured"], false);
    // These need a token like every other route.
    for path in [
        "/api/v2/flex/info",
        "/api/v1/version",
        "/api/v1/pages/dashboard",
    ] {
        let anonymous = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
    }
}

/// `Reset-FLEXEchoDBClone`: `_replace` under the seed's task family, a JSON body without a
/// content type, `keep_backup: false`.
#[tokio::test]
async fn the_module_refreshes_under_every_prefix_and_keep_backup_true_is_refused() {
    let echo = Echo::start(Backend::Sqlite, Options::default()).await;
    let cloned = echo.clone_sales_copy().await;
    assert_eq!(cloned["state"], "completed", "{cloned}");
    let snapshot = cloned["result"]["db_snapshot"]["id"].as_str().unwrap();
    let body = json!({"db_names": ["sales_copy"], "keep_backup": false, "snapshot_id": snapshot});
    for (prefix, tasks) in [
        ("/api/ocie/v1", "/api/ocie/v1/tasks/"),
        ("/flex/api/v1", "/flex/api/v1/ocie/tasks/"),
        ("/api/echo/v1", "/api/echo/v1/tasks/"),
    ] {
        for verb in ["_replace", "_refresh"] {
            let path = format!("{prefix}/hosts/dev-01/databases/{verb}");
            let checked: Value = echo
                .send(Method::POST, &format!("{path}/__validate"), body.clone())
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(checked["valid"], true, "{path}: {checked}");
            let task = echo.run(Method::POST, &path, body.clone(), 200).await;
            assert_eq!(task["state"], "completed", "{path}: {task}");
            assert!(
                task["location"].as_str().unwrap().starts_with(tasks),
                "{path}: {task}"
            );
        }
    }
    assert_eq!(echo.dest_databases("dev-01").await, ["sales_copy"]);

    let refused = echo
        .send(
            Method::POST,
            "/api/ocie/v1/hosts/dev-01/databases/_replace",
            json!({"db_names": ["sales_copy"], "keep_backup": true, "snapshot_id": snapshot}),
        )
        .await;
    assert_eq!(refused.status(), 400);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["code"], "KEEP_BACKUP_NOT_SUPPORTED", "{refused}");
}

/// The documented example picks a snapshot by `db_ids`; every host on the SDP lists it in
/// `sdps`, sources as well as destinations.
#[tokio::test]
async fn topology_carries_snapshot_db_ids_and_the_sdps_of_sources_and_destinations() {
    let echo = Echo::start(Backend::Sqlite, Options::default()).await;
    let cloned = echo.clone_sales_copy().await;
    let snapshot = cloned["result"]["db_snapshot"]["id"].as_str().unwrap();
    let topology: Value = echo
        .server
        .get("/api/echo/v1/topology")
        .await
        .json()
        .await
        .unwrap();
    let entry = |host: &str| {
        topology
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["host"]["id"] == host)
            .unwrap()
            .clone()
    };
    let source = entry("src-01");
    let sales = source["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|db| db["name"] == "sales")
        .unwrap();
    assert_eq!(sales["db_snapshots"][0]["id"], snapshot);
    assert_eq!(sales["db_snapshots"][0]["db_ids"], json!(["5"]), "{sales}");
    let system_id = echo.array().system_id;
    for host in ["src-01", "dev-01"] {
        let sdps = entry(host)["sdps"].clone();
        assert_eq!(sdps[0]["sdp_id"], system_id.as_str(), "{host}: {sdps}");
        assert!(sdps[0]["host_name"].is_string(), "{host}: {sdps}");
    }
    assert_eq!(
        entry("dev-02")["sdps"],
        json!([]),
        "no files on the SDP, no entry"
    );
}

/// A client saves an echo DB's id, refreshes it, then deletes it by the id it saved.
async fn the_saved_id_still_deletes_the_refreshed_echo_db(ids: DatabaseIds) -> (String, String) {
    let echo = Echo::start(
        Backend::Sqlite,
        Options {
            dest_database_ids: ids,
            ..Options::default()
        },
    )
    .await;
    let cloned = echo.clone_sales_copy().await;
    let saved = cloned["result"]["cloned_dbs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let newer = echo
        .run(
            Method::POST,
            "/api/echo/v1/db_snapshots",
            json!({"source_host_id": "src-01", "database_ids": ["5"]}),
            200,
        )
        .await;
    let newer = newer["result"]["db_snapshot"]["id"].as_str().unwrap();
    let refreshed = echo
        .run(
            Method::POST,
            "/api/echo/v1/hosts/dev-01/databases/_refresh",
            json!({"snapshot_id": newer, "db_names": ["sales_copy"]}),
            200,
        )
        .await;
    assert_eq!(refreshed["state"], "completed", "{refreshed}");
    let now = refreshed["result"]["cloned_dbs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // By the saved id, the refreshed database is found as it is now, with its new parent.
    let found: Value = echo
        .server
        .get(&format!("/api/v1/hosts/dev-01/databases/{saved}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["name"], "sales_copy", "{found}");
    assert_eq!(found["id"], now.as_str(), "{found}");
    assert_ne!(found["status"], "DETACHED", "{found}");
    let deleted = echo
        .run(
            Method::DELETE,
            "/api/echo/v1/echo_dbs",
            json!({"host_id": "dev-01", "database_id": saved}),
            202,
        )
        .await;
    assert_eq!(deleted["state"], "completed", "{deleted}");
    assert!(echo.dest_databases("dev-01").await.is_empty());
    (saved, now)
}

#[tokio::test]
async fn a_refreshed_echo_db_gets_its_old_id_back_as_on_sql_server() {
    let (saved, now) =
        the_saved_id_still_deletes_the_refreshed_echo_db(DatabaseIds::LowestFree).await;
    assert_eq!(saved, now, "SQL Server gives the lowest free database_id");
}

#[tokio::test]
async fn a_refreshed_echo_db_keeps_its_identity_when_the_host_gives_a_new_id() {
    let (saved, now) =
        the_saved_id_still_deletes_the_refreshed_echo_db(DatabaseIds::Ascending).await;
    assert_ne!(saved, now, "the host numbered it anew");
}

#[tokio::test]
async fn app_tokens_that_never_expire_read_minus_one() {
    let server = TestServer::start(Backend::Sqlite).await;
    for body in [
        json!({"app_name": "terraform"}),
        json!({"app_name": "terraform", "ttl": null}),
        json!({"app_name": "terraform", "ttl": -1}),
    ] {
        let created = server
            .admin(Method::POST, "/api/v2/flex_app_tokens")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "{body}");
        let created: Value = created.json().await.unwrap();
        assert_eq!(
            (&created["ttl"], &created["expire_ts"]),
            (&json!(-1), &json!(-1)),
            "{created}"
        );
    }
    let listed: Value = server
        .get("/api/v2/flex_app_tokens")
        .await
        .json()
        .await
        .unwrap();
    for token in listed.as_array().unwrap() {
        assert!(
            token["ttl"].is_i64() && token["expire_ts"].is_i64(),
            "{token}"
        );
    }
}

/// The Terraform provider finds its task by the `hs-ref-id` it sent, then waits on it.
#[tokio::test]
async fn the_terraform_provider_finds_its_task_by_ref_id() {
    let echo = Echo::start(Backend::Sqlite, Options::default()).await;
    let response = echo
        .server
        .admin(Method::POST, "/api/echo/v1/echo_dbs")
        .header("hs-ref-id", "tfApply042")
        .json(&crate::support::rig::sales_copy())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut found = Value::Null;
    for _ in 0..200 {
        found = echo
            .server
            .get("/api/echo/v1/tasks?ref_id=tfApply042")
            .await
            .json()
            .await
            .unwrap();
        if found[0]["state"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["state"], "completed", "{found}");
    assert_eq!(found[0]["ref_id"], "tfApply042");
}
