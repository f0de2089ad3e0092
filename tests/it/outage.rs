//! Postgres goes away under load and comes back: requests are answered 503 quickly (never
//! left hanging), the server recovers by itself without a restart, and the clone that was in
//! flight when the database went away still completes with the ledger and the array agreeing.
//!
//! The outage is a proxy between Flex and the local Postgres that the test cuts: every open
//! connection is reset and new ones are refused, which is what Flex sees when Postgres
//! restarts or fails over; restarting the shared Postgres itself would disturb other tests.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::Value;
use tokio::{net::TcpListener, task::AbortHandle};

use crate::{
    support::{Backend, postgres_url},
    support::{Echo, Options},
};

/// A TCP proxy to Postgres that can be cut and restored.
struct DatabaseProxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl DatabaseProxy {
    async fn start(target: SocketAddr) -> DatabaseProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (accepting, tracked) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees its connection closed at once
                }
                let forward = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(forward.abort_handle());
            }
        });
        DatabaseProxy {
            port,
            up,
            connections,
        }
    }

    /// Resets every open connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn postgres_address() -> SocketAddr {
    let url = reqwest::Url::parse(&postgres_url()).unwrap();
    let host = url.host_str().unwrap_or("127.0.0.1");
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .unwrap()
}

/// What the background load saw: each answer's status, or the transport error.
#[derive(Default)]
struct LoadLog {
    statuses: Vec<u16>,
    transport_errors: Vec<String>,
    slowest: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_503_and_recovered_from_without_a_restart() {
    let acquire_timeout = Duration::from_secs(1);
    let proxy = DatabaseProxy::start(postgres_address()).await;
    let echo = Echo::start(
        Backend::Postgres,
        Options {
            database_port: Some(proxy.port),
            db_acquire_timeout: acquire_timeout,
            lease: Duration::from_secs(3),
            dest_reply_delay: Duration::from_millis(1_500),
            ..Default::default()
        },
    )
    .await;

    // A clone in flight: its thin clones exist, the slow destination has not attached yet.
    let clone = echo.start_clone_until_thin_clones_exist().await;

    // Readers keep asking throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(LoadLog::default()));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (stop, log) = (stop.clone(), log.clone());
        let request = echo.server.admin(Method::GET, "/api/v1/hosts/src-01");
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let answer = request.try_clone().unwrap().send().await;
                {
                    let mut log = log.lock().unwrap();
                    log.slowest = log.slowest.max(started.elapsed());
                    match answer {
                        Ok(response) => log.statuses.push(response.status().as_u16()),
                        Err(err) => log.transport_errors.push(err.to_string()),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.cut();
    let outage_began = Instant::now();
    let mut refused = 0;
    while outage_began.elapsed() < Duration::from_secs(3) {
        let started = Instant::now();
        let response = echo.server.get("/api/v1/hosts/dev-01").await;
        let took = started.elapsed();
        assert_eq!(response.status(), 503, "while the database is away");
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("1")
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "SERVICE_UNAVAILABLE", "{body}");
        assert!(
            took < acquire_timeout + Duration::from_secs(2),
            "a request waited {took:?}: it must fail within the acquire timeout, not hang"
        );
        refused += 1;
    }
    let ready = echo
        .server
        .client
        .get(echo.server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "not ready while the database is away");

    proxy.restore();
    let restored = Instant::now();
    let mut back = false;
    while restored.elapsed() < Duration::from_secs(20) {
        if echo.server.get("/api/v1/hosts/dev-01").await.status() == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "Flex serves again once the database is back");
    println!(
        "outage: {refused} requests refused with 503; serving again {:?} after the database returned",
        restored.elapsed()
    );
    // Writes work again too.
    echo.server.register_host("after-outage").await;

    let done = echo.wait(&clone).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(echo.dest_databases("dev-01").await, ["sales_copy"]);
    echo.assert_ledger_matches_array().await;

    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
    let log = log.lock().unwrap();
    assert!(
        log.transport_errors.is_empty(),
        "every request was answered: {:?}",
        log.transport_errors
    );
    let unexpected: Vec<u16> = log
        .statuses
        .iter()
        .copied()
        .filter(|s| *s != 200 && *s != 503)
        .collect();
    assert!(unexpected.is_empty(), "only 200 or 503: {unexpected:?}");
    assert!(log.statuses.contains(&503) && log.statuses.last() == Some(&200));
    assert!(
        log.slowest < acquire_timeout + Duration::from_secs(2),
        "slowest answer under load {:?}",
        log.slowest
    );
}
