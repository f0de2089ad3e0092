//! What an operator scrapes from `GET /metrics` and alerts on, kept with the Prometheus
//! project's own client library (OpenMetrics text): how long HTTP requests, SDP calls, agent
//! commands, tasks and freezes take, how tasks end, and, read at scrape time, how many agents
//! are connected, tasks running and array objects in the ledger. Route labels are route
//! templates, never raw paths, so ids cannot blow up the series count.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::model::TaskState;

/// The media type of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SdpLabels {
    method: String,
    collection: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    command: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    command_type: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn http_buckets() -> Histogram {
    // 1 ms … 32 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn call_buckets() -> Histogram {
    // 5 ms … 80 s: an array or a host under load
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

fn task_buckets() -> Histogram {
    // 0.1 s … 55 min
    Histogram::new(exponential_buckets(0.1, 2.0, 16))
}

fn freeze_buckets() -> Histogram {
    // 10 ms … 20 s: the freeze window is 10 s by default
    Histogram::new(exponential_buckets(0.01, 2.0, 12))
}

/// The live figures read at scrape time.
#[derive(Clone, Debug, Default)]
pub struct Levels {
    pub agents_connected: i64,
    pub tasks_running: i64,
    /// Objects the ledger holds, by kind.
    pub ledger_objects: Vec<(String, i64)>,
}

pub struct Metrics {
    registry: Registry,
    http: Histograms<HttpLabels>,
    sdp: Histograms<SdpLabels>,
    agent: Histograms<AgentLabels>,
    tasks: Histograms<TaskLabels>,
    tasks_finished: Family<StateLabel, Counter>,
    step_retries: Counter,
    freeze: Histogram,
    agents_connected: Gauge,
    tasks_running: Gauge,
    ledger_objects: Family<KindLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let http = Histograms::<HttpLabels>::new_with_constructor(http_buckets as fn() -> _);
        registry.register(
            "flex_http_request_duration_seconds",
            "HTTP requests served, by method, route template and status",
            http.clone(),
        );
        let sdp = Histograms::<SdpLabels>::new_with_constructor(call_buckets as fn() -> _);
        registry.register(
            "flex_sdp_request_duration_seconds",
            "Calls to the SDP REST API, by method, collection and outcome",
            sdp.clone(),
        );
        let agent = Histograms::<AgentLabels>::new_with_constructor(call_buckets as fn() -> _);
        registry.register(
            "flex_agent_command_duration_seconds",
            "Commands to host agents, from sending to the reply, by command and outcome",
            agent.clone(),
        );
        let tasks = Histograms::<TaskLabels>::new_with_constructor(task_buckets as fn() -> _);
        registry.register(
            "flex_task_duration_seconds",
            "Tasks from creation to their end, by command type and final state",
            tasks.clone(),
        );
        let tasks_finished = Family::<StateLabel, Counter>::default();
        registry.register(
            "flex_tasks_finished",
            "Tasks that ended, by final state",
            tasks_finished.clone(),
        );
        let step_retries = Counter::default();
        registry.register(
            "flex_step_retries",
            "Step attempts that failed transiently and were retried",
            step_retries.clone(),
        );
        let freeze = freeze_buckets();
        registry.register(
            "flex_freeze_duration_seconds",
            "Time databases stayed frozen for application-consistent snapshots",
            freeze.clone(),
        );
        let agents_connected = Gauge::default();
        registry.register(
            "flex_agents_connected",
            "Host agents connected to this replica",
            agents_connected.clone(),
        );
        let tasks_running = Gauge::default();
        registry.register(
            "flex_tasks_running",
            "Tasks not yet ended, on every replica",
            tasks_running.clone(),
        );
        let ledger_objects = Family::<KindLabel, Gauge>::default();
        registry.register(
            "flex_sdp_ledger_objects",
            "Array objects Flex made and has not deleted yet, by kind",
            ledger_objects.clone(),
        );
        Metrics {
            registry,
            http,
            sdp,
            agent,
            tasks,
            tasks_finished,
            step_retries,
            freeze,
            agents_connected,
            tasks_running,
            ledger_objects,
        }
    }

    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = HttpLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status: status.to_string(),
        };
        self.http.get_or_create(&labels).observe(seconds);
    }

    pub fn sdp_request(&self, method: &str, collection: &str, outcome: &str, seconds: f64) {
        let labels = SdpLabels {
            method: method.to_owned(),
            collection: collection.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.sdp.get_or_create(&labels).observe(seconds);
    }

    pub fn agent_command(&self, command: &str, outcome: &str, seconds: f64) {
        let labels = AgentLabels {
            command: command.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.agent.get_or_create(&labels).observe(seconds);
    }

    pub fn task_finished(&self, command_type: &str, state: TaskState, seconds: f64) {
        let state = state.as_str().to_owned();
        self.tasks_finished
            .get_or_create(&StateLabel {
                state: state.clone(),
            })
            .inc();
        let labels = TaskLabels {
            command_type: command_type.to_owned(),
            state,
        };
        self.tasks.get_or_create(&labels).observe(seconds);
    }

    pub fn step_retried(&self) {
        self.step_retries.inc();
    }

    /// How long a snapshot kept its databases frozen.
    pub fn freeze_held(&self, frozen_ms: u64) {
        self.freeze.observe(frozen_ms as f64 / 1000.0);
    }

    /// The exposition, with the live figures as they are now.
    pub fn render(&self, levels: &Levels) -> String {
        self.agents_connected.set(levels.agents_connected);
        self.tasks_running.set(levels.tasks_running);
        for (kind, count) in &levels.ledger_objects {
            self.ledger_objects
                .get_or_create(&KindLabel { kind: kind.clone() })
                .set(*count);
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One observation of every series, and its exposition.
    fn exposition() -> String {
        let metrics = Metrics::new();
        metrics.http_request("GET", "/api/v1/hosts/{host_id}", 200, 0.004);
        metrics.sdp_request("POST", "volumes", "ok", 0.2);
        metrics.agent_command("freeze", "ok", 0.05);
        metrics.task_finished("CreateCloneCommand", TaskState::Completed, 4.0);
        metrics.freeze_held(120);
        metrics.step_retried();
        metrics.render(&Levels {
            agents_connected: 3,
            tasks_running: 1,
            ledger_objects: vec![("volume".into(), 2)],
        })
    }

    #[test]
    fn the_exposition_names_every_series_an_operator_alerts_on() {
        let text = exposition();
        for expected in [
            r#"flex_http_request_duration_seconds_bucket{le="0.004",method="GET",route="/api/v1/hosts/{host_id}",status="200"} 1"#,
            r#"flex_sdp_request_duration_seconds_count{method="POST",collection="volumes",outcome="ok"} 1"#,
            r#"flex_agent_command_duration_seconds_count{command="freeze",outcome="ok"} 1"#,
            r#"flex_task_duration_seconds_count{command_type="CreateCloneCommand",state="completed"} 1"#,
            r#"flex_tasks_finished_total{state="completed"} 1"#,
            "flex_step_retries_total 1",
            "flex_freeze_duration_seconds_count 1",
            "flex_agents_connected 3",
            "flex_tasks_running 1",
            r#"flex_sdp_ledger_objects{kind="volume"} 2"#,
            "# EOF",
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
    }

    /// `docs/grafana-dashboard.json` queries only series Flex exports.
    #[test]
    fn the_dashboard_queries_only_exported_series() {
        let exposition = exposition();
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../docs/grafana-dashboard.json")).unwrap();
        let mut queried = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let names = expr
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|word| word.starts_with("flex_"));
                for name in names {
                    queried += 1;
                    assert!(
                        exposition.contains(&format!("\n{name}{{"))
                            || exposition.contains(&format!("\n{name} ")),
                        "the dashboard queries {name}, which Flex does not export"
                    );
                }
            }
        }
        assert!(queried >= 13, "{queried}");
    }
}
