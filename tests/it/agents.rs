//! The agent channel end to end: Flex, the SDP emulator and emulated hosts on loopback.

use std::{future::Future, time::Duration};

use flex::{
    agents::{AgentCommand, AgentError, AgentHub},
    emulators::{
        agent::{AgentEmulator, AgentEmulatorConfig, AgentFaults},
        sdp::{SdpEmulator, SdpEmulatorConfig},
    },
    sdp::SdpConfig,
    store::OutboxState,
};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use crate::support::{Backend, TestServer, builders::source_databases, error_body};

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

struct Rig {
    server: TestServer,
    sdp: SdpEmulator,
}

async fn rig(backend: Backend) -> Rig {
    crate::support::init_tracing();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sdp = SdpEmulator::start(SdpEmulatorConfig::default(), listener)
        .await
        .unwrap();
    let sdp_url = sdp.url.clone();
    let server = TestServer::start_with(backend, |config| {
        config.agent_heartbeat = Duration::from_secs(1);
        config.sdp = Some(SdpConfig::new(&sdp_url, "admin", "admin"));
    })
    .await;
    Rig { server, sdp }
}

impl Rig {
    fn agent_config(&self, host_id: &str, token: &str) -> AgentEmulatorConfig {
        let mut config = AgentEmulatorConfig::new(&self.server.base, host_id, token);
        config.sdp = Some(SdpConfig::new(&self.sdp.url, "admin", "admin"));
        config
    }

    async fn connected_host(
        &self,
        host_id: &str,
        adjust: impl FnOnce(&mut AgentEmulatorConfig),
    ) -> AgentEmulator {
        let token = self.server.register_host(host_id).await;
        let mut config = self.agent_config(host_id, &token);
        adjust(&mut config);
        let agent = AgentEmulator::start(config).await.unwrap();
        self.wait_connected(host_id, true).await;
        agent
    }

    async fn wait_connected(&self, host_id: &str, connected: bool) {
        let server = &self.server;
        eventually(
            &format!("{host_id} is_connected == {connected}"),
            || async move {
                let host: Value = server
                    .get(&format!("/api/v1/hosts/{host_id}"))
                    .await
                    .json()
                    .await
                    .unwrap_or_default();
                host["is_connected"] == connected
            },
        )
        .await;
    }

    /// A second hub on the same database, as an executor replica elsewhere would hold.
    /// The hub of a second replica that holds no agent socket, started as `run` starts it:
    /// its commands reach the agent through the outbox, and its loop wakes it when the reply
    /// lands on the other replica.
    async fn executor_hub(&self) -> AgentHub {
        let store = self.server.db.store().await;
        let hub = AgentHub::new(
            store,
            "executor-1",
            Duration::from_secs(1),
            Duration::from_secs(30),
        );
        hub.start().await.unwrap();
        hub
    }
}

fn command(id: &str, name: &str, args: Value) -> AgentCommand {
    AgentCommand {
        id: id.into(),
        name: name.into(),
        args,
        ref_id: "Ref0001".into(),
    }
}

async fn hosts_turn_connected_with_their_facts_and_databases(backend: Backend) {
    let rig = rig(backend).await;
    let _agent = rig
        .connected_host("src-01", |config| config.databases = source_databases(512))
        .await;
    let host: Value = rig
        .server
        .get("/flex/api/v1/hosts/src-01")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(host["host_name"], "src-01");
    assert_eq!(host["host_iqn"], "iqn.1991-05.com.microsoft:src-01");
    assert_eq!(host["host_os"], "Windows");
    assert_eq!(host["host_os_version"], "Windows Server 2022 Datacenter");
    assert_eq!(host["cloud_vendor"], "AZURE");
    assert_eq!(host["db_engine_version"], "16.0.1000.6");
    assert!(!host["agent_version"].as_str().unwrap().is_empty());

    let server = &rig.server;
    eventually("inventory arrives", || async move {
        let dbs: Value = server
            .get("/api/v1/hosts/src-01/databases")
            .await
            .json()
            .await
            .unwrap();
        dbs.as_array().is_some_and(|d| d.len() == 2)
    })
    .await;
    // The serials the host reports are those of the SDP volumes that hold its files.
    let array = rig.sdp.snapshot_state();
    let serial_of = |name: &str| {
        let volume = array.volumes.values().find(|v| v.name == name).unwrap();
        array.scsi_sn(volume.scsi_suffix)
    };
    let sales: Value = rig
        .server
        .get("/api/v1/hosts/src-01/databases/5")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sales["name"], "sales");
    assert_eq!(sales["mssql"]["files"].as_array().unwrap().len(), 2);
    let serials: Vec<&str> = sales["mount_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["serial"].as_str().unwrap())
        .collect();
    assert_eq!(
        serials,
        [serial_of("src-sales-data"), serial_of("src-sales-log")]
    );
    assert_eq!(
        array.volume_groups.len(),
        2,
        "source volumes were provisioned on the SDP"
    );

    let topology: Value = rig
        .server
        .get("/api/echo/v1/topology")
        .await
        .json()
        .await
        .unwrap();
    let entry = &topology[0];
    assert_eq!(entry["host"]["is_connected"], true);
    assert_eq!(entry["host"]["iqn"], "iqn.1991-05.com.microsoft:src-01");
    let hr = entry["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "hr")
        .unwrap();
    assert_eq!(hr["files"][0]["volume_scsi_sn"], serial_of("src-hr"));
    // Joined to the array: the volume and volume group behind the disk, and which SDP.
    let hr_volume = array.volumes.values().find(|v| v.name == "src-hr").unwrap();
    assert_eq!(hr["files"][0]["volume_id"], hr_volume.id);
    assert_eq!(hr["files"][0]["volume_name"], "src-hr");
    assert_eq!(hr["files"][0]["volume_group_id"], hr_volume.volume_group);
    assert_eq!(hr["files"][0]["volume_group_name"], "src-vg-2");
    assert_eq!(hr["files"][0]["sdp_id"], "134409");
    // No SDP host object for the source, but its files are on the SDP: it is listed as itself.
    assert_eq!(
        entry["sdps"],
        json!([{"sdp_id": "134409", "host_name": entry["host"]["name"]}]),
    );
    assert_eq!(hr["db_snapshot_allowed"], true);
}

async fn a_command_round_trips_through_the_outbox_with_a_deadline(backend: Backend) {
    let rig = rig(backend).await;
    let agent = rig
        .connected_host("src-01", |config| {
            config.databases = source_databases(512);
            config.freeze_window = Duration::from_millis(300);
            config.faults.refuse = vec!["detach".into()];
        })
        .await;
    let hub = rig.executor_hub().await;
    let frozen = hub
        .call(
            "src-01",
            command(
                "t1-freeze",
                "freeze",
                json!({"db_ids": ["5", "6"], "mode": "vss"}),
            ),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let freeze_id = frozen["freeze_id"].as_str().unwrap().to_owned();
    let thawed = hub
        .call(
            "src-01",
            command("t1-thaw", "thaw", json!({"freeze_id": freeze_id})),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(thawed["held"], true, "thawed within the window");
    assert_eq!(
        agent.stats().last_ref_id,
        "Ref0001",
        "the task's ref id reaches the host"
    );

    // A freeze that outlives its window is reported as not held.
    let frozen = hub
        .call(
            "src-01",
            command(
                "t2-freeze",
                "freeze",
                json!({"db_ids": ["5"], "mode": "tsql"}),
            ),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let late = hub
        .call(
            "src-01",
            command("t2-thaw", "thaw", json!({"freeze_id": frozen["freeze_id"]})),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(late["held"], false);

    // Refusals are final; unknown databases and commands too.
    let refused = hub
        .call(
            "src-01",
            command("t3", "detach", json!({"db_id": "5"})),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, AgentError::Refused { .. }), "{refused}");
    assert!(!refused.is_retryable());
    let unknown = hub
        .call(
            "src-01",
            command("t4", "reboot", json!({})),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(unknown, AgentError::Refused { ref code, .. } if code == "UNKNOWN_COMMAND"));

    // A repeated call of an answered id returns the stored reply without sending it again.
    let received = agent.stats().commands_received;
    let again = hub
        .call(
            "src-01",
            command("t1-thaw", "thaw", json!({"freeze_id": "whatever"})),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(again["held"], true);
    assert_eq!(agent.stats().commands_received, received);

    // Not connected: fails fast and says to retry.
    let err = hub
        .call(
            "ghost",
            command("t5", "rescan", json!({})),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::NotConnected(_)) && err.is_retryable());
}

async fn a_slow_agent_times_out_and_the_command_is_not_delivered_late(backend: Backend) {
    let rig = rig(backend).await;
    let agent = rig
        .connected_host("src-01", |config| {
            config.databases = source_databases(512);
            config.faults.reply_delay = Duration::from_millis(1500);
        })
        .await;
    let hub = rig.executor_hub().await;
    let started = std::time::Instant::now();
    let err = hub
        .call(
            "src-01",
            command("slow-1", "rescan", json!({"serials": []})),
            Duration::from_millis(400),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::TimedOut { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_millis(1400));
    let store = rig.server.db.store().await;
    let row = store.get_agent_command("slow-1").await.unwrap().unwrap();
    assert_eq!(row.state, OutboxState::Expired);
    // The late reply does not resurrect the command.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let row = store.get_agent_command("slow-1").await.unwrap().unwrap();
    assert_eq!(row.state, OutboxState::Expired);

    // A retried step calls again with the same id and a new deadline: the command is sent
    // again (it is not left expired forever) and answered, by a host that acted only once.
    let retried = hub.call(
        "src-01",
        command("slow-1", "rescan", json!({"serials": []})),
        Duration::from_secs(5),
    );
    let reply = tokio::time::timeout(Duration::from_secs(10), retried)
        .await
        .expect("the retried call ends (it once spun forever on the expired row)")
        .unwrap();
    assert!(reply["all"].is_array(), "{reply}");
    let row = store.get_agent_command("slow-1").await.unwrap().unwrap();
    assert_eq!(row.state, OutboxState::Done);
    assert_eq!(agent.stats().commands_acted.get("rescan"), Some(&1));
}

async fn a_reconnect_redelivers_an_unanswered_command_exactly_once(backend: Backend) {
    let rig = rig(backend).await;
    let agent = rig
        .connected_host("src-01", |config| {
            config.databases = source_databases(512);
            config.faults = AgentFaults {
                disconnect_after_commands: Some(1),
                ..Default::default()
            };
        })
        .await;
    let hub = rig.executor_hub().await;
    let reply = hub
        .call(
            "src-01",
            command(
                "redeliver-1",
                "freeze",
                json!({"db_ids": ["5"], "mode": "tsql"}),
            ),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(reply["freeze_id"].is_string());
    let stats = agent.stats();
    assert_eq!(stats.connections, 2, "the agent reconnected once");
    assert_eq!(
        stats.commands_received, 2,
        "delivered, then re-delivered once"
    );
    assert_eq!(stats.commands_acted.get("freeze"), Some(&1), "acted once");
    assert_eq!(
        stats.repeats_answered, 1,
        "the repeat was answered from memory"
    );
    let row = rig
        .server
        .db
        .store()
        .await
        .get_agent_command("redeliver-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.delivered_count, 2);
    assert_eq!(row.state, OutboxState::Done);
}

async fn rescan_and_attach_follow_the_arrays_mappings(backend: Backend) {
    let rig = rig(backend).await;
    let _source = rig
        .connected_host("src-01", |config| config.databases = source_databases(512))
        .await;
    let dest = rig.connected_host("dev-01", |_| {}).await;
    let hub = rig.executor_hub().await;
    let sdp = flex::sdp::SdpClient::new(&SdpConfig::new(&rig.sdp.url, "admin", "admin")).unwrap();
    let source_volume = sdp.find_volume("src-hr").await.unwrap().unwrap();
    let attach_args = json!({
        "db_name": "hr_copy",
        "target_state": "online",
        "files": [{"logical_name": "hr_data", "kind": "data", "serial": source_volume.scsi_sn, "source_path": "E:\\hr\\hr_data.mdf"}],
    });
    // Not mapped yet: invisible, and attach fails in a retryable way.
    let seen = hub
        .call(
            "dev-01",
            command(
                "scan-1",
                "rescan",
                json!({"serials": [source_volume.scsi_sn]}),
            ),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(seen["visible"], json!([]));
    let err = hub
        .call(
            "dev-01",
            command("attach-1", "attach", attach_args.clone()),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::Failed { ref code, .. } if code == "DISKS_NOT_VISIBLE"),
        "{err}"
    );

    // Map the volume to the destination's initiator: now it sees it and can attach.
    let host = sdp.create_host("dev-01", "Windows").await.unwrap();
    sdp.create_host_iqn(host.id, &dest.iqn()).await.unwrap();
    sdp.create_mapping(host.id, source_volume.id).await.unwrap();
    let seen = hub
        .call(
            "dev-01",
            command(
                "scan-2",
                "rescan",
                json!({"serials": [source_volume.scsi_sn, "999"]}),
            ),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(seen["visible"], json!([source_volume.scsi_sn]));
    let attached = hub
        .call(
            "dev-01",
            command("attach-2", "attach", attach_args.clone()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let db_id = attached["db_id"].as_str().unwrap().to_owned();
    let server = &rig.server;
    let path = format!("/api/v1/hosts/dev-01/databases/{db_id}");
    eventually("attached database in inventory", || {
        let path = path.clone();
        async move { server.get(&path).await.status() == 200 }
    })
    .await;
    // The name is now taken.
    let err = hub
        .call(
            "dev-01",
            command("attach-3", "attach", attach_args),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::Refused { ref code, .. } if code == "DB_NAME_IN_USE"),
        "{err}"
    );
    hub.call(
        "dev-01",
        command("detach-1", "detach", json!({"db_id": db_id})),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    eventually("detached database gone", || {
        let path = path.clone();
        async move { server.get(&path).await.status() == 404 }
    })
    .await;
}

async fn unregistering_a_host_disconnects_its_agent(backend: Backend) {
    let rig = rig(backend).await;
    let agent = rig.connected_host("src-01", |_| {}).await;
    let deleted = rig
        .server
        .admin(Method::DELETE, "/api/v1/hosts/src-01")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    eventually("the agent is cut off and refused", || {
        let agent = agent.clone();
        async move { !agent.is_connected() && agent.was_refused() }
    })
    .await;
}

crate::on_both_backends!(
    hosts_turn_connected_with_their_facts_and_databases,
    a_command_round_trips_through_the_outbox_with_a_deadline,
    a_slow_agent_times_out_and_the_command_is_not_delivered_late,
    a_reconnect_redelivers_an_unanswered_command_exactly_once,
    rescan_and_attach_follow_the_arrays_mappings,
    unregistering_a_host_disconnects_its_agent,
);

/// A raw WebSocket client, for what a well-behaved emulator would never send.
async fn raw_socket(
    server: &TestServer,
    token: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let url = format!(
        "{}/api/v1/agent/ws",
        server.base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

fn hello(protocol: u32) -> Message {
    Message::text(json!({"type": "hello", "protocol": protocol, "host_name": "raw"}).to_string())
}

async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .ok()??
        {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn the_channel_refuses_wrong_tokens_and_survives_bad_messages() {
    let rig = rig(Backend::Sqlite).await;
    let token = rig.server.register_host("raw-01").await;

    let wrong = raw_socket(&rig.server, "fx_AAAAAAAAAAAA_nope").await;
    assert!(
        matches!(wrong, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 401)
    );
    let api_token = raw_socket(&rig.server, crate::support::ADMIN_TOKEN).await;
    assert!(
        matches!(api_token, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 403)
    );
    let plain_get = rig
        .server
        .client
        .get(rig.server.url("/api/v1/agent/ws"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(plain_get.status(), 400);
    assert_eq!(error_body(plain_get).await["code"], "WEBSOCKET_EXPECTED");

    // A protocol this Flex does not speak is refused with a reason.
    let mut old = raw_socket(&rig.server, &token).await.unwrap();
    old.send(hello(99)).await.unwrap();
    let refusal = next_json(&mut old).await.unwrap();
    assert_eq!(refusal["code"], "UNSUPPORTED_PROTOCOL");
    assert!(next_json(&mut old).await.is_none(), "then closed");

    // Garbage gets an error reply and the connection lives on.
    let mut first = raw_socket(&rig.server, &token).await.unwrap();
    first.send(hello(1)).await.unwrap();
    assert_eq!(next_json(&mut first).await.unwrap()["type"], "welcome");
    for bad in [
        "{not json",
        r#"{"type":"teleport"}"#,
        r#"{"type":"reply","id":5}"#,
    ] {
        first.send(Message::text(bad)).await.unwrap();
        let answer = next_json(&mut first).await.unwrap();
        assert_eq!(answer["code"], "BAD_MESSAGE", "{bad}");
    }
    first.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(next_json(&mut first).await.unwrap()["code"], "BAD_MESSAGE");
    let duplicate_ids = json!({"type": "inventory", "databases": [{"id": "1", "name": "a"}, {"id": "1", "name": "b"}]});
    first
        .send(Message::text(duplicate_ids.to_string()))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut first).await.unwrap()["code"],
        "BAD_INVENTORY"
    );
    assert!(
        rig.server
            .db
            .store()
            .await
            .list_databases("raw-01")
            .await
            .unwrap()
            .is_empty(),
        "a refused inventory stores nothing"
    );

    // A newer connection replaces the older one.
    let mut second = raw_socket(&rig.server, &token).await.unwrap();
    second.send(hello(1)).await.unwrap();
    assert_eq!(next_json(&mut second).await.unwrap()["type"], "welcome");
    assert!(
        next_json(&mut first).await.is_none(),
        "the older socket is closed"
    );

    // A message over the cap ends that connection, not the hub.
    let huge =
        json!({"type": "inventory", "databases": [{"id": "1", "name": "x".repeat(2 << 20)}]});
    let _ = second.send(Message::text(huge.to_string())).await;
    assert!(next_json(&mut second).await.is_none());
    let mut third = raw_socket(&rig.server, &token).await.unwrap();
    third.send(hello(1)).await.unwrap();
    assert_eq!(next_json(&mut third).await.unwrap()["type"], "welcome");
}

#[tokio::test]
async fn a_silent_agent_turns_disconnected() {
    crate::support::init_tracing();
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.agent_heartbeat = Duration::from_secs(1);
        config.agent_silence = Duration::from_secs(2);
    })
    .await;
    let token = server.register_host("quiet-01").await;
    let mut socket = raw_socket(&server, &token).await.unwrap();
    socket.send(hello(1)).await.unwrap();
    assert_eq!(next_json(&mut socket).await.unwrap()["type"], "welcome");
    let connected: Value = server
        .get("/api/v1/hosts/quiet-01")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(connected["is_connected"], true);
    // Say nothing more (and do not read, so pings go unanswered).
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let host: Value = server
        .get("/api/v1/hosts/quiet-01")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(host["is_connected"], false);
    drop(socket);
}
