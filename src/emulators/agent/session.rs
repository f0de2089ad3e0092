//! The emulated host's connection to Flex: dial out with the host token, say `hello`, send
//! the inventory when welcomed, carry out commands (each on its own task, so a slow one does
//! not hold the others), and reconnect whenever the connection drops. The disconnect fault
//! lives here: a command carried out whose reply never leaves.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
};

use super::{AgentEmulatorConfig, Shared, host, lock, tls::tls_connector};
use crate::agents::protocol::{
    AgentMessage, Command, FlexMessage, Hello, HostFacts, PROTOCOL_VERSION, Reply,
};

/// Connects, serves, and reconnects until stopped or refused.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let config = &shared.config;
    let url = format!(
        "{}/api/v1/agent/ws",
        config
            .flex_url
            .trim_end_matches('/')
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1)
    );
    loop {
        if *stop.borrow() {
            return;
        }
        match connect(&url, config).await {
            Ok(socket) => {
                lock(&shared.state).stats.connections += 1;
                serve(&shared, socket, &mut stop).await;
                shared.connected.store(false, Ordering::SeqCst);
            }
            Err(refused) if refused => {
                tracing::warn!(host_id = %config.host_id, "Flex refused the host token; stopping");
                shared.refused_auth.store(true, Ordering::SeqCst);
                return;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(config.reconnect_delay) => {}
            _ = stop.changed() => return,
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Err(true) when Flex refused the token (401/403), Err(false) for anything worth a retry.
async fn connect(url: &str, config: &AgentEmulatorConfig) -> Result<Socket, bool> {
    let mut request = url.into_client_request().map_err(|_| false)?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", config.token)).map_err(|_| true)?;
    request.headers_mut().insert("authorization", bearer);
    let connector = url
        .starts_with("wss://")
        .then(|| tls_connector(config.insecure));
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_message_size(Some(1 << 20));
    // Nagle off: an attach answers with two messages back to back (inventory, then reply),
    // and with Nagle the reply waits for the first one's delayed ACK, 40 ms.
    match tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(ws_config),
        true,
        connector,
    )
    .await
    {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response))
            if matches!(response.status().as_u16(), 401 | 403) =>
        {
            Err(true)
        }
        Err(err) => {
            tracing::debug!(error = %err, "agent cannot connect");
            Err(false)
        }
    }
}

fn text(message: &AgentMessage) -> Message {
    Message::text(serde_json::to_string(message).unwrap_or_default())
}

async fn serve(shared: &Arc<Shared>, socket: Socket, stop: &mut watch::Receiver<bool>) {
    let config = &shared.config;
    let (mut sink, mut stream) = socket.split();
    let hello = AgentMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        host_name: config.host.host_name.clone(),
        host_iqn: config.host.iqn.clone(),
        host_os: config.host.os.clone(),
        host_os_version: config.host.os_version.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        cloud_vendor: config.host.cloud_vendor.clone(),
        db_engine_version: config.host.db_engine_version.clone(),
        facts: HostFacts {
            vm_id: format!("vm-{}", config.host_id),
            cidrs: vec!["10.0.0.10/24".into()],
            instance_type: "emulated".into(),
            cpus: 4,
            memory: 16384,
            location: "local".into(),
            zone: "1".into(),
        },
    });
    if sink.send(text(&hello)).await.is_err() {
        return;
    }
    // Replies and inventory updates come from command tasks through this queue.
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(64);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
    heartbeat.tick().await;
    loop {
        tokio::select! {
            frame = stream.next() => {
                let Some(Ok(frame)) = frame else { return };
                let Message::Text(body) = frame else { continue };
                match serde_json::from_str::<FlexMessage>(&body) {
                    Ok(FlexMessage::Welcome { heartbeat_secs, .. }) => {
                        shared.connected.store(true, Ordering::SeqCst);
                        shared.welcomed.fetch_add(1, Ordering::SeqCst);
                        heartbeat = tokio::time::interval(Duration::from_secs(heartbeat_secs.max(1)));
                        heartbeat.tick().await;
                        let databases = lock(&shared.state).databases.clone();
                        if sink.send(text(&AgentMessage::Inventory { databases })).await.is_err() {
                            return;
                        }
                    }
                    Ok(FlexMessage::Command(command)) => {
                        if should_drop_connection(shared, &command) {
                            // Carried out, but the connection breaks before the reply leaves.
                            let _ = host::execute(shared, command).await;
                            tracing::info!(host_id = %config.host_id, "fault: connection dropped before the reply");
                            return;
                        }
                        let shared = shared.clone();
                        let out_tx = out_tx.clone();
                        tokio::spawn(async move {
                            let delay = lock(&shared.state).faults.delay_for(&command.name);
                            let (reply, inventory) = host::execute(&shared, command).await;
                            tokio::time::sleep(delay).await;
                            if inventory.is_some() {
                                let _ = out_tx.send(Outgoing::Inventory).await;
                            }
                            let _ = out_tx.send(Outgoing::Reply(reply)).await;
                        });
                    }
                    Ok(FlexMessage::Error { code, message }) => {
                        tracing::warn!(host_id = %config.host_id, %code, %message, "Flex reported an error");
                    }
                    Err(err) => tracing::warn!(error = %err, "unreadable message from Flex"),
                }
            }
            Some(outgoing) = out_rx.recv() => {
                let message = match outgoing {
                    Outgoing::Reply(reply) => AgentMessage::Reply(reply),
                    // Read now, not when the command ended: commands finishing at once queue
                    // their inventories in any order, and the last one sent must be current.
                    Outgoing::Inventory => AgentMessage::Inventory {
                        databases: lock(&shared.state).databases.clone(),
                    },
                };
                if sink.send(text(&message)).await.is_err() {
                    return;
                }
            }
            _ = heartbeat.tick() => {
                if sink.send(text(&AgentMessage::Heartbeat {})).await.is_err() {
                    return;
                }
            }
            _ = stop.changed() => {
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

/// The disconnect fault: fires once, on the Nth command id the host has not seen before.
fn should_drop_connection(shared: &Shared, command: &Command) -> bool {
    let mut state = lock(&shared.state);
    state.stats.commands_received += 1;
    if state.replies.contains_key(&command.id) {
        return false;
    }
    if state.faults.disconnect_on.as_deref() == Some(command.name.as_str()) {
        state.faults.disconnect_on = None;
        return true;
    }
    match state.commands_until_disconnect {
        Some(remaining) if remaining <= 1 => {
            state.commands_until_disconnect = None;
            true
        }
        Some(remaining) => {
            state.commands_until_disconnect = Some(remaining - 1);
            false
        }
        None => false,
    }
}

/// What the command tasks ask the session to send.
enum Outgoing {
    Reply(Reply),
    /// The host's databases as they are when it is sent.
    Inventory,
}
