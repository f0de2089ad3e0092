//! The server as an operator runs it: HTTPS, graceful shutdown, and the `flex` binary itself
//! (migrate, first-start admin token, SIGTERM).

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use crate::support::{Backend, TestDb, TestServer};

#[tokio::test]
async fn serves_https_with_the_given_certificate_and_stops_gracefully() {
    let (server, _certificate) = TestServer::start_tls(Backend::Sqlite).await;
    let hosts = server.get("/flex/api/v1/hosts").await;
    assert_eq!(hosts.status(), 204);
    assert_eq!(
        hosts.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let plain = reqwest::get(server.base.replace("https://", "http://") + "/healthz").await;
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "plain HTTP must not be served on the TLS port"
    );
    tokio::time::timeout(Duration::from_secs(15), server.stop())
        .await
        .expect("graceful shutdown ends")
        .expect("server ends without error");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let server = TestServer::start(Backend::Sqlite).await;
    for (path, status) in [
        ("/api/v1/hosts", 204),
        ("/api/echo/v1/topology", 200),
        ("/healthz", 200),
        ("/no/such/route", 404),
    ] {
        let response = server.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert!(
            headers.get("strict-transport-security").is_none(),
            "no HSTS over plain HTTP: {path}"
        );
    }
    let refused = server
        .client
        .get(server.url("/api/v1/hosts"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["cache-control"], "no-store");
}

fn flex_binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flex"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `flex serve`, waits for its first stdout line or readiness, then stops it with SIGTERM.
/// Returns what it printed on stdout and its exit status.
fn serve_once(database_url: &str) -> (String, std::process::ExitStatus) {
    let port = free_port();
    let mut child = flex_binary()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database-url", database_url])
        .env_remove("FLEX_ADMIN_TOKEN")
        .env("FLEX_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready_url = format!("http://127.0.0.1:{port}/readyz");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ready = runtime.block_on(async {
        for _ in 0..200 {
            if let Ok(r) = reqwest::get(&ready_url).await
                && r.status() == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    });
    assert!(ready, "flex serve never became ready");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        stdout.push_str(&line.unwrap());
        stdout.push('\n');
    }
    (stdout, status)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_migrates_prints_its_first_admin_token_once_and_stops_on_sigterm() {
    let db = TestDb::new(Backend::Sqlite).await;
    let url = db.url.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let migrate = flex_binary()
            .args(["migrate", "--database-url", &url])
            .env("FLEX_LOG", "warn")
            .status()
            .unwrap();
        assert!(migrate.success(), "flex migrate succeeds");
        let first = serve_once(&url);
        let second = serve_once(&url);
        (first, second)
    })
    .await
    .unwrap();
    let ((first_out, first_status), (second_out, second_status)) = outcome;
    assert!(
        first_status.success(),
        "SIGTERM is a clean exit: {first_status}"
    );
    assert!(second_status.success());
    let token = first_out
        .lines()
        .find_map(|line| line.split("store it now): ").nth(1))
        .expect("first start prints the generated admin token")
        .trim()
        .to_owned();
    assert!(!second_out.contains(&token), "the token is shown only once");
    let store = db.store().await;
    let admin = flex::auth::authenticate(&store, &token).await.unwrap();
    assert_eq!(admin.unwrap().kind, flex::store::TokenKind::Admin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_https_with_connected_hosts_and_clones_end_to_end() {
    crate::support::init_tracing();
    let (port, sdp_port) = (free_port(), free_port());
    let mut child = flex_binary()
        .args(["demo", "--tls", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--sdp-listen", &format!("127.0.0.1:{sdp_port}")])
        .env_remove("FLEX_ADMIN_TOKEN")
        .env_remove("FLEX_ADMIN_USER")
        .env_remove("FLEX_ADMIN_PASSWORD")
        .env("FLEX_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut ready = false;
    for _ in 0..400 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stdout = child.stdout.take().unwrap();
    let (token, login) = tokio::task::spawn_blocking(move || {
        let mut token = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(printed) = line.strip_prefix("Admin token: ") {
                token = Some(printed.to_owned());
            }
            if let Some(printed) = line.strip_prefix("Login:") {
                return (token, Some(printed.trim().to_owned()));
            }
        }
        (token, None)
    })
    .await
    .unwrap();
    let stop = |mut child: std::process::Child| {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    };
    if !ready {
        stop(child);
        panic!("the demo never became ready");
    }
    let token = token.expect("the demo prints its admin token");
    // "user demo, password XXXX (POST …)": the login-first tools get in with it.
    let login = login.expect("the demo prints its login");
    let password = login
        .split("password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    assert!(login.starts_with("user demo,"), "{login}");
    let session: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/local/login"))
        .body(format!("password={password}&username=demo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = session["access_token"]
        .as_str()
        .expect("logged in")
        .to_owned();
    let dashboard: serde_json::Value = http
        .get(format!("{base}/api/v1/pages/dashboard"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dashboard["k2xs"][0]["state"], "ONLINE", "{dashboard}");

    // Ready means: the three hosts are registered and connected, the source with 2 databases.
    let topology: serde_json::Value = http
        .get(format!("{base}/api/echo/v1/topology"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hosts = topology.as_array().unwrap();
    assert_eq!(hosts.len(), 3);
    assert!(hosts.iter().all(|h| h["host"]["is_connected"] == true));
    let source = hosts.iter().find(|h| h["host"]["id"] == "src-01").unwrap();
    assert_eq!(source["databases"].as_array().unwrap().len(), 2);

    // The printed clone command's request, then poll its location.
    let task: serde_json::Value = http
        .post(format!("{base}/api/echo/v1/echo_dbs"))
        .bearer_auth(&token)
        .body(r#"{"source_host_id":"src-01","destinations":[{"host_id":"dev-01","db_id":"5","db_name":"sales_copy"}]}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let location = format!("{base}{}", task["location"].as_str().unwrap());
    let mut state = String::new();
    for _ in 0..200 {
        let now: serde_json::Value = http
            .get(&location)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        state = now["state"].as_str().unwrap().to_owned();
        if state != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(child);
    assert_eq!(state, "completed");
}

/// `flex serve` on an address other hosts reach, until SIGTERM; its stderr goes to `log`.
async fn serve_off_loopback(db_url: &str, port: u16, log: &std::path::Path, extra: &[&str]) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flex"))
        .args(["serve", "--listen", &format!("0.0.0.0:{port}")])
        .args(["--database-url", db_url])
        .args(extra)
        .env("FLEX_LOG", "info")
        .env_remove("FLEX_PLAIN_HTTP")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let plain = extra.contains(&"--plain-http");
    let scheme = if plain { "http" } else { "https" };
    let insecure = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let url = format!("{scheme}://127.0.0.1:{port}/healthz");
    let mut up = false;
    for _ in 0..400 {
        if insecure
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        up,
        "{url} never answered: {}",
        std::fs::read_to_string(log).unwrap()
    );
    if !plain {
        let other = format!("http://127.0.0.1:{port}/healthz");
        let answer = reqwest::get(&other).await;
        assert!(
            answer.map_or(true, |r| !r.status().is_success()),
            "no plain HTTP there"
        );
    }
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_serve_makes_a_certificate_once_and_plain_http_must_be_asked_for() {
    crate::support::init_tracing();
    let dir = std::env::temp_dir().join(format!("flex-tls-default-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db_url = format!("sqlite://{}/flex.db", dir.display());
    let (cert, key, log) = (
        dir.join("flex-tls-cert.pem"),
        dir.join("flex-tls-key.pem"),
        dir.join("serve.log"),
    );

    serve_off_loopback(&db_url, free_port(), &log, &[]).await;
    let first = std::fs::read(&cert).expect("the certificate is beside the database");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only Flex reads its key");
    }
    let fingerprint = flex::tls::fingerprint(&cert).unwrap();
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains(&fingerprint),
        "the fingerprint is logged"
    );

    serve_off_loopback(&db_url, free_port(), &log, &[]).await;
    assert_eq!(std::fs::read(&cert).unwrap(), first, "reused on restart");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains(&fingerprint)
    );

    serve_off_loopback(&db_url, free_port(), &log, &["--plain-http"]).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_the_state_while_flex_serves() {
    let server = TestServer::start(Backend::Sqlite).await;
    for host in ["host01", "host02"] {
        server.register_host(host).await;
    }
    let dir = std::env::temp_dir().join(format!("flex-backup-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let to = dir.join("copy.db");
    let backup = |to: &std::path::Path, url: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_flex"))
            .args(["backup", "--database-url", url, "--to"])
            .arg(to)
            .env("FLEX_LOG", "warn")
            .output()
    };
    // Writes go on while it copies.
    let writing = {
        let client = server.client.clone();
        let url = server.url("/api/v1/hosts/");
        tokio::spawn(async move {
            for n in 0..20 {
                client
                    .put(format!("{url}busy{n:02}"))
                    .bearer_auth(crate::support::ADMIN_TOKEN)
                    .body(r#"{"db_vendor":"mssql"}"#)
                    .send()
                    .await
                    .unwrap();
            }
        })
    };
    let made = backup(&to, &server.db.url).await.unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    writing.await.unwrap();

    let copy = flex::store::Store::connect(&format!("sqlite://{}", to.display()))
        .await
        .unwrap();
    let hosts: Vec<String> = copy
        .list_hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.host_id)
        .collect();
    assert!(hosts.contains(&"host01".to_owned()) && hosts.contains(&"host02".to_owned()));
    copy.migrate().await.expect("a complete, current schema");
    copy.close().await;

    let again = backup(&to, &server.db.url).await.unwrap();
    assert!(!again.status.success(), "never over an existing file");
    let missing = backup(&dir.join("x.db"), "sqlite:///nonexistent/flex.db")
        .await
        .unwrap();
    assert!(!missing.status.success());
    assert!(!dir.join("x.db").exists());
    let postgres = backup(&dir.join("pg.db"), &crate::support::postgres_url())
        .await
        .unwrap();
    assert!(!postgres.status.success());
    assert!(String::from_utf8_lossy(&postgres.stderr).contains("pg_dump"));
    let _ = std::fs::remove_dir_all(dir);
}
