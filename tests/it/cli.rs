//! The `flex` client, as the real binary, against the real server with emulated hosts and
//! array: what a pipeline runs, the exit codes it branches on, JSON on stdout and nothing else
//! there, and the `--help` text kept in `docs/cli.md`.

use std::{
    fmt::Write,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::response::IntoResponse;

use flex::emulators::sdp::{FaultAction, FaultRule};
use serde_json::Value;

use crate::support::{ADMIN_TOKEN, Backend, Echo, Options, TestServer, processes::free_port};

/// One run of the binary, as a pipeline sees it.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:#?}"))
    }

    #[track_caller]
    fn expect(self, code: i32) -> Ran {
        assert_eq!(self.code, code, "{self:#?}");
        self
    }
}

/// The binary pointed at one server, with a config file of its own and nothing inherited
/// from the environment of the test run.
struct FlexCli {
    url: String,
    token: Option<String>,
    home: PathBuf,
}

impl FlexCli {
    fn new(url: &str) -> FlexCli {
        let home = std::env::temp_dir().join(format!("flex-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&home).unwrap();
        FlexCli {
            url: url.to_owned(),
            token: Some(ADMIN_TOKEN.to_owned()),
            home,
        }
    }

    fn config_file(&self) -> PathBuf {
        self.home.join(".config/flex/credentials.json")
    }

    async fn run(&self, args: &[&str]) -> Ran {
        self.run_with(args, &[]).await
    }

    async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_flex"));
        command
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("FLEX_URL", &self.url)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(token) = &self.token {
            command.env("FLEX_TOKEN", token);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let output = tokio::time::timeout(Duration::from_mins(2), command.output())
            .await
            .expect("the CLI ends")
            .unwrap();
        Ran {
            code: output.status.code().expect("exited, not killed"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

impl Drop for FlexCli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// `flex clone` of `sales` from `src-01` to `to`, then `extra`.
fn clone_to<'a>(to: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["clone", "--source", "src-01", "--db", "sales", "--to", to];
    args.extend_from_slice(extra);
    args
}

/// Every thin clone takes `ms` more: time to abort, restart, or see a step.
fn slow_thin_clones(echo: &Echo, ms: u64) {
    echo.sdp.add_fault(FaultRule {
        method: Some("POST".into()),
        collection: Some("volumes".into()),
        delay_ms: Some(ms),
        ..FaultRule::new(FaultAction::Delay)
    });
}

async fn rig() -> (Echo, FlexCli) {
    let echo = Echo::start(Backend::Sqlite, Options::default()).await;
    let cli = FlexCli::new(&echo.server.base);
    (echo, cli)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_snapshots_clones_refreshes_and_removes_with_the_cli() {
    let (echo, cli) = rig().await;

    let snapshot = cli
        .run(&[
            "snapshot", "--host", "src-01", "--db", "sales", "--wait", "--prefix", "nightly",
        ])
        .await
        .expect(0)
        .json();
    assert_eq!(
        snapshot["state"], "completed",
        "stdout is not a terminal: JSON"
    );
    let snapshot_id = snapshot["result"]["db_snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(snapshot_id.starts_with("nightly_"), "{snapshot_id}");

    // Names where ids are asked; the ttl as people write it; our own operation id.
    let clone = cli
        .run(&clone_to(
            "dev-01:sales_ci",
            &["--ttl", "2h", "--wait", "--ref-id", "Pipe0001"],
        ))
        .await
        .expect(0);
    let task = clone.json();
    assert_eq!(task["state"], "completed");
    assert_eq!(task["ref_id"], "Pipe0001");
    assert_eq!(task["result"]["cloned_dbs"][0]["name"], "sales_ci");
    assert!(
        clone.stderr.contains("clone_volumes") && clone.stderr.contains("completed in"),
        "one line per step on stderr when it is not a terminal: {}",
        clone.stderr
    );
    let dev = echo.databases("dev-01").await;
    assert_eq!(dev.len(), 1);
    assert_eq!(dev[0]["ttl_secs"], 7200);
    assert_eq!(dev[0]["name"], "sales_ci");

    // The same name again: refused, with the server's code and the ref id to quote.
    let refused = cli
        .run(&[
            "clone",
            "--source",
            "src-01",
            "--db",
            "5",
            "--to",
            "dev-01:sales_ci",
        ])
        .await
        .expect(4);
    assert!(
        refused.stderr.contains("DB_NAME_IS_IN_USE"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("ref id"), "{}", refused.stderr);
    assert!(refused.stdout.is_empty(), "nothing on stdout: {refused:#?}");
    let dry = cli
        .run(&clone_to("dev-01:sales_ci", &["--dry-run"]))
        .await
        .expect(4)
        .json();
    assert_eq!(dry["valid"], false);
    assert_eq!(dry["issues"][0]["issue_type"], "DB_NAME_IS_IN_USE");
    let fine = cli
        .run(&clone_to("dev-02:other", &["--dry-run"]))
        .await
        .expect(0)
        .json();
    assert_eq!(fine["valid"], true);
    assert!(
        echo.databases("dev-02").await.is_empty(),
        "a dry run changes nothing"
    );

    let tasks = cli
        .run(&["tasks", "--ref-id", "Pipe0001"])
        .await
        .expect(0)
        .json();
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["request_id"], task["request_id"]);
    let shown = cli
        .run(&["task", task["request_id"].as_str().unwrap()])
        .await
        .expect(0)
        .json();
    let steps = shown["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["state"] == "completed"), "{shown}");

    let refreshed = cli
        .run(&[
            "refresh",
            "--host",
            "dev-01",
            "--name",
            "sales_ci",
            "--snapshot",
            &snapshot_id,
            "--wait",
        ])
        .await
        .expect(0)
        .json();
    assert_eq!(refreshed["command_type"], "ReplaceDBCommand");
    assert_eq!(refreshed["state"], "completed");

    let removed = cli
        .run(&["rm", "--host", "dev-01", "--db", "sales_ci", "--wait"])
        .await
        .expect(0)
        .json();
    assert_eq!(removed["command_type"], "DeleteCommand");
    let listed = cli.run(&["dbs", "dev-01"]).await.expect(0).json();
    assert_eq!(listed, serde_json::json!([]));

    // Without --wait: the accepted task at once, and `flex wait` follows it.
    let accepted = cli
        .run(&["snapshots", "rm", &snapshot_id])
        .await
        .expect(0)
        .json();
    assert_eq!(accepted["command_type"], "DeleteDBSnapshotCommand");
    let id = accepted["request_id"].as_str().unwrap();
    let ended = cli.run(&["wait", id]).await.expect(0).json();
    assert_eq!(ended["state"], "completed");
    let cloned_from = task["result"]["db_snapshot"]["id"].as_str().unwrap();
    let listed = cli
        .run(&["snapshots", "--host", "src-01"])
        .await
        .expect(0)
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        listed[0]["id"], cloned_from,
        "the clone's own snapshot is left"
    );
    cli.run(&["snapshots", "rm", cloned_from, "--wait"])
        .await
        .expect(0);
    let listed = cli.run(&["snapshots"]).await.expect(0).json();
    assert_eq!(listed, serde_json::json!([]));
    echo.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_registered_listed_and_removed_and_tables_are_for_people() {
    let (_echo, cli) = rig().await;
    let registered = cli
        .run(&["hosts", "register", "ci-host01"])
        .await
        .expect(0)
        .json();
    assert_eq!(registered["host_id"], "ci-host01");
    assert!(registered["token"].as_str().unwrap().starts_with("fx_"));
    let again = cli
        .run(&["hosts", "register", "ci-host01", "--dry-run"])
        .await
        .expect(4)
        .json();
    assert_eq!(again["issues"][0]["issue_type"], "HOST_ALREADY_EXISTS");
    let table = cli.run(&["hosts", "--output", "table"]).await.expect(0);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines[0].starts_with("HOST") && lines[0].contains("CONNECTED"),
        "{table:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ci-host01") && l.contains(" no ")),
        "{table:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("src-01") && l.contains(" yes ")),
        "{table:#?}"
    );
    let hosts = cli.run(&["hosts"]).await.expect(0).json();
    assert_eq!(hosts.as_array().unwrap().len(), 4);
    cli.run(&["hosts", "rm", "ci-host01"]).await.expect(0);
    let hosts = cli.run(&["hosts"]).await.expect(0).json();
    assert_eq!(hosts.as_array().unwrap().len(), 3);
    let topology = cli.run(&["topology", "--output", "table"]).await.expect(0);
    assert!(
        topology
            .stdout
            .lines()
            .any(|l| l.starts_with("src-01") && l.contains("sales")),
        "{topology:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_exits_1_and_an_aborted_one_2() {
    let (echo, cli) = rig().await;
    echo.sdp.add_fault(FaultRule {
        method: Some("POST".into()),
        collection: Some("volumes".into()),
        status: Some(400),
        error_code: Some("MC_ERR_QUOTA".into()),
        error_msg: Some("volume group quota exceeded".into()),
        times: Some(1),
        ..FaultRule::new(FaultAction::Error)
    });
    let failed = cli
        .run(&clone_to("dev-01:doomed", &["--wait"]))
        .await
        .expect(1);
    assert_eq!(failed.json()["state"], "failed");
    assert!(
        failed.stderr.contains("undoing"),
        "the undo is shown: {}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("quota exceeded"),
        "{}",
        failed.stderr
    );

    // Slow thin clones, so there is time to abort.
    slow_thin_clones(&echo, 3000);
    let accepted = cli
        .run(&clone_to("dev-01:stopped", &[]))
        .await
        .expect(0)
        .json();
    let id = accepted["request_id"].as_str().unwrap();
    cli.run(&["abort", id, "--dry-run"]).await.expect(0);
    cli.run(&["abort", id]).await.expect(0);
    let aborted = cli.run(&["wait", id]).await.expect(2).json();
    assert_eq!(aborted["state"], "aborted");
    let again = cli.run(&["abort", id]).await.expect(4);
    assert!(
        again.stderr.contains("TASK_NOT_RUNNING"),
        "{}",
        again.stderr
    );
    echo.sdp.clear_faults();
    echo.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_3_and_an_unreachable_server_5() {
    let (_echo, cli) = rig().await;
    for args in [
        vec![
            "clone", "--source", "src-01", "--db", "sales", "--to", "dev-01",
        ],
        vec![
            "clone", "--source", "src-01", "--db", "sales", "--to", "dev-01:x", "--ttl", "soon",
        ],
        vec!["hosts", "--ref-id", "not-alphanumeric!"],
        vec!["no-such-command"],
        vec!["--output", "yaml", "hosts"],
    ] {
        let ran = cli.run(&args).await;
        assert_eq!(ran.code, 3, "{args:?}: {ran:#?}");
        assert!(ran.stdout.is_empty(), "{args:?}: {ran:#?}");
    }
    let unknown = cli
        .run(&[
            "clone", "--source", "src-01", "--db", "nope", "--to", "dev-01:x",
        ])
        .await
        .expect(4);
    assert!(
        unknown.stderr.contains("DB_NOT_FOUND"),
        "{}",
        unknown.stderr
    );
    let away = FlexCli::new(&format!("http://127.0.0.1:{}", free_port()));
    let ran = away.run(&["tasks"]).await.expect(5);
    assert!(ran.stderr.contains("cannot reach"), "{}", ran.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_keeps_a_token_only_its_owner_can_read_and_logout_forgets_it() {
    let (_echo, mut cli) = rig().await;
    cli.token = None;
    let anonymous = cli.run(&["hosts"]).await.expect(4);
    assert!(
        anonymous.stderr.contains("flex login"),
        "{}",
        anonymous.stderr
    );
    let wrong = cli
        .run_with(&["login", "--user", "admin"], &[("FLEX_PASSWORD", "wrong")])
        .await
        .expect(4);
    assert!(!cli.config_file().exists(), "{wrong:#?}");
    let login = cli
        .run_with(&["login", "--user", "admin"], &[("FLEX_PASSWORD", "pw")])
        .await
        .expect(0)
        .json();
    assert_eq!(login["user"], "admin");
    assert!(
        !login.to_string().contains("fx_"),
        "the token stays in the file: {login}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cli.config_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let hosts = cli.run(&["hosts"]).await.expect(0).json();
    assert_eq!(hosts.as_array().unwrap().len(), 3);
    cli.run(&["logout"]).await.expect(0);
    assert!(!cli.config_file().exists());
    cli.run(&["hosts"]).await.expect(4);
}

/// Every command's `--help`, as `docs/cli.md` shows it; `FLEX_UPDATE_CLI_DOCS=1` rewrites it.
#[tokio::test]
async fn the_help_in_docs_is_what_the_binary_prints() {
    let cli = FlexCli::new("http://127.0.0.1:8080");
    let commands: &[&[&str]] = &[
        &[],
        &["login"],
        &["logout"],
        &["hosts"],
        &["hosts", "register"],
        &["hosts", "rm"],
        &["dbs"],
        &["topology"],
        &["snapshot"],
        &["snapshots"],
        &["snapshots", "rm"],
        &["clone"],
        &["refresh"],
        &["rm"],
        &["tasks"],
        &["task"],
        &["wait"],
        &["abort"],
        &["tokens"],
        &["tokens", "create"],
        &["tokens", "rm"],
        &["audit"],
        &["reconcile"],
        &["completions"],
    ];
    let mut doc = String::from(
        "# The `flex` command line\n\n\
         Every client command's `--help`, generated by `tests/it/cli.rs` \
         (`FLEX_UPDATE_CLI_DOCS=1 cargo test --test it cli::` rewrites this file; the test \
         fails when it is out of date).\n",
    );
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let ran = cli.run(&args).await.expect(0);
        assert!(
            ran.stdout.contains("Example"),
            "{command:?} has an example: {ran:#?}"
        );
        let title = format!("flex {}", command.join(" "));
        let _ = write!(
            doc,
            "\n## {}\n\n```text\n{}```\n",
            title.trim_end(),
            ran.stdout
        );
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md");
    if std::env::var_os("FLEX_UPDATE_CLI_DOCS").is_some() {
        std::fs::write(path, &doc).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == doc,
        "docs/cli.md is not what `flex … --help` prints; run FLEX_UPDATE_CLI_DOCS=1 cargo test --test it cli::"
    );

    let completions = cli.run(&["completions", "bash"]).await.expect(0);
    assert!(
        completions.stdout.contains("flex__subcmd__clone"),
        "{}",
        &completions.stdout[..200]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_server_is_trusted_with_ca_file_or_insecure_and_refused_otherwise() {
    let (server, certificate) = TestServer::start_tls(Backend::Sqlite).await;
    let cert = &certificate.cert;
    let cli = FlexCli::new(&server.base);
    let untrusted = cli.run(&["hosts"]).await.expect(5);
    assert!(untrusted.stderr.contains("cannot reach"), "{untrusted:#?}");
    let trusted = cli
        .run(&["hosts", "--ca-file", cert.to_str().unwrap()])
        .await
        .expect(0);
    assert_eq!(trusted.json(), serde_json::json!([]));
    cli.run_with(&["hosts"], &[("FLEX_INSECURE", "true")])
        .await
        .expect(0);
    let missing = cli
        .run(&["hosts", "--ca-file", "/nonexistent.pem"])
        .await
        .expect(3);
    assert!(missing.stderr.contains("--ca-file"), "{missing:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_rides_out_a_server_restart() {
    let options = || Options {
        lease: Duration::from_secs(2),
        ..Options::default()
    };
    let mut echo = Echo::start(Backend::Sqlite, options()).await;
    let cli = FlexCli::new(&echo.server.base);
    slow_thin_clones(&echo, 1500);
    let accepted = cli
        .run(&clone_to("dev-01:through", &[]))
        .await
        .expect(0)
        .json();
    let id = accepted["request_id"].as_str().unwrap().to_owned();
    let waiter = {
        let cli = FlexCli::new(&echo.server.base);
        tokio::spawn(async move { cli.run(&["wait", &id]).await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    echo.stop_server().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    echo.start_again(&options()).await;
    let ran = waiter.await.unwrap().expect(0);
    assert_eq!(ran.json()["state"], "completed");
    assert_eq!(
        echo.dest_databases("dev-01").await,
        vec!["through".to_owned()]
    );
}

/// A server without the event stream (an older Flex), played by a proxy in front of the real
/// one that answers 404 there and counts the task reads.
async fn without_event_stream(upstream: String) -> (String, Arc<AtomicUsize>) {
    let task_reads = Arc::new(AtomicUsize::new(0));
    let counted = task_reads.clone();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (http, upstream, counted) = (http.clone(), upstream.clone(), counted.clone());
        async move {
            let path = request.uri().path_and_query().unwrap().to_string();
            if path.starts_with("/api/echo/v1/events") {
                return (axum::http::StatusCode::NOT_FOUND, "{}".to_owned()).into_response();
            }
            if path.starts_with("/api/echo/v1/tasks/") {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            let mut forwarded = http.request(request.method().clone(), format!("{upstream}{path}"));
            for (name, value) in request.headers() {
                if name != "host" {
                    forwarded = forwarded.header(name, value);
                }
            }
            let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                .await
                .unwrap();
            let answer = forwarded.body(body).send().await.unwrap();
            let status = answer.status();
            (status, answer.bytes().await.unwrap()).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, task_reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_event_stream_waiting_polls() {
    let (echo, _) = rig().await;
    let (url, task_reads) = without_event_stream(echo.server.base.clone()).await;
    let cli = FlexCli::new(&url);
    slow_thin_clones(&echo, 1500);
    let ran = cli
        .run(&clone_to("dev-01:polled", &["--wait"]))
        .await
        .expect(0);
    assert_eq!(ran.json()["state"], "completed");
    assert!(
        ran.stderr.contains("clone_volumes"),
        "the 3 s step is seen while it runs: {}",
        ran.stderr
    );
    let reads = task_reads.load(Ordering::SeqCst);
    // The first read, the long poll that saw the end, the final read; long polls in between.
    assert!((3..=20).contains(&reads), "{reads} task reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_have_roles_and_the_audit_trail_says_who_was_refused() {
    let (_echo, cli) = rig().await;
    let made = cli
        .run(&[
            "tokens",
            "create",
            "ci-viewer",
            "--role",
            "viewer",
            "--ttl",
            "1h",
        ])
        .await
        .expect(0)
        .json();
    assert_eq!(made["role"], "viewer");
    let token = made["token"].as_str().unwrap().to_owned();
    let listed = cli.run(&["tokens"]).await.expect(0).json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == made["id"] && t["role"] == "viewer"),
        "{listed}"
    );

    let mut viewer = FlexCli::new(&cli.url);
    viewer.token = Some(token);
    viewer.run(&["hosts"]).await.expect(0);
    let refused = viewer
        .run(&["hosts", "register", "ci-host02", "--ref-id", "CliAudit1"])
        .await
        .expect(4);
    assert!(
        refused.stderr.contains("FORBIDDEN_FOR_ROLE"),
        "{}",
        refused.stderr
    );

    let trail = cli
        .run(&["audit", "--ref-id", "CliAudit1", "--since", "10m"])
        .await
        .expect(0)
        .json();
    let rows = trail.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{trail}");
    assert_eq!(rows[0]["status"], 403);
    assert_eq!(rows[0]["role"], "viewer");
    assert_eq!(rows[0]["token_name"], "ci-viewer");
    let table = cli.run(&["audit", "--output", "table"]).await.expect(0);
    assert!(
        table.stdout.contains("PUT /api/v1/hosts/ci-host02"),
        "{table:#?}"
    );

    cli.run(&["tokens", "rm", made["id"].as_str().unwrap()])
        .await
        .expect(0);
    viewer.run(&["hosts"]).await.expect(4);
}
