//! One agent's socket: the `hello` handshake, liveness, inventory, replies, and the writer
//! that sends commands. Malformed messages get an error reply and are logged; they never end
//! the hub, and at worst end this one connection.

use std::{sync::Arc, time::Duration};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc};

use super::{
    AgentHub, OUTBOX_DEPTH,
    protocol::{AgentMessage, FlexMessage, Hello, InventoryDatabase, PROTOCOL_VERSION},
};
use crate::store::{AgentFacts, DatabaseRecord, now_ts};

/// An agent must say `hello` this soon after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// `last_seen_ts` is written at most this often per agent, however chatty it is.
const TOUCH_EVERY_SECS: i64 = 5;

fn error_message(code: &str, message: impl Into<String>) -> FlexMessage {
    FlexMessage::Error {
        code: code.to_owned(),
        message: message.into(),
    }
}

fn encode(message: &FlexMessage) -> Message {
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(message).unwrap_or_default(),
    ))
}

/// Serves an authenticated agent socket until it closes, is replaced, or its host goes away.
pub async fn serve_socket(hub: AgentHub, host_id: String, token_id: String, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (sender, mut outbox) = mpsc::channel::<FlexMessage>(OUTBOX_DEPTH);
    let close = Arc::new(Notify::new());

    // The writer: queued messages, pings, and the close when told to stop.
    let writer_close = close.clone();
    let heartbeat = hub.heartbeat();
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval(heartbeat);
        ping.tick().await;
        loop {
            tokio::select! {
                // Queued messages go before a close, so a refusal's reason reaches the agent.
                biased;
                message = outbox.recv() => match message {
                    Some(message) => {
                        if sink.send(encode(&message)).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                _ = ping.tick() => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        break;
                    }
                }
                _ = writer_close.notified() => {
                    while let Ok(message) = outbox.try_recv() {
                        let _ = sink.send(encode(&message)).await;
                    }
                    let _ = sink.send(Message::Close(Some(CloseFrame {
                        code: 1000,
                        reason: Utf8Bytes::from_static("closed by flex"),
                    }))).await;
                    break;
                }
            }
        }
    });

    // The handshake: the first message must be a hello in a protocol we speak.
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<AgentMessage>(&text) {
            Ok(AgentMessage::Hello(hello)) => Some(hello),
            _ => {
                let _ = sender
                    .send(error_message(
                        "HELLO_EXPECTED",
                        "the first message must be 'hello'",
                    ))
                    .await;
                None
            }
        },
        _ => None,
    };
    let Some(hello) = hello else {
        close.notify_one();
        let _ = writer.await;
        return;
    };
    if hello.protocol != PROTOCOL_VERSION {
        let _ = sender
            .send(error_message(
                "UNSUPPORTED_PROTOCOL",
                format!(
                    "this Flex speaks agent protocol {PROTOCOL_VERSION}, not {}",
                    hello.protocol
                ),
            ))
            .await;
        close.notify_one();
        let _ = writer.await;
        return;
    }

    let store = hub.store().clone();
    let instance = hub.instance_id().to_owned();
    let connection = hub.register(&host_id, sender.clone(), close.clone());
    match store
        .record_agent_hello(&host_id, &instance, &facts_of(&hello))
        .await
    {
        Ok(true) => {}
        Ok(false) | Err(_) => {
            hub.unregister(&host_id, connection);
            close.notify_one();
            let _ = writer.await;
            return;
        }
    }
    tracing::info!(%host_id, agent_version = %hello.agent_version, "agent connected");
    let _ = sender
        .send(FlexMessage::Welcome {
            protocol: PROTOCOL_VERSION,
            host_id: host_id.clone(),
            heartbeat_secs: hub.heartbeat().as_secs().max(1),
        })
        .await;
    match hub.redeliver_unanswered(&host_id, &sender).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(%host_id, count, "re-delivered unanswered commands"),
        Err(err) => tracing::warn!(%host_id, error = %err, "cannot re-deliver commands"),
    }

    let mut last_touch = now_ts();
    let mut liveness = tokio::time::interval(hub.heartbeat());
    liveness.tick().await;
    let silence = hub.silence().as_secs() as i64;
    let mut last_heard = now_ts();
    loop {
        tokio::select! {
            frame = stream.next() => {
                let Some(Ok(frame)) = frame else { break };
                last_heard = now_ts();
                if last_heard - last_touch >= TOUCH_EVERY_SECS {
                    last_touch = last_heard;
                    let _ = store.touch_agent(&host_id, &instance).await;
                }
                match frame {
                    Message::Text(text) => handle_text(&hub, &host_id, &text, &sender).await,
                    Message::Close(_) => break,
                    Message::Binary(_) => {
                        let _ = sender.send(error_message("BAD_MESSAGE", "binary frames are not part of the protocol")).await;
                    }
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            _ = liveness.tick() => {
                // A host unregistered (token revoked) on any replica, or an agent gone silent,
                // ends the connection.
                let token_alive = matches!(store.find_token(&token_id).await, Ok(Some(_)));
                if !token_alive || now_ts() - last_heard > silence {
                    tracing::info!(%host_id, token_alive, "closing agent connection");
                    break;
                }
            }
            _ = close.notified() => break,
        }
    }

    if hub.unregister(&host_id, connection) {
        let _ = store.record_agent_disconnect(&host_id, &instance).await;
    }
    close.notify_one();
    let _ = writer.await;
    tracing::info!(%host_id, "agent disconnected");
}

fn facts_of(hello: &Hello) -> AgentFacts {
    AgentFacts {
        host_name: hello.host_name.clone(),
        host_iqn: hello.host_iqn.clone(),
        host_os: hello.host_os.clone(),
        host_os_version: hello.host_os_version.clone(),
        agent_version: hello.agent_version.clone(),
        cloud_vendor: if hello.cloud_vendor.is_empty() {
            "UNKNOWN".to_owned()
        } else {
            hello.cloud_vendor.clone()
        },
        db_engine_version: hello.db_engine_version.clone(),
        facts: if hello.facts.is_object() {
            hello.facts.to_string()
        } else {
            "{}".to_owned()
        },
    }
}

fn database_records(host_id: &str, databases: &[InventoryDatabase]) -> Vec<DatabaseRecord> {
    let now = now_ts();
    databases
        .iter()
        .map(|db| DatabaseRecord {
            host_id: host_id.to_owned(),
            db_id: db.id.clone(),
            name: db.name.clone(),
            vendor: "mssql".to_owned(),
            status: db.status.clone(),
            files: serde_json::to_string(&db.files).unwrap_or_else(|_| "[]".into()),
            mount_points: serde_json::to_string(&db.mount_points).unwrap_or_else(|_| "[]".into()),
            updated_ts: now,
        })
        .collect()
}

async fn handle_text(
    hub: &AgentHub,
    host_id: &str,
    text: &str,
    sender: &mpsc::Sender<FlexMessage>,
) {
    let message = match serde_json::from_str::<AgentMessage>(text) {
        Ok(message) => message,
        Err(err) => {
            tracing::warn!(%host_id, error = %err, "malformed agent message");
            let _ = sender
                .send(error_message(
                    "BAD_MESSAGE",
                    format!("unreadable message: {err}"),
                ))
                .await;
            return;
        }
    };
    let outcome = match message {
        AgentMessage::Heartbeat {} => Ok(()),
        AgentMessage::Hello(_) => {
            let _ = sender
                .send(error_message(
                    "ALREADY_GREETED",
                    "hello is only sent once per connection",
                ))
                .await;
            Ok(())
        }
        AgentMessage::Inventory { databases } => {
            let mut ids = std::collections::HashSet::new();
            if databases.iter().any(|db| !ids.insert(db.id.as_str())) {
                let _ = sender
                    .send(error_message(
                        "BAD_INVENTORY",
                        "database ids must be unique",
                    ))
                    .await;
                return;
            }
            let records = database_records(host_id, &databases);
            hub.store()
                .replace_databases(host_id, &records)
                .await
                .map(|_| tracing::info!(%host_id, databases = records.len(), "inventory replaced"))
        }
        AgentMessage::Reply(reply) => hub.accept_reply(host_id, &reply).await,
    };
    if let Err(err) = outcome {
        tracing::warn!(%host_id, error = %err, "agent message not stored");
        let _ = sender
            .send(error_message(
                "UNAVAILABLE",
                "the message could not be stored; send it again",
            ))
            .await;
    }
}
