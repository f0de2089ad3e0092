//! Topology in the shape of the real Flex's response, on both of its paths.

use serde_json::{Value, json};

use crate::{
    support::builders::database,
    support::{Backend, TestServer},
};

async fn topology_lists_hosts_and_their_databases(backend: Backend) {
    let server = TestServer::start(backend).await;
    for path in ["/api/ocie/v1/topology", "/api/echo/v1/topology"] {
        let empty = server.get(path).await;
        assert_eq!(empty.status(), 200);
        assert_eq!(empty.json::<Value>().await.unwrap(), json!([]));
    }
    server.register_host("echo02").await;
    server.register_host("echo01").await;
    let store = server.db.store().await;
    store
        .replace_databases(
            "echo02",
            &[
                database("echo02", "2", "tempdb"),
                database("echo02", "5", "sales"),
            ],
        )
        .await
        .unwrap();

    // A topology response captured from a production Flex (docs/reference).
    let example: Value =
        serde_json::from_str(include_str!("../fixtures/topology-example.json")).unwrap();
    for path in ["/api/ocie/v1/topology", "/api/echo/v1/topology"] {
        let topology: Value = server.get(path).await.json().await.unwrap();
        let entries = topology.as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["host"]["id"], "echo01");
        assert_eq!(entries[1]["host"]["id"], "echo02");
        // Every field of the captured response is present, with the same JSON type.
        assert_same_keys(&example[1]["host"], &entries[1]["host"], "host");
        assert_same_keys(
            &example[1]["databases"][0],
            &entries[1]["databases"][0],
            "database",
        );
        assert_same_keys(
            &example[1]["databases"][0]["files"][0],
            &entries[1]["databases"][0]["files"][0],
            "file",
        );
        assert_eq!(entries[0]["databases"], json!([]));
        let dbs = entries[1]["databases"].as_array().unwrap();
        assert_eq!(
            dbs.iter()
                .map(|d| d["name"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["sales", "tempdb"]
        );
        let file = &dbs[0]["files"][0];
        assert_eq!(
            file["volume_scsi_sn"], "1344090006",
            "joined by mount point"
        );
        assert_eq!(dbs[0]["db_snapshots"], json!([]));
        assert_eq!(dbs[0]["parent"], Value::Null);
        // No agent connected yet: no snapshot, and the reason says why.
        assert_eq!(dbs[0]["db_snapshot_allowed"], false);
        assert!(
            dbs[0]["db_snapshot_disallowed_reason"]
                .as_str()
                .unwrap()
                .contains("not connected")
        );
    }
}

fn assert_same_keys(expected: &Value, actual: &Value, what: &str) {
    let expected = expected.as_object().expect("example object");
    let actual = actual
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object"));
    for (key, value) in expected {
        let got = actual
            .get(key)
            .unwrap_or_else(|| panic!("{what} lacks '{key}': {actual:?}"));
        let same_type = std::mem::discriminant(value) == std::mem::discriminant(got)
            || (value.is_number() && got.is_null())
            || (value.is_string() && got.is_null());
        assert!(same_type, "{what}.{key}: expected like {value}, got {got}");
    }
}

crate::on_both_backends!(topology_lists_hosts_and_their_databases);
