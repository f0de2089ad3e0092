//! The SDP client against the SDP emulator, over real sockets: every call the workflows need,
//! the array's rules, and each fault class with the client's classification of it.

use std::time::{Duration, Instant};

use flex::{
    emulators::sdp::{FaultAction, FaultRule, SdpEmulator, SdpEmulatorConfig},
    sdp::{BEST_EFFORT_RETENTION, SdpClient, SdpConfig, SdpError},
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::init_tracing;

const GIB_IN_KIB: u64 = 1024 * 1024;

async fn emulator_with(config: SdpEmulatorConfig) -> SdpEmulator {
    init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    SdpEmulator::start(config, listener).await.unwrap()
}

async fn emulator() -> SdpEmulator {
    emulator_with(SdpEmulatorConfig::default()).await
}

fn client_for(emulator: &SdpEmulator) -> SdpClient {
    SdpClient::new(&SdpConfig::new(&emulator.url, "admin", "admin")).unwrap()
}

fn rule(action: FaultAction) -> FaultRule {
    FaultRule::new(action)
}

/// Raw admin or API access to the emulator, as an operator with curl would have.
async fn raw(
    emulator: &SdpEmulator,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", emulator.url))
        .basic_auth("admin", Some("admin"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_client_covers_every_call_the_workflows_need() {
    let emulator = emulator().await;
    let sdp = client_for(&emulator).with_ref_id("Ab12Cd34");

    let state = sdp.system_state().await.unwrap();
    assert_eq!(state.state, "ONLINE");
    assert_eq!(state.system_id, "134409");
    let retention = sdp
        .find_retention_policy(BEST_EFFORT_RETENTION)
        .await
        .unwrap()
        .expect("the built-in retention policy exists");

    // Source storage: two volumes in one group.
    let vg = sdp.create_volume_group("prod-sql-vg", 0).await.unwrap();
    assert_eq!(
        sdp.find_volume_group("prod-sql-vg")
            .await
            .unwrap()
            .unwrap()
            .id,
        vg.id
    );
    assert_eq!(
        sdp.get_volume_group(vg.id).await.unwrap().unwrap().name,
        "prod-sql-vg"
    );
    assert!(sdp.find_volume_group("nope").await.unwrap().is_none());
    let data = sdp
        .create_volume("prod-data", 10 * GIB_IN_KIB, vg.id)
        .await
        .unwrap();
    let log = sdp
        .create_volume("prod-log", GIB_IN_KIB, vg.id)
        .await
        .unwrap();
    assert_ne!(data.scsi_sn, log.scsi_sn);
    assert!(data.scsi_sn.starts_with("134409"), "{}", data.scsi_sn);
    assert_eq!(
        sdp.find_volume("prod-data").await.unwrap().unwrap().id,
        data.id
    );
    assert_eq!(
        sdp.find_volume_by_serial(&log.scsi_sn)
            .await
            .unwrap()
            .unwrap()
            .id,
        log.id
    );
    assert_eq!(
        sdp.get_volume(data.id).await.unwrap().unwrap().name,
        "prod-data"
    );
    assert!(sdp.get_volume(999_999).await.unwrap().is_none());
    let both = sdp
        .find_volumes_by_serials(&[data.scsi_sn.clone(), log.scsi_sn.clone()])
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(sdp.list_volumes_in_group(vg.id).await.unwrap().len(), 2);
    assert_eq!(sdp.list_volume_groups().await.unwrap().len(), 1);

    // A snapshot freezes the group's volumes as they are when it is taken.
    let snap = sdp
        .create_vg_snapshot(vg.id, "snap_1", retention.id)
        .await
        .unwrap();
    assert_eq!(snap.name, "prod-sql-vg:snap_1");
    sdp.create_volume("prod-later", GIB_IN_KIB, vg.id)
        .await
        .unwrap();
    let frozen = sdp.list_volsnaps(snap.id).await.unwrap();
    let mut frozen_sources: Vec<u64> = frozen.iter().filter_map(|v| v.source.id()).collect();
    frozen_sources.sort_unstable();
    assert_eq!(frozen_sources, vec![data.id, log.id]);
    assert_eq!(
        sdp.find_snapshot(vg.id, "snap_1")
            .await
            .unwrap()
            .unwrap()
            .id,
        snap.id
    );
    assert!(sdp.find_snapshot(vg.id, "snap_2").await.unwrap().is_none());
    assert_eq!(
        sdp.get_snapshot(snap.id).await.unwrap().unwrap().short_name,
        "snap_1"
    );
    assert_eq!(sdp.list_snapshots_of_group(vg.id).await.unwrap().len(), 1);

    // A view exposes the snapshot's volumes.
    let view = sdp
        .create_view(snap.id, "view_1", retention.id)
        .await
        .unwrap();
    assert_eq!(sdp.list_volsnaps(view.id).await.unwrap().len(), 2);
    assert!(sdp.delete_snapshot(view.id).await.unwrap());

    // Thin clones of the frozen volumes, each with its own serial.
    let clone_vg = sdp.create_volume_group("echo-dev-vg", 0).await.unwrap();
    let clone = sdp
        .create_thin_clone("echo-data-1", clone_vg.id, snap.id, data.id)
        .await
        .unwrap();
    assert!(clone.is_thin_clone);
    assert_eq!(
        clone.source_snapshot.as_ref().and_then(flex::sdp::Ref::id),
        Some(snap.id)
    );
    assert_ne!(clone.scsi_sn, data.scsi_sn);
    let listed = sdp
        .wait_for_volume("echo-data-1", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(listed.id, clone.id);

    // The destination host, its initiator, and mappings with LUNs.
    let host = sdp.create_host("dev-2", "Windows").await.unwrap();
    assert_eq!(sdp.find_host("dev-2").await.unwrap().unwrap().id, host.id);
    let iqn = "iqn.1991-05.com.microsoft:dev-2";
    let host_iqn = sdp.create_host_iqn(host.id, iqn).await.unwrap();
    assert_eq!(
        sdp.find_host_iqn(iqn).await.unwrap().unwrap().id,
        host_iqn.id
    );
    assert_eq!(
        sdp.find_host_by_iqn(iqn).await.unwrap().unwrap().id,
        host.id
    );
    assert!(sdp.find_host_by_iqn("iqn.unknown").await.unwrap().is_none());
    let mapping = sdp.create_mapping(host.id, clone.id).await.unwrap();
    assert_eq!(mapping.lun, 1);
    let second = sdp.create_mapping(host.id, log.id).await.unwrap();
    assert_eq!(second.lun, 2);
    assert_eq!(
        sdp.find_mapping(host.id, clone.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        mapping.id
    );
    assert_eq!(sdp.list_mappings_of_host(host.id).await.unwrap().len(), 2);
    let (_, visible) = raw(
        &emulator,
        reqwest::Method::GET,
        &format!("/emulator/visible_serials?iqn={iqn}"),
        None,
    )
    .await;
    assert_eq!(visible, json!([clone.scsi_sn, log.scsi_sn]));

    // Teardown in the order the array requires; deleting twice is not an error.
    assert!(sdp.delete_mapping(mapping.id).await.unwrap());
    assert!(sdp.delete_mapping(second.id).await.unwrap());
    assert!(!sdp.delete_mapping(mapping.id).await.unwrap());
    assert!(sdp.delete_volume(clone.id).await.unwrap());
    assert!(sdp.delete_snapshot(snap.id).await.unwrap());
    assert!(sdp.delete_host_iqn(host_iqn.id).await.unwrap());
    assert!(sdp.delete_host(host.id).await.unwrap());
    assert!(!sdp.delete_host(host.id).await.unwrap());

    let calls = emulator.calls();
    assert_eq!(calls.get("POST /volumes"), Some(&4));
    assert_eq!(calls.get("DELETE /mappings/{id}"), Some(&3));
    assert_eq!(calls.get("POST /snapshots"), Some(&2));
}

#[tokio::test]
async fn the_array_refuses_what_a_real_one_refuses() {
    let emulator = emulator().await;
    let sdp = client_for(&emulator);
    let retention = sdp
        .find_retention_policy(BEST_EFFORT_RETENTION)
        .await
        .unwrap()
        .unwrap();
    let vg = sdp.create_volume_group("vg1", 0).await.unwrap();
    let other_vg = sdp.create_volume_group("vg2", 0).await.unwrap();
    let volume = sdp.create_volume("v1", GIB_IN_KIB, vg.id).await.unwrap();
    let outsider = sdp
        .create_volume("v2", GIB_IN_KIB, other_vg.id)
        .await
        .unwrap();
    let snap = sdp
        .create_vg_snapshot(vg.id, "s1", retention.id)
        .await
        .unwrap();

    let expect_refused = |result: Result<_, SdpError>, status: u16, needle: &str| match result {
        Err(err @ SdpError::Permanent { .. }) => {
            assert_eq!(err.status(), Some(status), "{err}");
            assert!(
                err.to_string().contains(needle),
                "{err} should mention {needle}"
            );
        }
        Err(other) => panic!("expected a permanent refusal, got {other}"),
        Ok(()) => panic!("expected a refusal"),
    };

    // A taken name is not a refusal: the object may be the caller's own (an earlier attempt
    // whose answer was lost, or a concurrent task's shared object), to be looked up.
    let expect_exists = |result: Result<(), SdpError>| match result {
        Err(err @ SdpError::NameTaken { .. }) => {
            assert!(
                err.may_have_happened() && err.to_string().contains("already exists"),
                "{err}"
            );
        }
        other => panic!("expected 'look it up', got {other:?}"),
    };
    expect_exists(sdp.create_volume_group("vg1", 0).await.map(|_| ()));
    expect_exists(sdp.create_volume("v1", 1, vg.id).await.map(|_| ()));
    expect_refused(
        sdp.create_volume("v0", 0, vg.id).await.map(|_| ()),
        400,
        "size",
    );
    expect_exists(
        sdp.create_vg_snapshot(vg.id, "s1", retention.id)
            .await
            .map(|_| ()),
    );
    expect_refused(
        sdp.create_thin_clone("c0", vg.id, snap.id, outsider.id)
            .await
            .map(|_| ()),
        400,
        "not part of snapshot",
    );
    expect_refused(
        sdp.create_host("bad name!", "Windows").await.map(|_| ()),
        400,
        "host name",
    );

    let clone = sdp
        .create_thin_clone("c1", vg.id, snap.id, volume.id)
        .await
        .unwrap();
    expect_refused(
        sdp.delete_snapshot(snap.id).await.map(|_| ()),
        409,
        "thin clones",
    );
    let host = sdp.create_host("h1", "Windows").await.unwrap();
    let mapping = sdp.create_mapping(host.id, clone.id).await.unwrap();
    expect_refused(
        sdp.create_mapping(host.id, clone.id).await.map(|_| ()),
        409,
        "already mapped",
    );
    expect_refused(sdp.delete_volume(clone.id).await.map(|_| ()), 409, "mapped");
    expect_refused(sdp.delete_host(host.id).await.map(|_| ()), 409, "mappings");
    sdp.delete_mapping(mapping.id).await.unwrap();
    sdp.delete_volume(clone.id).await.unwrap();
    sdp.delete_snapshot(snap.id).await.unwrap();

    // A host in a host group cannot be mapped on its own.
    let (status, group) = raw(
        &emulator,
        reqwest::Method::POST,
        "/api/v2/host_groups",
        Some(json!({"name": "cluster"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = raw(
        &emulator,
        reqwest::Method::POST,
        "/api/v2/hosts",
        Some(json!({"name": "node1", "type": "Windows", "host_group": {"ref": format!("/host_groups/{}", group["id"])}})),
    )
    .await;
    assert_eq!(status, 201);
    let node = sdp.find_host("node1").await.unwrap().unwrap();
    assert!(node.host_group.is_some());
    expect_refused(
        sdp.create_mapping(node.id, volume.id).await.map(|_| ()),
        400,
        "host group",
    );

    // Wrong credentials are refused, not retried.
    let intruder = SdpClient::new(&SdpConfig::new(&emulator.url, "admin", "guess")).unwrap();
    expect_refused(
        intruder.system_state().await.map(|_| ()),
        401,
        "Unauthorized",
    );
}

#[tokio::test]
async fn thin_clones_appear_after_the_configured_delay() {
    let emulator = emulator_with(SdpEmulatorConfig {
        clone_delay: Duration::from_millis(400),
        ..Default::default()
    })
    .await;
    let sdp = client_for(&emulator);
    let retention = sdp
        .find_retention_policy(BEST_EFFORT_RETENTION)
        .await
        .unwrap()
        .unwrap();
    let vg = sdp.create_volume_group("vg", 0).await.unwrap();
    let volume = sdp.create_volume("v", GIB_IN_KIB, vg.id).await.unwrap();
    let snap = sdp
        .create_vg_snapshot(vg.id, "s", retention.id)
        .await
        .unwrap();
    let clone = sdp
        .create_thin_clone("c", vg.id, snap.id, volume.id)
        .await
        .unwrap();
    assert!(
        sdp.find_volume("c").await.unwrap().is_none(),
        "not listed at once"
    );
    assert!(sdp.get_volume(clone.id).await.unwrap().is_none());
    let early = sdp.wait_for_volume("c", Duration::from_millis(50)).await;
    assert!(
        matches!(early, Err(SdpError::Transient { .. })),
        "{early:?}"
    );
    let listed = sdp
        .wait_for_volume("c", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(listed.id, clone.id);
    // The name was taken from the moment of the POST.
    assert!(
        sdp.create_thin_clone("c", vg.id, snap.id, volume.id)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn each_fault_class_is_classified_for_the_executor() {
    let emulator = emulator().await;
    let sdp = client_for(&emulator);
    let vg = sdp.create_volume_group("vg", 0).await.unwrap();

    // 5xx: transient, and nothing happened.
    emulator.add_fault(FaultRule {
        collection: Some("volumes".into()),
        method: Some("POST".into()),
        status: Some(503),
        ..rule(FaultAction::Error)
    });
    let err = sdp.create_volume("a", 1, vg.id).await.unwrap_err();
    assert!(
        matches!(
            err,
            SdpError::Transient {
                status: Some(503),
                ..
            }
        ),
        "{err}"
    );
    assert!(sdp.find_volume("a").await.unwrap().is_none());
    sdp.create_volume("a", 1, vg.id)
        .await
        .expect("the fault was for one call");

    // 429 with Retry-After.
    emulator.add_fault(FaultRule {
        status: Some(429),
        retry_after_secs: Some(2),
        ..rule(FaultAction::Error)
    });
    let err = sdp.list_volume_groups().await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));

    // The busy family of 400s is transient; any other 400 is permanent, message kept.
    emulator.add_fault(FaultRule {
        status: Some(400),
        error_code: Some("MC_ERR_BUSY".into()),
        ..rule(FaultAction::Error)
    });
    assert!(sdp.list_volume_groups().await.unwrap_err().is_retryable());
    emulator.add_fault(FaultRule {
        status: Some(400),
        error_code: Some("MC_ERR_QUOTA".into()),
        error_msg: Some("volume group quota exceeded".into()),
        ..rule(FaultAction::Error)
    });
    let err = sdp.create_volume("b", 1, vg.id).await.unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(err.code(), Some("MC_ERR_QUOTA"));
    assert!(err.to_string().contains("volume group quota exceeded"));

    // 502 after the write: ambiguous, and a lookup finds what was created.
    emulator.add_fault(FaultRule {
        collection: Some("volume_groups".into()),
        ..rule(FaultAction::AfterWrite)
    });
    let err = sdp.create_volume_group("made-anyway", 0).await.unwrap_err();
    assert!(err.may_have_happened(), "{err}");
    assert!(
        sdp.find_volume_group("made-anyway")
            .await
            .unwrap()
            .is_some()
    );

    // A write that times out is ambiguous too; a read that times out is simply transient.
    let mut impatient_config = SdpConfig::new(&emulator.url, "admin", "admin");
    impatient_config.request_timeout = Duration::from_millis(300);
    let impatient = SdpClient::new(&impatient_config).unwrap();
    emulator.add_fault(FaultRule {
        method: Some("POST".into()),
        delay_ms: Some(1500),
        ..rule(FaultAction::Hang)
    });
    let err = impatient.create_volume("slow", 1, vg.id).await.unwrap_err();
    assert!(err.may_have_happened(), "{err}");
    assert!(sdp.find_volume("slow").await.unwrap().is_some());
    emulator.add_fault(FaultRule {
        method: Some("GET".into()),
        delay_ms: Some(1500),
        ..rule(FaultAction::Delay)
    });
    let err = impatient.list_volume_groups().await.unwrap_err();
    assert!(
        matches!(err, SdpError::Transient { status: None, .. }),
        "{err}"
    );

    // A rule with rate 0 never fires; one with no `times` fires on every match.
    emulator.add_fault(FaultRule {
        rate: Some(0.0),
        times: None,
        status: Some(500),
        ..rule(FaultAction::Error)
    });
    sdp.list_volume_groups().await.expect("rate 0 never fires");
    emulator.clear_faults();

    // Added latency applies to every call.
    let (status, _) = raw(
        &emulator,
        reqwest::Method::PUT,
        "/emulator/latency",
        Some(json!({"ms": 150})),
    )
    .await;
    assert_eq!(status, 204);
    let started = Instant::now();
    sdp.list_volume_groups().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    raw(
        &emulator,
        reqwest::Method::PUT,
        "/emulator/latency",
        Some(json!({"ms": 0})),
    )
    .await;

    // Nobody listening: transient.
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let nowhere = SdpClient::new(&SdpConfig::new(
        &format!("http://127.0.0.1:{closed_port}"),
        "a",
        "b",
    ))
    .unwrap();
    assert!(matches!(
        nowhere.system_state().await.unwrap_err(),
        SdpError::Transient { status: None, .. }
    ));
}

#[tokio::test]
async fn faults_and_counters_are_driven_over_http() {
    let emulator = emulator().await;
    let sdp = client_for(&emulator);
    let (status, added) = raw(
        &emulator,
        reqwest::Method::POST,
        "/emulator/faults",
        Some(json!({"action": "error", "method": "GET", "collection": "volume_groups", "status": 500, "times": 2})),
    )
    .await;
    assert_eq!(status, 201);
    assert!(added["id"].as_u64().is_some());
    assert!(sdp.list_volume_groups().await.is_err());
    assert!(sdp.list_volume_groups().await.is_err());
    assert!(
        sdp.list_volume_groups().await.is_ok(),
        "the rule was for two calls"
    );
    let (_, rules) = raw(&emulator, reqwest::Method::GET, "/emulator/faults", None).await;
    assert_eq!(rules[0]["times"], 0);
    let (status, _) = raw(
        &emulator,
        reqwest::Method::POST,
        "/emulator/faults",
        Some(json!({"action": "explode"})),
    )
    .await;
    assert_eq!(status, 400);

    let (_, calls) = raw(&emulator, reqwest::Method::GET, "/emulator/calls", None).await;
    assert_eq!(calls["GET /volume_groups"], 3);
    raw(&emulator, reqwest::Method::DELETE, "/emulator/calls", None).await;
    let (_, calls) = raw(&emulator, reqwest::Method::GET, "/emulator/calls", None).await;
    assert_eq!(calls, json!({}));
    let (status, _) = raw(&emulator, reqwest::Method::DELETE, "/emulator/faults", None).await;
    assert_eq!(status, 204);

    // Admin endpoints need the same credentials.
    let anonymous = reqwest::get(format!("{}/emulator/calls", emulator.url))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn lists_filter_sort_and_page_like_the_array() {
    let emulator = emulator().await;
    let sdp = client_for(&emulator);
    let vg = sdp.create_volume_group("big", 0).await.unwrap();
    let small = sdp.create_volume_group("small", 0).await.unwrap();
    for n in 0..130u64 {
        sdp.create_volume(&format!("vol-{n:03}"), n + 1, vg.id)
            .await
            .unwrap();
    }
    sdp.create_volume("other", 5, small.id).await.unwrap();
    assert_eq!(
        sdp.list_volumes_in_group(vg.id).await.unwrap().len(),
        130,
        "pages are followed"
    );

    let (_, page) = raw(
        &emulator,
        reqwest::Method::GET,
        "/api/v2/volumes?__limit=2&__offset=1&__sort=size&__sort_order=desc",
        None,
    )
    .await;
    assert_eq!(page["total"], 131);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 1);
    assert_eq!(page["hits"][0]["name"], "vol-128");
    let (_, prefixed) = raw(
        &emulator,
        reqwest::Method::GET,
        "/api/v2/volumes?name__prefix=vol-12&size__gt=125",
        None,
    )
    .await;
    let names: Vec<&str> = prefixed["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["vol-125", "vol-126", "vol-127", "vol-128", "vol-129"]
    );
    let (_, chosen) = raw(
        &emulator,
        reqwest::Method::GET,
        "/api/v2/volumes?name__in=other,vol-000,missing",
        None,
    )
    .await;
    assert_eq!(chosen["total"], 2);
    let (_, by_ref) = raw(
        &emulator,
        reqwest::Method::GET,
        &format!(
            "/api/v2/volumes?volume_group.ref=/volume_groups/{}",
            small.id
        ),
        None,
    )
    .await;
    assert_eq!(by_ref["hits"][0]["name"], "other");
    let (status, _) = raw(&emulator, reqwest::Method::GET, "/api/v2/nonsense", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn state_survives_a_restart_when_a_file_is_given() {
    let dir = std::env::temp_dir().join(format!("flex-sdp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let state_file = dir.join("sdp.json");
    let config = SdpEmulatorConfig {
        state_file: Some(state_file.clone()),
        ..Default::default()
    };
    let first = emulator_with(config.clone()).await;
    let sdp = client_for(&first);
    let vg = sdp.create_volume_group("kept", 0).await.unwrap();
    let volume = sdp.create_volume("kept-vol", 1, vg.id).await.unwrap();
    assert!(state_file.exists());
    assert!(
        !state_file.with_extension("tmp").exists(),
        "written atomically"
    );

    let second = emulator_with(config).await;
    let again = client_for(&second);
    let restored = again.find_volume("kept-vol").await.unwrap().unwrap();
    assert_eq!(restored.id, volume.id);
    assert_eq!(restored.scsi_sn, volume.scsi_sn);
    let next = again.create_volume("new-vol", 1, vg.id).await.unwrap();
    assert!(next.id > volume.id, "ids keep counting after a restart");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_client_speaks_https_with_a_pinned_ca_or_insecure_and_refuses_plain_http_off_loopback()
{
    // Flex's own HTTPS server is a convenient TLS peer; it answers 404 on /api/v2 paths.
    let (server, certificate) =
        crate::support::TestServer::start_tls(crate::support::Backend::Sqlite).await;
    let https = server.base.replace("127.0.0.1", "localhost");

    let strict = SdpClient::new(&SdpConfig::new(&https, "a", "b")).unwrap();
    let err = strict.system_state().await.unwrap_err();
    assert!(
        matches!(err, SdpError::Transient { status: None, .. }),
        "untrusted certificate: {err}"
    );

    let mut pinned_config = SdpConfig::new(&https, "a", "b");
    pinned_config.ca_file = Some(certificate.cert.clone());
    let pinned = SdpClient::new(&pinned_config).unwrap();
    assert_eq!(
        pinned.system_state().await.unwrap_err().status(),
        Some(404),
        "TLS worked"
    );

    let mut insecure_config = SdpConfig::new(&https, "a", "b");
    insecure_config.insecure = true;
    let insecure = SdpClient::new(&insecure_config).unwrap();
    assert_eq!(
        insecure.system_state().await.unwrap_err().status(),
        Some(404)
    );

    let refused = SdpClient::new(&SdpConfig::new("http://sdp.example.com", "a", "b"));
    assert!(matches!(refused, Err(SdpError::Config(_))));
}
