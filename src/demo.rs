//! `flex demo`: the whole system in one process, for a first look and for tests. Flex on an
//! embedded SQLite file, an SDP emulator, and three emulated SQL Server hosts: `src-01` with
//! two databases on two volume groups, and two empty destinations `dev-01` and `dev-02`. The
//! hosts are registered through the API and connected before `/readyz` turns 200.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::Value;
use tokio::net::TcpListener;

use crate::{
    Config, FlexError,
    config::TlsFiles,
    emulators::{
        agent::{AgentEmulator, AgentEmulatorConfig, DatabaseSpec, FileSpec},
        sdp::{SdpEmulator, SdpEmulatorConfig},
    },
    model::FileKind,
    sdp::SdpConfig,
};

pub struct DemoOptions {
    pub listen: SocketAddr,
    pub sdp_listen: SocketAddr,
    pub tls: bool,
    pub sdp_user: String,
    pub sdp_password: String,
    /// Where the demo keeps its SQLite file (and TLS files); a fresh temporary folder if absent.
    pub data_dir: Option<PathBuf>,
    pub admin_token: Option<String>,
    /// The user the login endpoint accepts.
    pub admin_user: String,
    /// Its password; a generated one (printed) if absent.
    pub admin_password: Option<String>,
}

fn file(name: &str, kind: FileKind, volume: &str, volume_group: &str, size_mb: u64) -> FileSpec {
    FileSpec {
        name: name.into(),
        kind,
        volume: volume.into(),
        volume_group: volume_group.into(),
        size_mb,
    }
}

/// The source host's databases: two, on two volume groups.
pub fn demo_databases() -> Vec<DatabaseSpec> {
    vec![
        DatabaseSpec {
            id: "5".into(),
            name: "sales".into(),
            files: vec![
                file(
                    "sales_data",
                    FileKind::Data,
                    "src01-sales-data",
                    "src01-vg-sales",
                    4096,
                ),
                file(
                    "sales_log",
                    FileKind::Log,
                    "src01-sales-log",
                    "src01-vg-sales",
                    1024,
                ),
            ],
        },
        DatabaseSpec {
            id: "6".into(),
            name: "hr".into(),
            files: vec![
                file("hr_data", FileKind::Data, "src01-hr", "src01-vg-hr", 2048),
                file("hr_log", FileKind::Log, "src01-hr", "src01-vg-hr", 512),
            ],
        },
    ]
}

fn io_error(err: impl std::fmt::Display) -> FlexError {
    FlexError::Io(std::io::Error::other(err.to_string()))
}

/// Runs the demo until `shutdown` resolves.
pub async fn run(
    options: DemoOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), FlexError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data_dir = match &options.data_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("flex-demo-{}", uuid::Uuid::new_v4().simple())),
    };
    std::fs::create_dir_all(&data_dir)?;

    let sdp_listener = TcpListener::bind(options.sdp_listen).await?;
    let sdp = SdpEmulator::start(
        SdpEmulatorConfig {
            user: options.sdp_user.clone(),
            password: options.sdp_password.clone(),
            state_file: Some(data_dir.join("sdp.json")),
            clone_delay: Duration::from_millis(200),
            ..Default::default()
        },
        sdp_listener,
    )
    .await?;

    let admin_token = options
        .admin_token
        .clone()
        .unwrap_or_else(|| format!("fxa_{}", crate::auth::random_alphanumeric(40)));
    let admin_password = options
        .admin_password
        .clone()
        .unwrap_or_else(|| crate::auth::random_alphanumeric(16));
    let mut config = Config::new(format!("sqlite://{}", data_dir.join("flex.db").display()));
    config.admin_token = Some(admin_token.clone());
    config.admin_user = Some(options.admin_user.clone());
    config.admin_password = Some(admin_password.clone());
    config.sdp = Some(SdpConfig::new(
        &sdp.url,
        &options.sdp_user,
        &options.sdp_password,
    ));
    config.agent_heartbeat = Duration::from_secs(5);
    let gate = Arc::new(AtomicBool::new(false));
    config.ready_gate = Some(gate.clone());
    let scheme = if options.tls {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .map_err(io_error)?;
        let (cert, key) = (
            data_dir.join("demo-cert.pem"),
            data_dir.join("demo-key.pem"),
        );
        std::fs::write(&cert, certified.cert.pem())?;
        std::fs::write(&key, certified.signing_key.serialize_pem())?;
        config.tls = Some(TlsFiles { cert, key });
        "https"
    } else {
        "http"
    };
    let listener = TcpListener::bind(options.listen).await?;
    let address = listener.local_addr()?;
    let host = if address.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        address.ip().to_string()
    };
    let base = format!("{scheme}://{host}:{}", address.port());
    let server = tokio::spawn(crate::run(config, listener, shutdown));

    let agents = register_hosts(&base, &admin_token, &sdp, options.tls, &options).await?;
    wait_connected(&base, &admin_token).await?;
    gate.store(true, Ordering::SeqCst);

    let insecure = if options.tls { "-k " } else { "" };
    // A password the operator chose is theirs to know; only a generated one is shown.
    let shown = if options.admin_password.is_some() {
        "as given"
    } else {
        admin_password.as_str()
    };
    println!();
    println!(
        "Console:     {base}/ui/  (sign in as {}, password {shown})",
        options.admin_user
    );
    println!();
    println!(
        "Flex demo is ready at {base} (SDP emulator at {}, user {}).",
        sdp.url, options.sdp_user
    );
    println!("State lives in {}.", data_dir.display());
    println!();
    println!("Admin token: {admin_token}");
    println!(
        "Login:       user {}, password {shown} (POST /api/v1/auth/local/login)",
        options.admin_user
    );
    println!();
    println!("Try:");
    println!(
        "  curl -s {insecure}{base}/api/echo/v1/topology -H 'Authorization: Bearer {admin_token}'"
    );
    println!(
        "  curl -s {insecure}-XPOST {base}/api/echo/v1/echo_dbs -H 'Authorization: Bearer {admin_token}' \\\n    -d '{{\"source_host_id\":\"src-01\",\"destinations\":[{{\"host_id\":\"dev-01\",\"db_id\":\"5\",\"db_name\":\"sales_copy\"}}]}}'"
    );
    println!(
        "  curl -s {insecure}{base}/api/echo/v1/tasks -H 'Authorization: Bearer {admin_token}'"
    );
    println!();
    println!("Or with this binary as the client:");
    let insecure = if options.tls {
        " FLEX_INSECURE=true"
    } else {
        ""
    };
    println!("  export FLEX_URL={base} FLEX_TOKEN={admin_token}{insecure}");
    println!("  flex topology");
    println!("  flex clone --source src-01 --db sales --to dev-01:sales_copy --ttl 2h --wait");
    println!();

    let outcome = server.await.map_err(io_error)?;
    for agent in agents {
        agent.stop();
    }
    outcome
}

async fn register_hosts(
    base: &str,
    admin_token: &str,
    sdp: &SdpEmulator,
    tls: bool,
    options: &DemoOptions,
) -> Result<Vec<AgentEmulator>, FlexError> {
    let http = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(io_error)?;
    let mut agents = Vec::new();
    for (host_id, databases) in [
        ("src-01", demo_databases()),
        ("dev-01", Vec::new()),
        ("dev-02", Vec::new()),
    ] {
        let url = format!("{base}/api/v1/hosts/{host_id}");
        let mut answer = None;
        for _ in 0..100 {
            // The installer's sequence: unregister, then register (a fresh token every time).
            let _ = http.delete(&url).bearer_auth(admin_token).send().await;
            match http
                .put(&url)
                .bearer_auth(admin_token)
                .body(r#"{"db_vendor":"mssql"}"#)
                .send()
                .await
            {
                Ok(response) if response.status() == 201 => {
                    answer = Some(response.json::<Value>().await.map_err(io_error)?);
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let token = answer
            .and_then(|a| a["token"].as_str().map(str::to_owned))
            .ok_or_else(|| io_error(format!("cannot register demo host {host_id}")))?;
        let mut config = AgentEmulatorConfig::new(base, host_id, &token);
        config.insecure = tls;
        config.sdp = Some(SdpConfig::new(
            &sdp.url,
            &options.sdp_user,
            &options.sdp_password,
        ));
        config.databases = databases;
        agents.push(AgentEmulator::start(config).await.map_err(io_error)?);
    }
    Ok(agents)
}

async fn wait_connected(base: &str, admin_token: &str) -> Result<(), FlexError> {
    let http = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .map_err(io_error)?;
    for _ in 0..400 {
        let topology: Option<Value> = match http
            .get(format!("{base}/api/echo/v1/topology"))
            .bearer_auth(admin_token)
            .send()
            .await
        {
            Ok(response) => response.json().await.ok(),
            Err(_) => None,
        };
        let ready = topology
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|hosts| {
                hosts.len() == 3
                    && hosts.iter().all(|h| h["host"]["is_connected"] == true)
                    && hosts
                        .iter()
                        .any(|h| h["databases"].as_array().is_some_and(|d| d.len() == 2))
            });
        if ready {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(io_error("the demo hosts did not connect within 20 seconds"))
}
