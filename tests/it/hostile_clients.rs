//! Clients that mean harm at the connection level: one that forges log lines through a path
//! parameter, one that trickles its headers to hold a connection, many that open connections
//! and keep them.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::support::{
    ADMIN_TOKEN, Backend, TestServer, http_client,
    processes::{FlexServe, free_port, wait_ready},
};

/// Every logged value that came from a request is escaped: a host id with an encoded newline
/// does not start a line of its own in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_input_cannot_forge_a_log_line() {
    let dir = std::env::temp_dir().join(format!("flex-logs-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = dir.join("flex.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let database_url = format!("sqlite://{}", dir.join("flex.db").display());
    let log = std::fs::File::create(&log_path).unwrap();
    let _flex = FlexServe::new(port, &database_url)
        .env("FLEX_LOG", "debug")
        .stderr(log)
        .spawn();
    let http = http_client();
    wait_ready(&http, &base).await;
    for path in [
        "/api/v1/hosts/abc%0AFORGED%20line%20one",
        "/api/v1/hosts/abc%0D%0AFORGED%20line%20two/databases",
        "/api/echo/v1/tasks/x%0A%1B%5B31mFORGED%20line%20three",
    ] {
        let response = http
            .get(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    // The server writes its log as it goes; give the last line a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logged.contains("request refused"),
        "debug lines are logged: {logged}"
    );
    for line in logged.lines() {
        assert!(
            !line.trim_start().starts_with("FORGED") && !line.contains("\u{1b}[31mFORGED"),
            "a request forged a log line: {line:?}"
        );
    }
    assert!(
        logged.contains("abc\\nFORGED line one"),
        "the refused id is logged, escaped"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Reads until the server closes the connection (or `limit` passes); true when it closed.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 256];
    while started.elapsed() < limit {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

/// A client that sends its headers a byte at a time is cut off once the header read timeout
/// passes, however long it would keep going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_are_cut_off() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.limits.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let address = format!("127.0.0.1:{}", server.port());
    let cut_off = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        let started = Instant::now();
        let request =
            b"GET /healthz HTTP/1.1\r\nHost: flex\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for byte in request {
            if stream.write_all(&[*byte]).is_err() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        // Still sending after the timeout means the server never cut it off.
        if closed_within(&mut stream, Duration::from_secs(5)) {
            started.elapsed()
        } else {
            Duration::MAX
        }
    })
    .await
    .unwrap();
    assert!(
        cut_off < Duration::from_secs(5),
        "the connection was held for {cut_off:?}"
    );
    // A client that sends its request at once is served as ever.
    assert_eq!(
        server
            .client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Past `--max-connections`, a new connection is closed at once; one that ends frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_bound_are_closed() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.limits.max_connections = 2;
    })
    .await;
    // The test's own client keeps one connection open (its pool): one slot is left.
    let address = format!("127.0.0.1:{}", server.port());
    let (held_closed, extra_closed, served) = tokio::task::spawn_blocking(move || {
        let mut held = TcpStream::connect(&address).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let held_closed = closed_within(&mut held, Duration::from_millis(300));
        let mut extra = TcpStream::connect(&address).unwrap();
        let extra_closed = closed_within(&mut extra, Duration::from_secs(2));
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        let mut next = TcpStream::connect(&address).unwrap();
        next.write_all(b"GET /healthz HTTP/1.1\r\nHost: flex\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = next.read_to_string(&mut answer);
        (
            held_closed,
            extra_closed,
            answer.starts_with("HTTP/1.1 200"),
        )
    })
    .await
    .unwrap();
    assert!(!held_closed, "a connection within the bound is kept");
    assert!(extra_closed, "a connection past the bound is closed");
    assert!(served, "a freed slot serves the next connection");
}
