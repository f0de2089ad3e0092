//! The rig the Echo tests drive: Flex (in this process, on its own database) against an SDP
//! emulator and three emulated hosts (`src-01` with `sales` and `hr`, empty `dev-01` and
//! `dev-02`), all on loopback sockets; and the checks every test of the workflows ends with.

use std::time::Duration;

use flex::{
    emulators::{
        agent::{AgentEmulator, AgentEmulatorConfig, DatabaseIds},
        sdp::{ArrayState, SdpEmulator, SdpEmulatorConfig},
    },
    model::LedgerKind,
    sdp::SdpConfig,
    store::Store,
};
use reqwest::Method;
use serde_json::{Value, json};

use super::{ADMIN_TOKEN, Backend, TestDb, TestServer, builders::source_databases};

pub struct Options {
    pub freeze_window: Duration,
    pub dest_reply_delay: Duration,
    pub dest_disconnect_after: Option<u64>,
    pub lease: Duration,
    pub task_deadline: Duration,
    /// How long Flex waits for one SDP call.
    pub sdp_request_timeout: Duration,
    /// Flex reaches its (Postgres) database through this local port instead: a proxy the
    /// test can cut.
    pub database_port: Option<u16>,
    pub db_acquire_timeout: Duration,
    /// How the destination hosts number the databases they attach.
    pub dest_database_ids: DatabaseIds,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            freeze_window: Duration::from_secs(10),
            dest_reply_delay: Duration::ZERO,
            dest_disconnect_after: None,
            lease: Duration::from_secs(30),
            task_deadline: Duration::from_hours(1),
            sdp_request_timeout: Duration::from_secs(30),
            database_port: None,
            db_acquire_timeout: flex::defaults::DB_ACQUIRE_TIMEOUT,
            dest_database_ids: DatabaseIds::default(),
        }
    }
}

/// The configuration the rig runs Flex with: fast retries and polls, the rig's array.
pub fn server_config(config: &mut flex::Config, sdp_url: &str, options: &Options) {
    config.agent_heartbeat = Duration::from_secs(1);
    let mut sdp = SdpConfig::new(sdp_url, "admin", "admin");
    sdp.request_timeout = options.sdp_request_timeout;
    config.sdp = Some(sdp);
    config.freeze_window = options.freeze_window;
    config.executor.retry_base = Duration::from_millis(50);
    config.executor.retry_cap = Duration::from_millis(400);
    config.executor.poll = Duration::from_millis(200);
    config.executor.lease = options.lease;
    config.executor.task_deadline = options.task_deadline;
    config.expiry_check = Duration::from_secs(1);
    config.admin_user = Some("admin".into());
    config.admin_password = Some("pw".into());
    config.db_acquire_timeout = options.db_acquire_timeout;
    if let Some(port) = options.database_port {
        let mut url = reqwest::Url::parse(&config.database_url).unwrap();
        url.set_port(Some(port)).unwrap();
        config.database_url = url.to_string();
    }
}

pub struct Echo {
    pub server: TestServer,
    pub sdp: SdpEmulator,
    pub agents: Vec<AgentEmulator>,
}

impl Echo {
    pub async fn start(backend: Backend, options: Options) -> Echo {
        super::init_tracing();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sdp = SdpEmulator::start(SdpEmulatorConfig::default(), listener)
            .await
            .unwrap();
        let sdp_url = sdp.url.clone();
        let server =
            TestServer::start_with(backend, |config| server_config(config, &sdp_url, &options))
                .await;
        let mut echo = Echo {
            server,
            sdp,
            agents: Vec::new(),
        };
        for (host_id, databases) in [
            ("src-01", source_databases(256)),
            ("dev-01", vec![]),
            ("dev-02", vec![]),
        ] {
            let token = echo.server.register_host(host_id).await;
            let mut config = AgentEmulatorConfig::new(&echo.server.base, host_id, &token);
            config.sdp = Some(SdpConfig::new(&echo.sdp.url, "admin", "admin"));
            config.databases = databases;
            config.freeze_window = options.freeze_window;
            config.reconnect_delay = Duration::from_millis(100);
            if host_id != "src-01" {
                config.faults.reply_delay = options.dest_reply_delay;
                config.faults.disconnect_after_commands = options.dest_disconnect_after;
                config.database_ids = options.dest_database_ids;
            }
            echo.agents
                .push(AgentEmulator::start(config).await.unwrap());
        }
        echo.wait_ready().await;
        echo
    }

    /// Stops Flex gracefully, as SIGTERM does (the array and the hosts stay up); `start_again`
    /// then starts it on the same database.
    pub async fn stop_server(&mut self) -> Result<(), flex::FlexError> {
        self.server.halt().await
    }

    /// Starts Flex again on the same database and port (where the agents reconnect), after
    /// [`Echo::stop_server`].
    pub async fn start_again(&mut self, options: &Options) {
        let db: TestDb = self.server.db.share();
        let mut config = flex::Config::new(db.url.clone());
        config.admin_token = Some(ADMIN_TOKEN.into());
        server_config(&mut config, &self.sdp.url, options);
        let port = self.server.port();
        self.server = TestServer::start_on_port(db, config, port).await;
    }

    async fn wait_ready(&self) {
        // Generous: on a loaded CI machine the agents' first inventories can take seconds.
        let deadline = std::time::Instant::now() + Duration::from_mins(1);
        while std::time::Instant::now() < deadline {
            let topology: Value = self
                .server
                .get("/api/echo/v1/topology")
                .await
                .json()
                .await
                .unwrap();
            let ready = topology
                .as_array()
                .unwrap()
                .iter()
                .all(|entry| entry["host"]["is_connected"] == true)
                && topology[2]["databases"]
                    .as_array()
                    .is_some_and(|d| d.len() == 2);
            if ready {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("hosts never connected");
    }

    pub async fn send(&self, method: Method, path: &str, body: Value) -> reqwest::Response {
        self.server
            .admin(method, path)
            .header("hs-ref-id", "Pipe01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Sends a task-creating request, checks the immediate answer, polls until the task ends.
    pub async fn run(&self, method: Method, path: &str, body: Value, created: u16) -> Value {
        let response = self.send(method, path, body).await;
        assert_eq!(response.status(), created, "{path}");
        let task: Value = response.json().await.unwrap();
        assert_eq!(task["state"], "running", "creating calls return at once");
        assert_eq!(task["ref_id"], "Pipe01");
        self.wait(&task).await
    }

    pub async fn wait(&self, task: &Value) -> Value {
        let location = task["location"].as_str().unwrap().to_owned();
        for _ in 0..600 {
            let now: Value = self.server.get(&location).await.json().await.unwrap();
            if now["state"] != "running" {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("task {location} never ended");
    }

    pub fn array(&self) -> ArrayState {
        self.sdp.snapshot_state()
    }

    /// A host's databases, as `GET …/databases` lists them.
    pub async fn databases(&self, host: &str) -> Vec<Value> {
        let dbs: Value = self
            .server
            .get(&format!("/api/v1/hosts/{host}/databases"))
            .await
            .json()
            .await
            .unwrap();
        dbs.as_array().unwrap().clone()
    }

    /// The names of a host's databases.
    pub async fn dest_databases(&self, host: &str) -> Vec<String> {
        let databases = self.databases(host).await;
        databases
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The id of the database called `name` on a host.
    pub async fn database_id(&self, host: &str, name: &str) -> String {
        let databases = self.databases(host).await;
        let db = databases.iter().find(|d| d["name"] == name);
        db.unwrap_or_else(|| panic!("no database {name} on {host}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Nothing Flex created is left on the array, and its ledger agrees.
    pub async fn assert_nothing_left(&self) {
        let array = self.array();
        assert_eq!(
            array.snapshots.len(),
            0,
            "snapshots left: {:?}",
            array.snapshots
        );
        assert_eq!(array.mappings.len(), 0, "mappings left");
        assert_eq!(array.hosts.len(), 0, "host objects left");
        assert_eq!(array.host_iqns.len(), 0, "initiators left");
        let volumes: Vec<&str> = array.volumes.values().map(|v| v.name.as_str()).collect();
        assert_eq!(
            volumes.len(),
            3,
            "only the source volumes remain: {volumes:?}"
        );
        let live = self.server.db.store().await.ledger_live().await.unwrap();
        assert!(live.is_empty(), "ledger still lists {live:?}");
    }

    /// Requests the `sales_copy` clone and returns its task once its thin clones exist on the
    /// array (mid-flight, for tests that interfere with it).
    pub async fn start_clone_until_thin_clones_exist(&self) -> Value {
        let response = self
            .send(Method::POST, "/api/echo/v1/echo_dbs", sales_copy())
            .await;
        assert_eq!(response.status(), 200);
        let task: Value = response.json().await.unwrap();
        for _ in 0..400 {
            if self.array().volumes.values().any(|v| v.is_thin_clone) {
                return task;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the clone never made its thin clones: {task}");
    }

    /// The clone most tests drive: `sales` from src-01 onto dev-01 as `sales_copy`, to its end.
    pub async fn clone_sales_copy(&self) -> Value {
        self.run(Method::POST, "/api/echo/v1/echo_dbs", sales_copy(), 200)
            .await
    }

    /// The step log of a task.
    pub async fn task_steps(&self, task: &Value) -> Vec<flex::store::StepLogEntry> {
        let store = self.server.db.store().await;
        store
            .task_steps(task["request_id"].as_str().unwrap())
            .await
            .unwrap()
    }

    pub async fn assert_ledger_matches_array(&self) {
        let store = self.server.db.store().await;
        assert_ledger_matches(&store, &self.array()).await;
    }
}

/// The body of the clone most tests drive.
pub fn sales_copy() -> Value {
    json!({"source_host_id": "src-01", "destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "sales_copy"}]})
}

/// Every object Flex made on the array is in its ledger as live, and the other way round.
pub async fn assert_ledger_matches(store: &Store, array: &ArrayState) {
    let live = store.ledger_live().await.unwrap();
    for entry in &live {
        let id = entry.sdp_id;
        let exists = match entry.kind {
            LedgerKind::VgSnapshot => array.snapshots.contains_key(&id),
            LedgerKind::Volume => array.volumes.contains_key(&id),
            LedgerKind::Mapping => array.mappings.contains_key(&id),
            LedgerKind::Host => array.hosts.contains_key(&id),
            LedgerKind::HostIqn => array.host_iqns.contains_key(&id),
        };
        assert!(
            exists,
            "ledger lists {entry:?}, which the array does not have"
        );
    }
    let made = array.snapshots.len()
        + array.mappings.len()
        + array.hosts.len()
        + array.host_iqns.len()
        + array.volumes.values().filter(|v| v.is_thin_clone).count();
    assert_eq!(
        made,
        live.len(),
        "every object on the array is in the ledger once"
    );
}
