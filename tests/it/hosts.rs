//! Hosts and their databases through the HTTP API, on every path family.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    support::builders::database,
    support::{Backend, TestServer, error_body},
};

const HOST_FAMILIES: [&str; 3] = ["/flex/api/v1", "/api/v1", "/api/hostess/v1"];

async fn register_get_list_unregister_on_every_family(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (n, family) in HOST_FAMILIES.iter().enumerate() {
        let host_id = format!("host{n}");
        let hosts = server.get(&format!("{family}/hosts")).await;
        assert_eq!(hosts.status(), 204, "no hosts is 204 on {family}");
        assert_eq!(hosts.content_length(), Some(0));

        let created = server
            .admin(Method::PUT, &format!("{family}/hosts/{host_id}"))
            .body(r#"{"db_vendor": "mssql"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        assert_eq!(created["host_id"], host_id.as_str());
        assert_eq!(created["db_vendor"], "mssql");
        assert!(created["token"].as_str().unwrap().len() >= 32);

        let again = server
            .admin(Method::PUT, &format!("{family}/hosts/{host_id}"))
            .json(&json!({"db_vendor": "mssql"}))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 409);
        assert_eq!(error_body(again).await["code"], "HOST_ALREADY_EXISTS");

        let host: Value = server
            .get(&format!("{family}/hosts/{host_id}"))
            .await
            .json()
            .await
            .unwrap();
        for field in [
            "host_id",
            "db_vendor",
            "last_seen_ts",
            "host_name",
            "host_iqn",
            "host_os",
            "host_os_version",
            "agent_version",
            "cloud_vendor",
            "is_connected",
            "db_engine_version",
        ] {
            assert!(host.get(field).is_some(), "GET host lacks {field}: {host}");
        }
        assert_eq!(host["host_id"], host_id.as_str());
        assert_eq!(host["is_connected"], false);
        assert!(host["last_seen_ts"].as_i64().unwrap() > 1_700_000_000);

        let list: Value = server
            .get(&format!("{family}/hosts"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0], host);

        let deleted = server
            .admin(Method::DELETE, &format!("{family}/hosts/{host_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
        let missing = server.get(&format!("{family}/hosts/{host_id}")).await;
        assert_eq!(missing.status(), 404);
        assert_eq!(error_body(missing).await["code"], "HOST_NOT_FOUND");
        let deleted_again = server
            .admin(Method::DELETE, &format!("{family}/hosts/{host_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted_again.status(), 204, "unregister is idempotent");
    }
}

async fn the_installer_sequence_delete_then_put(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.register_host("dev-2").await;
    let deleted = server
        .admin(Method::DELETE, "/flex/api/v1/hosts/dev-2")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let second = server.register_host("dev-2").await;
    assert_ne!(first, second, "re-registration mints a new token");
    // The first token died with the first registration.
    let store = server.db.store().await;
    assert!(
        flex::auth::authenticate(&store, &first)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        flex::auth::authenticate(&store, &second)
            .await
            .unwrap()
            .is_some()
    );
}

async fn registration_validates_id_and_vendor(backend: Backend) {
    let server = TestServer::start(backend).await;
    for bad_id in ["ab", "1host", "host-", "h%20st", &"h".repeat(33)] {
        let response = server
            .admin(Method::PUT, &format!("/api/v1/hosts/{bad_id}"))
            .body(r#"{"db_vendor":"mssql"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad_id}");
        assert_eq!(error_body(response).await["code"], "INVALID_HOST_ID");
    }
    let cases = [
        (r#"{"db_vendor":"oracle"}"#, "INVALID_FIELD", "db_vendor"),
        (r#"{"db_vendor":7}"#, "INVALID_FIELD", "db_vendor"),
        (r"{}", "INVALID_FIELD", "db_vendor"),
        (r#"{"db_vendor":"mssql""#, "INVALID_JSON", "JSON"),
        ("", "INVALID_JSON", "empty"),
    ];
    for (body, code, mentions) in cases {
        let response = server
            .admin(Method::PUT, "/api/v1/hosts/host01")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error = error_body(response).await;
        assert_eq!(error["code"], code, "{body}");
        assert!(
            error["message"].as_str().unwrap().contains(mentions),
            "message of {body} should mention {mentions}: {error}"
        );
    }
    // Unknown fields from other generations are ignored.
    let response = server
        .admin(Method::PUT, "/api/v1/hosts/host01")
        .body(r#"{"db_vendor":"mssql","use_vss":true,"extra":{"a":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // Nothing was half-written by the refused attempts.
    let list: Value = server.get("/api/v1/hosts").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

async fn unregister_is_refused_while_a_task_runs(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.register_host("host01").await;
    let store = server.db.store().await;
    store
        .insert_task(&flex::store::NewTask {
            record: crate::support::builders::task(
                "T1",
                flex::model::TaskState::Running,
                flex::model::CommandType::Deploy,
                "abc",
            ),
            host_ids: vec!["host01".into()],
        })
        .await
        .unwrap();
    let response = server
        .admin(Method::DELETE, "/flex/api/v1/hosts/host01")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let error = error_body(response).await;
    assert_eq!(error["code"], "HOST_IN_USE");
    assert!(error["message"].as_str().unwrap().contains("T1"));
    assert_eq!(server.get("/flex/api/v1/hosts/host01").await.status(), 200);
}

async fn databases_come_from_inventory(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.register_host("host01").await;
    let empty = server.get("/api/v1/hosts/host01/databases").await;
    assert_eq!(empty.status(), 200);
    assert_eq!(empty.json::<Value>().await.unwrap(), json!([]));
    let missing_host = server.get("/api/v1/hosts/ghost/databases").await;
    assert_eq!(missing_host.status(), 404);
    assert_eq!(error_body(missing_host).await["code"], "HOST_NOT_FOUND");

    let store = server.db.store().await;
    store
        .replace_databases("host01", &[database("host01", "5", "sales")])
        .await
        .unwrap();
    let list: Value = server
        .get("/api/v1/hosts/host01/databases")
        .await
        .json()
        .await
        .unwrap();
    let expected = json!({
        "id": "5",
        "host_id": "host01",
        "name": "sales",
        "vendor": "mssql",
        "status": "ONLINE",
        "mssql": {"files": [{"name": "data", "file_id": 1, "kind": "data", "path": "E:\\data.mdf", "size_mb": 8}]},
        "mount_points": [{"kind": "disk", "path": "E:\\", "serial": "1344090006"}],
    });
    assert_eq!(list, json!([expected.clone()]));
    let one: Value = server
        .get("/api/v1/hosts/host01/databases/5")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one, expected);
    let missing_db = server.get("/api/v1/hosts/host01/databases/6").await;
    assert_eq!(missing_db.status(), 404);
    assert_eq!(error_body(missing_db).await["code"], "DB_NOT_FOUND");
}

crate::on_both_backends!(
    register_get_list_unregister_on_every_family,
    the_installer_sequence_delete_then_put,
    registration_validates_id_and_vendor,
    unregister_is_refused_while_a_task_runs,
    databases_come_from_inventory,
);
