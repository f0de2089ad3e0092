//! Memory per idle agent connection.
//!
//! Starts `flex serve` as its own process (SQLite), registers N hosts, opens N agent sockets
//! that say `hello` and then stay idle, and reports the server's resident memory before and
//! after, per connection. Run: `cargo bench --bench idle_agents -- --agents 10000`.

#[path = "common/mod.rs"]
mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::{ADMIN_TOKEN, arg, free_port, memory_kib, register_host, spawn_flex, wait_ready};

use futures_util::{SinkExt, StreamExt, stream};
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
};

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let agents = arg("--agents", 1000usize);
    let dir = std::env::temp_dir().join(format!("flex-bench-agents-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let database_url = format!("sqlite://{}", dir.join("flex.db").display());
    let server = spawn_flex(port, &database_url, None, &[]);
    let pid = server.pid();
    let http = reqwest::Client::new();
    wait_ready(&http, &base).await;

    let started = Instant::now();
    let tokens: Vec<(String, String)> = stream::iter(0..agents)
        .map(|n| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let host_id = format!("idle-{n:05}");
                let token = register_host(&http, &base, &host_id).await;
                (host_id, token)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    println!("registered {agents} hosts in {:.1?}", started.elapsed());

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = memory_kib(pid, "VmRSS:");
    let url = Arc::new(format!("ws://127.0.0.1:{port}/api/v1/agent/ws"));
    let started = Instant::now();
    let sockets: Vec<_> = stream::iter(tokens)
        .map(|(host_id, token)| {
            let url = url.clone();
            async move {
                let mut request = url.as_str().into_client_request().unwrap();
                request.headers_mut().insert(
                    "authorization",
                    HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
                );
                let config = WebSocketConfig::default()
                    .read_buffer_size(4096)
                    .write_buffer_size(4096);
                let (mut socket, _) =
                    tokio_tungstenite::connect_async_with_config(request, Some(config), false)
                        .await
                        .unwrap();
                let hello =
                    serde_json::json!({"type": "hello", "protocol": 1, "host_name": host_id});
                socket.send(Message::text(hello.to_string())).await.unwrap();
                while let Some(Ok(frame)) = socket.next().await {
                    if matches!(frame, Message::Text(_)) {
                        break;
                    }
                }
                socket
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    println!(
        "connected {} agents in {:.1?}",
        sockets.len(),
        started.elapsed()
    );

    // Keep answering pings so the sockets stay healthy while memory settles.
    let keepalive: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move { while let Some(Ok(_)) = socket.next().await {} })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = memory_kib(pid, "VmRSS:");
    let hosts: serde_json::Value = http
        .get(format!("{base}/api/v1/hosts"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connected = hosts.as_array().map_or(0, |h| {
        h.iter().filter(|h| h["is_connected"] == true).count()
    });
    let per_connection = (after.saturating_sub(before) as f64) / agents.max(1) as f64;
    println!("server RSS before: {:.1} MiB", before as f64 / 1024.0);
    println!(
        "server RSS with {agents} idle agents: {:.1} MiB",
        after as f64 / 1024.0
    );
    println!("hosts reported connected: {connected}");
    println!("memory per idle agent connection: {per_connection:.1} KiB");
    for task in keepalive {
        task.abort();
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
