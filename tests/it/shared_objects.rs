//! SDP objects several tasks share. A destination host's SDP host object is shared by every
//! task that maps to it: deleting the host's last echo DB while an import to the same host runs
//! must not remove the host object the import is about to map to, and the import must not map
//! to one being removed. A db snapshot's VG snapshots are shared by every import cloning from
//! them: a snapshot delete must not start while one runs.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Backend, Echo, Options};

async fn a_delete_and_an_import_on_one_host_do_not_break_each_other(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    let first = echo.clone_sales_copy().await;
    assert_eq!(first["state"], "completed", "{first}");
    let snapshot = first["result"]["db_snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut current = first["result"]["cloned_dbs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for round in 0..20 {
        // The host's only echo DB goes, while a new one arrives on the same host.
        let delete = echo
            .send(
                Method::DELETE,
                "/api/echo/v1/echo_dbs",
                json!({"host_id": "dev-01", "database_id": current}),
            )
            .await;
        assert_eq!(delete.status(), 202, "round {round}");
        let import = echo
            .send(
                Method::POST,
                &format!("/api/echo/v1/db_snapshots/{snapshot}/echo_db"),
                json!({"destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": format!("copy{round}")}]}),
            )
            .await;
        assert_eq!(import.status(), 200, "round {round}");
        let (delete, import): (Value, Value) =
            (delete.json().await.unwrap(), import.json().await.unwrap());
        let deleted = echo.wait(&delete).await;
        let imported = echo.wait(&import).await;
        assert_eq!(deleted["state"], "completed", "round {round}: {deleted}");
        assert_eq!(imported["state"], "completed", "round {round}: {imported}");
        assert_eq!(
            echo.dest_databases("dev-01").await,
            [format!("copy{round}")],
            "round {round}"
        );
        let array = echo.array();
        assert_eq!(
            array.hosts.len(),
            1,
            "round {round}: one host object for dev-01"
        );
        assert_eq!(
            array.mappings.len(),
            2,
            "round {round}: the new copy's two volumes"
        );
        echo.assert_ledger_matches_array().await;
        current = imported["result"]["cloned_dbs"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    }
}

async fn a_snapshot_is_not_deleted_while_an_import_clones_from_it(backend: Backend) {
    let echo = Echo::start(
        backend,
        Options {
            dest_reply_delay: Duration::from_millis(1_500),
            ..Options::default()
        },
    )
    .await;
    let made = echo
        .run(
            Method::POST,
            "/api/echo/v1/db_snapshots",
            json!({"source_host_id": "src-01", "database_ids": ["5"], "consistency_level": "crash"}),
            200,
        )
        .await;
    assert_eq!(made["state"], "completed", "{made}");
    let snapshot = made["result"]["db_snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let import: Value = echo
        .send(
            Method::POST,
            &format!("/api/echo/v1/db_snapshots/{snapshot}/echo_db"),
            json!({"destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "sales_copy"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let import_id = import["request_id"].as_str().unwrap().to_owned();
    for _ in 0..400 {
        if echo.array().volumes.values().any(|v| v.is_thin_clone) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The import is cloning (the destination answers slowly): no path deletes the snapshot.
    for (method, path) in [
        (
            Method::DELETE,
            format!("/api/echo/v1/db_snapshots/{snapshot}"),
        ),
        (
            Method::DELETE,
            format!("/flex/api/v1/db_snapshots/{snapshot}"),
        ),
    ] {
        let refused = echo.send(method, &path, Value::Null).await;
        assert_eq!(refused.status(), 409, "{path}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "SNAPSHOT_IN_USE", "{path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(&import_id),
            "{path}: names the import: {body}"
        );
    }
    let checked: Value = echo
        .send(
            Method::DELETE,
            &format!("/api/echo/v1/db_snapshots/{snapshot}/__validate"),
            Value::Null,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(checked["valid"], false, "{checked}");
    assert_eq!(
        checked["issues"][0]["body"]["tasks"],
        json!([import_id]),
        "{checked}"
    );

    let imported = echo.wait(&import).await;
    assert_eq!(imported["state"], "completed", "{imported}");
    assert_eq!(echo.array().snapshots.len(), 1, "the VG snapshot is intact");
    echo.assert_ledger_matches_array().await;

    // Once its echo DB is gone, the snapshot goes.
    let echo_id = imported["result"]["cloned_dbs"][0]["id"].as_str().unwrap();
    let deleted = echo
        .run(
            Method::DELETE,
            "/api/echo/v1/echo_dbs",
            json!({"host_id": "dev-01", "database_id": echo_id}),
            202,
        )
        .await;
    assert_eq!(deleted["state"], "completed", "{deleted}");
    let gone = echo
        .run(
            Method::DELETE,
            &format!("/api/echo/v1/db_snapshots/{snapshot}"),
            Value::Null,
            200,
        )
        .await;
    assert_eq!(gone["state"], "completed", "{gone}");
    echo.assert_nothing_left().await;
}

crate::on_both_backends!(
    a_delete_and_an_import_on_one_host_do_not_break_each_other,
    a_snapshot_is_not_deleted_while_an_import_clones_from_it,
);
