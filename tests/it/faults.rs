//! The fault matrix: every SDP call and every agent command that each Echo workflow makes is
//! hit, one cell at a time, by each kind of fault an array or a host produces on a bad day.
//! Transient faults (busy, throttled, timed out, 502 after the write happened, an agent that
//! drops its connection or answers slowly) must be ridden out: the task completes and nothing
//! is made or done twice. Refusals must fail the task and undo it. In every cell the SDP
//! ledger and the array agree afterwards. The matrix is printed (`--nocapture` shows it).
//!
//! The calls are not listed by hand: a clean run of each workflow records the SDP calls made
//! for the task (by its `hs-ref-id`) and which step made each, and the cells are derived from
//! that, so a step that starts calling the SDP differently is covered without editing this.

use std::{collections::HashMap, sync::Arc, time::Duration};

use flex::emulators::{
    agent::AgentFaults,
    sdp::{CallRecord, FaultAction, FaultRule},
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Backend, Echo, Options};

/// The ref id `Echo::send` stamps on every request, so on every SDP call made for its tasks.
const REF_ID: &str = "Pipe01";
const DESTINATION: usize = 1;
const SOURCE: usize = 0;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Workflow {
    Clone,
    Refresh,
    DeleteEchoDb,
    DeleteSnapshot,
}

impl Workflow {
    const ALL: [Workflow; 4] = [
        Workflow::Clone,
        Workflow::Refresh,
        Workflow::DeleteEchoDb,
        Workflow::DeleteSnapshot,
    ];

    fn name(self) -> &'static str {
        match self {
            Workflow::Clone => "clone",
            Workflow::Refresh => "refresh",
            Workflow::DeleteEchoDb => "delete echo db",
            Workflow::DeleteSnapshot => "delete snapshot",
        }
    }

    /// Agent commands the workflow sends: the step, the host, the command.
    fn agent_commands(self) -> &'static [(&'static str, usize, &'static str)] {
        match self {
            Workflow::Clone => &[
                ("freeze_databases", SOURCE, "freeze"),
                ("thaw_databases", SOURCE, "thaw"),
                ("rescan_disks", DESTINATION, "rescan"),
                ("attach_databases", DESTINATION, "attach"),
            ],
            Workflow::Refresh => &[
                ("detach_old_databases", DESTINATION, "detach"),
                ("rescan_disks", DESTINATION, "rescan"),
                ("attach_databases", DESTINATION, "attach"),
            ],
            Workflow::DeleteEchoDb => &[("detach_database", DESTINATION, "detach")],
            Workflow::DeleteSnapshot => &[],
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum SdpFault {
    Busy,
    Throttled,
    Timeout,
    BadGatewayAfterWrite,
    Refusal,
}

impl SdpFault {
    const ALL: [SdpFault; 5] = [
        SdpFault::Busy,
        SdpFault::Throttled,
        SdpFault::Timeout,
        SdpFault::BadGatewayAfterWrite,
        SdpFault::Refusal,
    ];

    fn name(self) -> &'static str {
        match self {
            SdpFault::Busy => "503",
            SdpFault::Throttled => "429",
            SdpFault::Timeout => "timeout",
            SdpFault::BadGatewayAfterWrite => "502 after write",
            SdpFault::Refusal => "400 refusal",
        }
    }

    fn rule(self, call: &CallRecord, occurrence: u64) -> FaultRule {
        let base = FaultRule {
            method: Some(call.method.clone()),
            collection: Some(call.collection.clone()),
            ref_id: Some(REF_ID.into()),
            skip: Some(occurrence),
            ..FaultRule::new(FaultAction::Error)
        };
        match self {
            SdpFault::Busy => FaultRule {
                status: Some(503),
                ..base
            },
            SdpFault::Throttled => FaultRule {
                status: Some(429),
                retry_after_secs: Some(1),
                ..base
            },
            // The call is carried out, but the answer comes after Flex stopped waiting.
            SdpFault::Timeout => FaultRule {
                delay_ms: Some(1_500),
                ..FaultRule {
                    action: FaultAction::Hang,
                    ..base
                }
            },
            SdpFault::BadGatewayAfterWrite => FaultRule {
                action: FaultAction::AfterWrite,
                ..base
            },
            SdpFault::Refusal => FaultRule {
                status: Some(400),
                error_code: Some("MC_ERR_REFUSED".into()),
                error_msg: Some("refused by the fault matrix".into()),
                ..base
            },
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum AgentFault {
    Disconnect,
    SlowReply,
    Refusal,
}

impl AgentFault {
    const ALL: [AgentFault; 3] = [
        AgentFault::Disconnect,
        AgentFault::SlowReply,
        AgentFault::Refusal,
    ];

    fn name(self) -> &'static str {
        match self {
            AgentFault::Disconnect => "disconnect",
            AgentFault::SlowReply => "slow reply",
            AgentFault::Refusal => "refusal",
        }
    }

    fn faults(self, command: &str) -> AgentFaults {
        match self {
            AgentFault::Disconnect => AgentFaults {
                disconnect_on: Some(command.to_owned()),
                ..Default::default()
            },
            AgentFault::SlowReply => AgentFaults {
                reply_delay: Duration::from_secs(1),
                slow_commands: vec![command.to_owned()],
                ..Default::default()
            },
            AgentFault::Refusal => AgentFaults {
                refuse: vec![command.to_owned()],
                ..Default::default()
            },
        }
    }
}

#[derive(Clone, Debug)]
enum Target {
    /// The `occurrence`-th call (from 0) with this method and collection made for the task.
    Sdp {
        call: CallRecord,
        occurrence: u64,
        fault: SdpFault,
    },
    Agent {
        host: usize,
        command: &'static str,
        fault: AgentFault,
    },
}

impl Target {
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            Target::Sdp {
                fault: SdpFault::Refusal,
                ..
            } | Target::Agent {
                fault: AgentFault::Refusal,
                ..
            }
        )
    }

    fn describe(&self) -> (String, &'static str) {
        match self {
            Target::Sdp {
                call,
                occurrence,
                fault,
            } => (
                format!("SDP {} #{}", call.key, occurrence + 1),
                fault.name(),
            ),
            Target::Agent { command, fault, .. } => (format!("agent {command}"), fault.name()),
        }
    }
}

#[derive(Clone, Debug)]
struct Cell {
    workflow: Workflow,
    step: String,
    target: Target,
}

fn options() -> Options {
    Options {
        sdp_request_timeout: Duration::from_millis(500),
        ..Default::default()
    }
}

struct Request {
    method: Method,
    path: String,
    body: Value,
    created: u16,
}

/// Runs what the workflow needs to exist first; returns the request that starts it.
async fn prepare(echo: &Echo, workflow: Workflow) -> Request {
    let crash_snapshot = || async {
        let task = echo
            .run(
                Method::POST,
                "/api/echo/v1/db_snapshots",
                json!({"source_host_id": "src-01", "database_ids": ["5"], "consistency_level": "crash"}),
                200,
            )
            .await;
        assert_eq!(task["state"], "completed", "{task}");
        task["result"]["db_snapshot"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let clone = || async {
        let task = echo.clone_sales_copy().await;
        assert_eq!(task["state"], "completed", "{task}");
        task["result"]["cloned_dbs"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    match workflow {
        Workflow::Clone => Request {
            method: Method::POST,
            path: "/api/echo/v1/echo_dbs".into(),
            body: json!({"source_host_id": "src-01", "destinations": [{"host_id": "dev-01", "db_id": "5", "db_name": "sales_copy"}]}),
            created: 200,
        },
        Workflow::Refresh => {
            clone().await;
            let snapshot = crash_snapshot().await;
            Request {
                method: Method::POST,
                path: "/api/echo/v1/hosts/dev-01/databases/_refresh".into(),
                body: json!({"snapshot_id": snapshot, "db_names": ["sales_copy"]}),
                created: 200,
            }
        }
        Workflow::DeleteEchoDb => {
            let database_id = clone().await;
            Request {
                method: Method::DELETE,
                path: "/api/echo/v1/echo_dbs".into(),
                body: json!({"host_id": "dev-01", "database_id": database_id}),
                created: 202,
            }
        }
        Workflow::DeleteSnapshot => {
            let snapshot = crash_snapshot().await;
            Request {
                method: Method::DELETE,
                path: format!("/api/echo/v1/db_snapshots/{snapshot}"),
                body: json!({}),
                created: 200,
            }
        }
    }
}

async fn start(request: &Request, echo: &Echo) -> Value {
    echo.run(
        request.method.clone(),
        &request.path,
        request.body.clone(),
        request.created,
    )
    .await
}

/// The step that was running when each call arrived, from the task's step log.
async fn step_of_each_call(echo: &Echo, task: &Value, calls: &[CallRecord]) -> Vec<String> {
    let steps = echo.task_steps(task).await;
    calls
        .iter()
        .map(|call| {
            steps
                .iter()
                .rev()
                .find(|step| step.started_ms <= call.at_ms && call.at_ms <= step.finished_ms)
                .map_or_else(|| "?".to_owned(), |step| step.name.clone())
        })
        .collect()
}

/// Every cell of one workflow, from a clean run of it.
async fn cells_of(workflow: Workflow) -> Vec<Cell> {
    let echo = Echo::start(Backend::Sqlite, options()).await;
    let request = prepare(&echo, workflow).await;
    let before = echo.sdp.call_log().len();
    let task = start(&request, &echo).await;
    assert_eq!(task["state"], "completed", "{task}");
    let calls: Vec<CallRecord> = echo.sdp.call_log()[before..]
        .iter()
        .filter(|call| call.ref_id.as_deref() == Some(REF_ID))
        .cloned()
        .collect();
    assert!(!calls.is_empty(), "{} made no SDP call", workflow.name());
    let steps = step_of_each_call(&echo, &task, &calls).await;
    let mut seen: HashMap<(String, String), u64> = HashMap::new();
    let mut cells = Vec::new();
    for (call, step) in calls.into_iter().zip(steps) {
        let occurrence = seen
            .entry((call.method.clone(), call.collection.clone()))
            .or_default();
        for fault in SdpFault::ALL {
            cells.push(Cell {
                workflow,
                step: step.clone(),
                target: Target::Sdp {
                    call: call.clone(),
                    occurrence: *occurrence,
                    fault,
                },
            });
        }
        *occurrence += 1;
    }
    for &(step, host, command) in workflow.agent_commands() {
        for fault in AgentFault::ALL {
            cells.push(Cell {
                workflow,
                step: step.to_owned(),
                target: Target::Agent {
                    host,
                    command,
                    fault,
                },
            });
        }
    }
    cells
}

fn acted(echo: &Echo, host: usize, command: &str) -> u64 {
    echo.agents[host]
        .stats()
        .commands_acted
        .get(command)
        .copied()
        .unwrap_or(0)
}

/// Runs one cell on its own rig; returns the task's end state or panics with what went wrong.
async fn run_cell(cell: Cell) -> String {
    let echo = Echo::start(Backend::Sqlite, options()).await;
    let request = prepare(&echo, cell.workflow).await;
    let attached = acted(&echo, DESTINATION, "attach");
    let detached = acted(&echo, DESTINATION, "detach");
    match &cell.target {
        Target::Sdp {
            call,
            occurrence,
            fault,
        } => {
            echo.sdp.add_fault(fault.rule(call, *occurrence));
        }
        Target::Agent {
            host,
            command,
            fault,
        } => echo.agents[*host].set_faults(fault.faults(command)),
    }
    let task = start(&request, &echo).await;
    echo.sdp.clear_faults();
    for agent in &echo.agents {
        agent.set_faults(AgentFaults::default());
    }
    let state = task["state"].as_str().unwrap_or_default().to_owned();
    let expected = if cell.target.is_refusal() {
        "failed"
    } else {
        "completed"
    };
    assert_eq!(state, expected, "{task}");
    echo.assert_ledger_matches_array().await;
    let copies = echo.dest_databases("dev-01").await;
    // Nothing out of sight: an echo DB Flex still holds is listed, as DETACHED once the host
    // no longer reports it, so that it can be deleted or refreshed again.
    let store = echo.server.db.store().await;
    let listed = echo.databases("dev-01").await;
    for held in store.list_echo_dbs().await.unwrap() {
        let entry = listed.iter().find(|d| d["name"] == held.name.as_str());
        let on_host = echo.agents[DESTINATION]
            .databases()
            .iter()
            .any(|d| d.name == held.name);
        let status = entry.map(|d| d["status"].as_str().unwrap_or_default());
        assert!(
            entry.is_some() && (on_host || status == Some("DETACHED")),
            "{} is held: {listed:?}",
            held.name
        );
    }
    match (cell.workflow, expected) {
        (Workflow::Clone, "failed") => {
            echo.assert_nothing_left().await;
            assert!(copies.is_empty(), "{copies:?}");
        }
        (Workflow::Clone | Workflow::Refresh, "completed") => {
            assert_eq!(copies, ["sales_copy"]);
            let attaches = acted(&echo, DESTINATION, "attach") - attached;
            assert_eq!(attaches, 1, "attached exactly once");
        }
        (Workflow::DeleteEchoDb, "completed") => {
            assert!(copies.is_empty(), "{copies:?}");
            assert_eq!(acted(&echo, DESTINATION, "detach") - detached, 1);
        }
        (Workflow::DeleteEchoDb, "failed") => {
            // What the refusal left is still Flex's to delete: asking again finishes the job.
            let again = start(&request, &echo).await;
            assert_eq!(again["state"], "completed", "{again}");
            assert!(echo.dest_databases("dev-01").await.is_empty());
            echo.assert_ledger_matches_array().await;
        }
        (Workflow::DeleteSnapshot, "completed") => {
            assert!(echo.array().snapshots.is_empty());
        }
        _ => {}
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sdp_call_and_agent_command_survives_every_fault() {
    crate::support::init_tracing();
    let mut cells = Vec::new();
    for workflow in Workflow::ALL {
        cells.extend(cells_of(workflow).await);
    }
    // Cells wait on retries and timeouts more than they compute: several at once.
    let slots = Arc::new(tokio::sync::Semaphore::new(6));
    let runs: Vec<_> = cells
        .iter()
        .cloned()
        .map(|cell| {
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                run_cell(cell).await
            })
        })
        .collect();
    let mut failures = Vec::new();
    println!(
        "{:<16} {:<28} {:<30} {:<16} outcome",
        "workflow", "step", "call", "fault"
    );
    for (cell, run) in cells.iter().zip(runs) {
        let (call, fault) = cell.target.describe();
        let outcome = match run.await {
            Ok(state) => state,
            Err(err) => {
                let message = match err.try_into_panic() {
                    Ok(panic) => panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| {
                            panic
                                .downcast_ref::<&str>()
                                .map(std::string::ToString::to_string)
                        })
                        .unwrap_or_default(),
                    Err(err) => err.to_string(),
                };
                failures.push(format!(
                    "{} / {call} / {fault}: {message}",
                    cell.workflow.name()
                ));
                "FAILED".to_owned()
            }
        };
        println!(
            "{:<16} {:<28} {:<30} {:<16} {outcome}",
            cell.workflow.name(),
            cell.step,
            call,
            fault
        );
    }
    println!("{} cells, {} failures", cells.len(), failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
