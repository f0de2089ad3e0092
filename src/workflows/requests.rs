//! What each Echo command is asked to do (stored with its task, as JSON, by the API), and what
//! a finished task reports (its `result`).

use serde::{Deserialize, Serialize};

use crate::{
    auth::random_alphanumeric,
    clock::now_ts,
    model::{CommandType, ConsistencyLevel, Lifecycle, TargetState, TaskState},
    store::{NewTask, StepPosition, TaskRecord},
};

/// A request a task is made of: which command it is, and which hosts it involves (a host is
/// not unregistered while one of its tasks runs).
pub trait TaskRequest: Serialize {
    const COMMAND: CommandType;

    fn host_ids(&self) -> Vec<String>;
}

/// What a snapshot is taken of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSpec {
    pub source_host_id: String,
    pub database_ids: Vec<String>,
    pub name_prefix: String,
    pub consistency_level: ConsistencyLevel,
    #[serde(default)]
    pub force_vss_usage: bool,
    /// The snapshot schedule this run is for (its retention then applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
}

impl SnapshotSpec {
    pub fn is_application(&self) -> bool {
        self.consistency_level == ConsistencyLevel::Application
    }
}

/// Where a clone goes: the source database `db_id`, attached on `host_id` as `db_name`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Destination {
    pub host_id: String,
    pub db_id: String,
    pub db_name: String,
}

impl TaskRequest for SnapshotSpec {
    const COMMAND: CommandType = CommandType::CreateDbSnapshot;

    fn host_ids(&self) -> Vec<String> {
        vec![self.source_host_id.clone()]
    }
}

/// `CreateCloneCommand`: a snapshot, then an import of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloneRequest {
    pub snapshot: SnapshotSpec,
    pub destinations: Vec<Destination>,
    pub target_state: TargetState,
    #[serde(flatten)]
    pub lifecycle: NewLifecycle,
}

/// How the echo DBs a request makes start their life: expiring after `ttl_secs`, protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewLifecycle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
}

impl NewLifecycle {
    pub fn at(self, now: i64) -> Lifecycle {
        Lifecycle::starting(now, self.ttl_secs, self.protected)
    }
}

impl TaskRequest for CloneRequest {
    const COMMAND: CommandType = CommandType::CreateClone;

    fn host_ids(&self) -> Vec<String> {
        let destinations = self.destinations.iter().map(|d| d.host_id.clone());
        std::iter::once(self.snapshot.source_host_id.clone())
            .chain(destinations)
            .collect()
    }
}

/// `ImportDBSnapshotCommand`: clones of an existing snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportRequest {
    pub snapshot_id: String,
    pub destinations: Vec<Destination>,
    pub target_state: TargetState,
    #[serde(flatten)]
    pub lifecycle: NewLifecycle,
}

impl TaskRequest for ImportRequest {
    const COMMAND: CommandType = CommandType::ImportDbSnapshot;

    fn host_ids(&self) -> Vec<String> {
        self.destinations
            .iter()
            .map(|d| d.host_id.clone())
            .collect()
    }
}

/// `DeleteCommand`: one echo DB.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeleteEchoDbRequest {
    pub host_id: String,
    pub database_id: String,
}

impl TaskRequest for DeleteEchoDbRequest {
    const COMMAND: CommandType = CommandType::Delete;

    fn host_ids(&self) -> Vec<String> {
        vec![self.host_id.clone()]
    }
}

/// `DeleteDBSnapshotCommand`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeleteSnapshotRequest {
    pub snapshot_id: String,
    /// The host the snapshot was taken on (empty when it is not known).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_id: String,
}

impl TaskRequest for DeleteSnapshotRequest {
    const COMMAND: CommandType = CommandType::DeleteDbSnapshot;

    fn host_ids(&self) -> Vec<String> {
        [self.host_id.clone()]
            .into_iter()
            .filter(|h| !h.is_empty())
            .collect()
    }
}

/// `ReplaceDBCommand`: echo DBs on one host, replaced by clones of a newer snapshot under the
/// same names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefreshRequest {
    pub host_id: String,
    pub snapshot_id: String,
    pub db_names: Vec<String>,
    pub target_state: TargetState,
    /// A new expiry for the refreshed echo DBs; without one they keep theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<i64>,
}

impl TaskRequest for RefreshRequest {
    const COMMAND: CommandType = CommandType::ReplaceDb;

    fn host_ids(&self) -> Vec<String> {
        vec![self.host_id.clone()]
    }
}

/// A running task for `request`, located under `tasks_prefix`, run by replica `owner`.
pub fn new_task<R: TaskRequest>(
    request: &R,
    ref_id: &str,
    tasks_prefix: &str,
    owner: &str,
) -> Result<NewTask, serde_json::Error> {
    let request_id = random_alphanumeric(30);
    let now = now_ts();
    let mut host_ids = request.host_ids();
    host_ids.sort();
    host_ids.dedup();
    Ok(NewTask {
        record: TaskRecord {
            location: format!("{tasks_prefix}/{request_id}"),
            request_id,
            state: TaskState::Running,
            create_ts: now,
            update_ts: now,
            owner: owner.to_owned(),
            command_type: R::COMMAND,
            ref_id: ref_id.to_owned(),
            error: String::new(),
            result: None,
            request: serde_json::to_string(request)?,
            position: StepPosition::default(),
        },
        host_ids,
    })
}

/// A task's request, read by its command type.
#[derive(Clone, Debug, PartialEq)]
pub enum EchoRequest {
    Snapshot(SnapshotSpec),
    Clone(CloneRequest),
    Import(ImportRequest),
    Refresh(RefreshRequest),
    DeleteEchoDb(DeleteEchoDbRequest),
    DeleteSnapshot(DeleteSnapshotRequest),
}

impl EchoRequest {
    /// Reads a stored request as what its command type asks.
    pub fn decode(command: CommandType, json: &str) -> Result<EchoRequest, String> {
        fn read<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
            serde_json::from_str(json)
                .map_err(|err| format!("the task's request is unreadable: {err}"))
        }
        Ok(match command {
            CommandType::CreateDbSnapshot => EchoRequest::Snapshot(read(json)?),
            CommandType::CreateClone => EchoRequest::Clone(read(json)?),
            CommandType::ImportDbSnapshot => EchoRequest::Import(read(json)?),
            CommandType::ReplaceDb => EchoRequest::Refresh(read(json)?),
            CommandType::Delete => EchoRequest::DeleteEchoDb(read(json)?),
            CommandType::DeleteDbSnapshot => EchoRequest::DeleteSnapshot(read(json)?),
            CommandType::Deploy => return Err(format!("Flex does not run {command}")),
        })
    }

    /// The hosts it involves, each once, in order of id.
    pub fn host_ids(&self) -> Vec<String> {
        let mut hosts = match self {
            EchoRequest::Snapshot(request) => request.host_ids(),
            EchoRequest::Clone(request) => request.host_ids(),
            EchoRequest::Import(request) => request.host_ids(),
            EchoRequest::Refresh(request) => request.host_ids(),
            EchoRequest::DeleteEchoDb(request) => request.host_ids(),
            EchoRequest::DeleteSnapshot(request) => request.host_ids(),
        };
        hosts.retain(|host| !host.is_empty());
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// The snapshot part: a snapshot task's whole request, or a clone's `snapshot`.
    pub fn snapshot_spec(&self) -> Option<&SnapshotSpec> {
        match self {
            EchoRequest::Snapshot(spec) => Some(spec),
            EchoRequest::Clone(clone) => Some(&clone.snapshot),
            _ => None,
        }
    }
}

/// What a finished task reports: the db snapshot it took, the echo DBs it made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_snapshot: Option<SnapshotRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloned_dbs: Option<Vec<ClonedDb>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub id: String,
}

/// An echo DB a task made, in the documented shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClonedDb {
    pub id: String,
    pub name: String,
    pub host_id: String,
    pub source_host_id: String,
    /// Documented as an integer; an integer wherever the id is numeric.
    pub source_db_id: DbId,
    pub source_db_name: String,
}

/// A database id as the documents show it: a number where it is one, else the string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DbId {
    Number(i64),
    Text(String),
}

impl From<&str> for DbId {
    fn from(id: &str) -> DbId {
        id.parse()
            .map_or_else(|_| DbId::Text(id.to_owned()), DbId::Number)
    }
}
