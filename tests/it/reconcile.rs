//! Reconcile on both backends: the report finds the ledger rows whose object the array lost
//! and this deployment's orphans, keeps what it cannot prove its own, and applying deletes and
//! settles exactly what the report said, each as an audited action.

use std::time::Duration;

use flex::sdp::{SdpClient, SdpConfig};
use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, Backend, Echo, Options};

async fn reconcile(echo: &Echo, apply: bool) -> Value {
    let method = if apply {
        reqwest::Method::POST
    } else {
        reqwest::Method::GET
    };
    let response = echo
        .server
        .admin(method, "/api/v1/sdp/reconcile")
        .header("hs-ref-id", "Reconcile1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn orphans_are_found_and_deleted(backend: Backend) {
    let echo = Echo::start(backend, Options::default()).await;
    let clone = echo.clone_sales_copy().await;
    assert_eq!(clone["state"], "completed", "{clone}");
    let clean = reconcile(&echo, false).await;
    let tag = clean["deployment_tag"].as_str().unwrap().to_owned();
    assert_eq!(tag.len(), 6);
    assert_eq!(clean["missing"], json!([]), "{clean:#}");
    assert_eq!(clean["orphans"], json!([]), "{clean:#}");

    // A viewer may not even read it.
    let viewer = echo
        .server
        .create_app_token(json!({"app_name": "looker", "role": "viewer"}))
        .await;
    let refused = echo
        .server
        .client
        .get(echo.server.url("/api/v1/sdp/reconcile"))
        .bearer_auth(viewer["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // Flex's clone is named with the tag; make orphans beside it by hand, as a lost database
    // would have left them, and lose one of Flex's mappings.
    let array = echo.array();
    let flex_clone = array
        .volumes
        .values()
        .find(|v| v.is_thin_clone)
        .unwrap()
        .clone();
    assert!(
        flex_clone.name.starts_with(&format!("echo-{tag}-")),
        "{}",
        flex_clone.name
    );
    let sdp = SdpClient::new(&SdpConfig::new(&echo.sdp.url, "admin", "admin")).unwrap();
    let made = |name: String| {
        let sdp = sdp.clone();
        let source = flex_clone.clone();
        async move {
            sdp.create_thin_clone(
                &name,
                source.volume_group,
                source.source_snapshot.unwrap(),
                source.source_volume.unwrap(),
            )
            .await
            .unwrap();
            sdp.wait_for_volume(&name, Duration::from_secs(5))
                .await
                .unwrap()
        }
    };
    let ours = made(format!("echo-{tag}-zzzzzzzz-0-1")).await;
    let untagged = made("echo-yyyyyyyy-0-1".into()).await;
    let _theirs = made("echo-qqqqqq-xxxxxxxx-0-1".into()).await;
    let ledger = echo.server.db.store().await.ledger_live().await.unwrap();
    let mapping = ledger
        .iter()
        .find(|row| row.kind == flex::model::LedgerKind::Mapping)
        .unwrap()
        .clone();
    assert!(sdp.delete("mappings", mapping.sdp_id).await.unwrap());

    let report = reconcile(&echo, false).await;
    assert_eq!(report["applied"], false);
    assert_eq!(report["other_deployments"], json!({"qqqqqq": 1}));
    let missing = report["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{report:#}");
    assert_eq!(missing[0]["kind"], "mapping");
    assert_eq!(missing[0]["sdp_id"], mapping.sdp_id);
    assert_eq!(missing[0]["action"], "settle");
    let orphans = report["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 2, "{report:#}");
    let entry = |id: u64| orphans.iter().find(|o| o["sdp_id"] == id).unwrap().clone();
    assert_eq!(entry(ours.id)["action"], "delete");
    assert_eq!(entry(ours.id)["task_short_id"], "zzzzzzzz");
    assert_eq!(entry(untagged.id)["action"], "keep");
    assert_eq!(entry(untagged.id)["untagged"], true);
    // The CLI shows the same report.
    let cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_flex"))
        .args(["reconcile", "--output", "json", "--url"])
        .arg(echo.server.url(""))
        .args(["--token", ADMIN_TOKEN])
        .env_remove("FLEX_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let shown: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(shown["orphans"], report["orphans"]);
    assert_eq!(shown["applied"], false);
    // The report changed nothing.
    assert!(echo.array().volumes.contains_key(&ours.id));

    let applied = reconcile(&echo, true).await;
    assert_eq!(applied["applied"], true);
    let done = applied["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["sdp_id"] == ours.id)
        .unwrap()
        .clone();
    assert_eq!(done["outcome"], "done", "{applied:#}");
    assert_eq!(applied["missing"][0]["outcome"], "done", "{applied:#}");
    let after = echo.array();
    assert!(!after.volumes.contains_key(&ours.id), "the orphan is gone");
    assert!(
        after.volumes.contains_key(&untagged.id),
        "the untagged one stays"
    );
    assert!(
        after.volumes.contains_key(&flex_clone.id),
        "Flex's clone stays"
    );
    let store = echo.server.db.store().await;
    let row = store
        .ledger_entry(mapping.kind, mapping.sdp_id)
        .await
        .unwrap()
        .unwrap();
    assert!(row.deleted_ms.is_some(), "the lost mapping is settled");

    // Each action is in the audit trail, under the request's ref id.
    let trail: Value = echo
        .server
        .get("/api/v1/audit?ref_id=Reconcile1")
        .await
        .json()
        .await
        .unwrap();
    let paths: Vec<(String, String, Value)> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["method"].as_str().unwrap().to_owned(),
                row["path"].as_str().unwrap().to_owned(),
                row["status"].clone(),
            )
        })
        .collect();
    assert!(
        paths.contains(&(
            "DELETE".into(),
            format!("sdp:/volumes/{}", ours.id),
            json!(204)
        )),
        "{paths:?}"
    );
    assert!(
        paths.contains(&(
            "SETTLE".into(),
            format!("ledger:/mapping/{}", mapping.sdp_id),
            json!(200)
        )),
        "{paths:?}"
    );
    assert!(
        paths.contains(&("POST".into(), "/api/v1/sdp/reconcile".into(), json!(200))),
        "{paths:?}"
    );

    let settled = reconcile(&echo, false).await;
    assert_eq!(settled["missing"], json!([]), "{settled:#}");
    assert_eq!(
        settled["orphans"].as_array().unwrap().len(),
        1,
        "{settled:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_found_and_deleted_on_sqlite() {
    orphans_are_found_and_deleted(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_found_and_deleted_on_postgres() {
    orphans_are_found_and_deleted(Backend::Postgres).await;
}
