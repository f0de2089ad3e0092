//! The request bodies of the Echo operations as clients send them (every generation's field
//! names, ids as strings or numbers, optional fields with their documented defaults), and
//! their translation into the workflows' typed requests. A value that does not translate (an
//! unknown consistency level or target state) becomes a dry-run issue, not a parse error, so
//! the dry run can report it beside everything else.

use serde::Deserialize;

use crate::{
    model::{ConsistencyLevel, TargetState},
    workflows::{
        requests::{CloneRequest, Destination, NewLifecycle, SnapshotSpec},
        validate::{Issue, IssueCode},
    },
};

/// Ids arrive as strings (documented) or numbers (some clients).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Text(String),
    Number(SafeInteger),
}

impl Id {
    pub fn into_string(self) -> String {
        match self {
            Id::Text(text) => text,
            Id::Number(SafeInteger(number)) => number.to_string(),
        }
    }
}

/// A non-negative integer a JSON client can hold exactly (at most 2^53 - 1), as the spec says.
#[derive(Clone, Debug)]
pub struct SafeInteger(u64);

impl<'de> Deserialize<'de> for SafeInteger {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const MAX_SAFE: u64 = (1 << 53) - 1;
        let number = u64::deserialize(deserializer)?;
        if number > MAX_SAFE {
            return Err(serde::de::Error::custom(
                "an id number must be at most 2^53 - 1",
            ));
        }
        Ok(SafeInteger(number))
    }
}

#[derive(Deserialize)]
pub struct DestinationBody {
    host_id: String,
    #[serde(default)]
    db_id: Option<Id>,
    db_name: String,
}

#[derive(Deserialize)]
pub struct SnapshotBody {
    source_host_id: String,
    database_ids: Vec<Id>,
    #[serde(default)]
    name_prefix: Option<String>,
    #[serde(default)]
    consistency_level: Option<String>,
    #[serde(default)]
    force_vss_usage: Option<bool>,
    /// Older clients' name for `force_vss_usage`.
    #[serde(default)]
    use_vss: Option<bool>,
}

#[derive(Deserialize)]
pub struct CloneBody {
    source_host_id: String,
    #[serde(default)]
    database_ids: Option<Vec<Id>>,
    destinations: Vec<DestinationBody>,
    #[serde(default)]
    name_prefix: Option<String>,
    #[serde(default)]
    consistency_level: Option<String>,
    #[serde(default)]
    target_state: Option<String>,
    #[serde(default)]
    force_vss_usage: Option<bool>,
    #[serde(default)]
    use_vss: Option<bool>,
    #[serde(default)]
    ttl_secs: Option<i64>,
    #[serde(default)]
    protected: Option<bool>,
}

#[derive(Deserialize)]
pub struct ImportBody {
    pub destinations: Vec<DestinationBody>,
    #[serde(default)]
    pub target_state: Option<String>,
    #[serde(default)]
    pub ttl_secs: Option<i64>,
    #[serde(default)]
    pub protected: Option<bool>,
}

#[derive(Deserialize)]
pub struct DeleteEchoBody {
    pub host_id: String,
    pub database_id: Id,
}

#[derive(Deserialize)]
pub struct RefreshBody {
    pub snapshot_id: String,
    pub db_names: Vec<String>,
    #[serde(default)]
    pub target_state: Option<String>,
    /// The PowerShell module sends `false`. Flex keeps no copy of the replaced database, so
    /// `true` is refused rather than silently ignored.
    #[serde(default)]
    pub keep_backup: bool,
    #[serde(default)]
    pub ttl_secs: Option<i64>,
}

const DEFAULT_NAME_PREFIX: &str = "snap";

/// A typed request, and what could not be read into it (with a default in its place).
pub struct Parsed<T> {
    pub request: T,
    pub issues: Vec<Issue>,
}

pub fn consistency_level(raw: Option<String>, issues: &mut Vec<Issue>) -> ConsistencyLevel {
    match raw {
        None => ConsistencyLevel::Application,
        Some(text) => text.parse().unwrap_or_else(|_| {
            issues.push(Issue::new(
                IssueCode::InvalidConsistencyLevel,
                format!("consistency_level '{text}' must be 'application' or 'crash'"),
            ));
            ConsistencyLevel::Application
        }),
    }
}

/// The longest ttl an echo DB may be given: a year.
pub const MAX_TTL_SECS: i64 = 31_536_000;

/// A ttl in range (1 s to a year), or an issue.
pub fn ttl_secs(raw: Option<i64>, issues: &mut Vec<Issue>) -> Option<i64> {
    let ttl = raw?;
    if (1..=MAX_TTL_SECS).contains(&ttl) {
        Some(ttl)
    } else {
        issues.push(Issue::new(
            IssueCode::InvalidTtl,
            format!("ttl_secs {ttl} must be between 1 and {MAX_TTL_SECS} seconds"),
        ));
        None
    }
}

/// How the echo DBs a request makes start their life.
pub fn new_lifecycle(
    ttl: Option<i64>,
    protected: Option<bool>,
    issues: &mut Vec<Issue>,
) -> NewLifecycle {
    NewLifecycle {
        ttl_secs: ttl_secs(ttl, issues),
        protected: protected.unwrap_or(false),
    }
}

pub fn target_state(raw: Option<String>, issues: &mut Vec<Issue>) -> TargetState {
    match raw {
        None => TargetState::Online,
        Some(text) => text.parse().unwrap_or_else(|_| {
            issues.push(Issue::new(
                IssueCode::InvalidTargetState,
                format!("target_state '{text}' must be 'online' or 'recovery'"),
            ));
            TargetState::Online
        }),
    }
}

struct SnapshotFields {
    source_host_id: String,
    database_ids: Vec<String>,
    name_prefix: Option<String>,
    consistency_level: Option<String>,
    force_vss: Option<bool>,
}

fn snapshot_spec(fields: SnapshotFields, issues: &mut Vec<Issue>) -> SnapshotSpec {
    SnapshotSpec {
        consistency_level: consistency_level(fields.consistency_level, issues),
        source_host_id: fields.source_host_id,
        database_ids: fields.database_ids,
        name_prefix: fields
            .name_prefix
            .unwrap_or_else(|| DEFAULT_NAME_PREFIX.to_owned()),
        force_vss_usage: fields.force_vss.unwrap_or(false),
        schedule_id: None,
    }
}

impl SnapshotBody {
    pub fn into_spec(self) -> Parsed<SnapshotSpec> {
        let mut issues = Vec::new();
        let fields = SnapshotFields {
            source_host_id: self.source_host_id,
            database_ids: self.database_ids.into_iter().map(Id::into_string).collect(),
            name_prefix: self.name_prefix,
            consistency_level: self.consistency_level,
            force_vss: self.force_vss_usage.or(self.use_vss),
        };
        Parsed {
            request: snapshot_spec(fields, &mut issues),
            issues,
        }
    }
}

/// The destinations, each naming its source database; `only_source` fills in one that does
/// not (allowed when the source holds exactly one database).
pub fn destinations_of(body: Vec<DestinationBody>, only_source: Option<&str>) -> Vec<Destination> {
    body.into_iter()
        .map(|d| Destination {
            host_id: d.host_id,
            db_id: d
                .db_id
                .map(Id::into_string)
                .or_else(|| only_source.map(str::to_owned))
                .unwrap_or_default(),
            db_name: d.db_name,
        })
        .collect()
}

impl CloneBody {
    pub fn into_request(self) -> Parsed<CloneRequest> {
        let mut issues = Vec::new();
        let explicit: Option<Vec<String>> = self
            .database_ids
            .map(|ids| ids.into_iter().map(Id::into_string).collect());
        let only_source = explicit
            .as_ref()
            .filter(|ids| ids.len() == 1)
            .map(|ids| ids[0].clone());
        let destinations = destinations_of(self.destinations, only_source.as_deref());
        // Without database_ids, the sources are the databases the destinations name.
        let database_ids = explicit.unwrap_or_else(|| {
            let mut ids: Vec<String> = destinations.iter().map(|d| d.db_id.clone()).collect();
            ids.sort();
            ids.dedup();
            ids
        });
        let fields = SnapshotFields {
            source_host_id: self.source_host_id,
            database_ids,
            name_prefix: self.name_prefix,
            consistency_level: self.consistency_level,
            force_vss: self.force_vss_usage.or(self.use_vss),
        };
        let snapshot = snapshot_spec(fields, &mut issues);
        let target_state = target_state(self.target_state, &mut issues);
        Parsed {
            request: CloneRequest {
                snapshot,
                destinations,
                target_state,
                lifecycle: new_lifecycle(self.ttl_secs, self.protected, &mut issues),
            },
            issues,
        }
    }
}
