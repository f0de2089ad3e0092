//! One agent's socket: the `hello` handshake, liveness, inventory, replies, and the writer
//! that sends commands. Malformed messages get an error reply and are logged; they never end
//! the hub, and at worst end this one connection.

use std::{sync::Arc, time::Duration};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use tokio::sync::{Notify, mpsc};

use super::{
    AgentHub, OUTBOX_DEPTH, encode,
    ingest::Ingest,
    protocol::{AgentMessage, FlexMessage, Hello, InventoryDatabase, PROTOCOL_VERSION},
};
use crate::{
    clock::now_ts,
    logging::escaped,
    store::{AgentFacts, DatabaseRecord},
};

/// An agent must say `hello` this soon after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// `last_seen_ts` is written at most this often per agent, however chatty it is.
const TOUCH_EVERY_SECS: i64 = 5;

fn error_message(code: &str, message: impl Into<String>) -> String {
    encode(&FlexMessage::Error {
        code: code.to_owned(),
        message: message.into(),
    })
}

/// What an agent is told when its message could not be stored.
pub(super) fn unavailable() -> String {
    error_message(
        "UNAVAILABLE",
        "the message could not be stored; send it again",
    )
}

fn text(json: String) -> Message {
    Message::Text(Utf8Bytes::from(json))
}

/// Waits for the agent's `hello`; anything else first is refused with a reason.
async fn read_hello(socket: &mut WebSocket) -> Result<Hello, String> {
    match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(body)))) => match serde_json::from_str::<AgentMessage>(&body) {
            Ok(AgentMessage::Hello(hello)) if hello.protocol == PROTOCOL_VERSION => Ok(hello),
            Ok(AgentMessage::Hello(hello)) => Err(error_message(
                "UNSUPPORTED_PROTOCOL",
                format!(
                    "this Flex speaks agent protocol {PROTOCOL_VERSION}, not {}",
                    hello.protocol
                ),
            )),
            _ => Err(error_message(
                "HELLO_EXPECTED",
                "the first message must be 'hello'",
            )),
        },
        _ => Err(error_message(
            "HELLO_EXPECTED",
            "no 'hello' within 10 seconds",
        )),
    }
}

async fn close_with(socket: &mut WebSocket, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

/// Serves an authenticated agent socket until it closes, is replaced, or its host goes away.
/// One task per connection holding no more than it needs: thousands stay connected at once.
pub async fn serve_socket(hub: AgentHub, host_id: String, token_id: String, mut socket: WebSocket) {
    let hello = match Box::pin(read_hello(&mut socket)).await {
        Ok(hello) => hello,
        Err(refusal) => {
            let _ = socket.send(text(refusal)).await;
            close_with(&mut socket, "refused").await;
            return;
        }
    };
    let store = hub.store().clone();
    let instance = hub.instance_id().to_owned();
    let (sender, mut outbox) = mpsc::channel::<String>(OUTBOX_DEPTH);
    let close = Arc::new(Notify::new());
    let connection = hub.register(&host_id, sender.clone(), close.clone());
    if !matches!(
        Box::pin(store.record_agent_hello(&host_id, &instance, &facts_of(&hello))).await,
        Ok(true)
    ) {
        hub.unregister(&host_id, connection);
        close_with(&mut socket, "host not registered").await;
        return;
    }
    tracing::info!(%host_id, agent_version = %escaped(&hello.agent_version), "agent connected");
    drop(hello);
    let welcome = encode(&FlexMessage::Welcome {
        protocol: PROTOCOL_VERSION,
        host_id: host_id.clone(),
        heartbeat_secs: hub.heartbeat().as_secs().max(1),
    });
    if socket.send(text(welcome)).await.is_err() {
        if hub.unregister(&host_id, connection) {
            let _ = Box::pin(store.record_agent_disconnect(&host_id, &instance)).await;
        }
        return;
    }
    match Box::pin(hub.redeliver_unanswered(&host_id, &sender)).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(%host_id, count, "re-delivered unanswered commands"),
        Err(err) => tracing::warn!(%host_id, error = %err, "cannot re-deliver commands"),
    }
    let ingest = Ingest::new(hub.clone(), &host_id, sender);

    let silence = i64::try_from(hub.silence().as_secs()).unwrap_or(i64::MAX);
    let mut last_heard = now_ts();
    let mut last_touch = last_heard;
    let mut tick = tokio::time::interval(hub.heartbeat());
    tick.tick().await;
    loop {
        tokio::select! {
            // Queued commands go first, so a chatty agent cannot starve them.
            biased;
            Some(message) = outbox.recv() => {
                if socket.send(text(message)).await.is_err() {
                    break;
                }
            }
            frame = socket.recv() => {
                let Some(Ok(frame)) = frame else { break };
                last_heard = now_ts();
                if last_heard - last_touch >= TOUCH_EVERY_SECS {
                    last_touch = last_heard;
                    let _ = Box::pin(store.touch_agent(&host_id, &instance)).await;
                }
                let answer = match frame {
                    Message::Text(body) => Box::pin(handle_text(&ingest, &host_id, &body)).await,
                    Message::Close(_) => break,
                    Message::Binary(_) => Some(error_message(
                        "BAD_MESSAGE",
                        "binary frames are not part of the protocol",
                    )),
                    Message::Ping(_) | Message::Pong(_) => None,
                };
                if let Some(answer) = answer
                    && socket.send(text(answer)).await.is_err()
                {
                    break;
                }
            }
            _ = tick.tick() => {
                // A host unregistered (token revoked) on any replica, or an agent gone silent,
                // ends the connection; otherwise it is pinged.
                let token_alive = matches!(Box::pin(store.find_token(&token_id)).await, Ok(Some(_)));
                if !token_alive || now_ts() - last_heard > silence {
                    tracing::info!(%host_id, token_alive, "closing agent connection");
                    break;
                }
                if socket.send(Message::Ping(axum::body::Bytes::default())).await.is_err() {
                    break;
                }
            }
            () = close.notified() => break,
        }
    }
    // Whatever is still queued (a reason, say) goes out before the close.
    while let Ok(message) = outbox.try_recv() {
        let _ = socket.send(text(message)).await;
    }
    close_with(&mut socket, "closed by flex").await;
    if hub.unregister(&host_id, connection) {
        let _ = Box::pin(store.record_agent_disconnect(&host_id, &instance)).await;
    }
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
        facts: hello.facts.clone(),
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
            files: db.files.iter().cloned().map(Into::into).collect(),
            mount_points: db.mount_points.clone(),
            updated_ts: now,
        })
        .collect()
}

/// Handles one text message; returns what to answer, if anything.
async fn handle_text(ingest: &Ingest, host_id: &str, body: &str) -> Option<String> {
    let message = match serde_json::from_str::<AgentMessage>(body) {
        Ok(message) => message,
        Err(err) => {
            tracing::warn!(%host_id, error = %escaped(&err), "malformed agent message");
            return Some(error_message(
                "BAD_MESSAGE",
                format!("unreadable message: {err}"),
            ));
        }
    };
    let outcome = match message {
        AgentMessage::Heartbeat {} => Ok(()),
        AgentMessage::Hello(_) => {
            return Some(error_message(
                "ALREADY_GREETED",
                "hello is only sent once per connection",
            ));
        }
        AgentMessage::Inventory { databases } => {
            let mut ids = std::collections::HashSet::new();
            if databases.iter().any(|db| !ids.insert(db.id.as_str())) {
                return Some(error_message(
                    "BAD_INVENTORY",
                    "database ids must be unique",
                ));
            }
            ingest.inventory(database_records(host_id, &databases));
            Ok(())
        }
        AgentMessage::Reply(reply) => ingest.reply(reply).await,
    };
    match outcome {
        Ok(()) => None,
        Err(err) => {
            tracing::warn!(%host_id, error = %err, "agent message not stored");
            Some(unavailable())
        }
    }
}

#[cfg(test)]
mod tests {
    /// The size of what `f` returns, without calling it.
    fn size_of_return<A, B, C, D, F>(_: impl Fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// An idle connection is this future, parked: every store call it makes is boxed, so
    /// their states (several KiB together) are not carried by ten thousand idle agents.
    #[test]
    fn an_idle_connection_carries_no_store_call_state() {
        let size = size_of_return(super::serve_socket);
        assert!(size <= 3072, "serve_socket's future is {size} bytes");
    }
}
