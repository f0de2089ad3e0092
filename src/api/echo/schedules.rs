//! Snapshot schedules: create (201), list, show, delete (204). A schedule's runs are ordinary
//! snapshot tasks started by `automation`; each applies the schedule's retention.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::{
    bodies::{Id, MAX_TTL_SECS, consistency_level},
    checker, refuse,
};
use crate::{
    api::{
        AppState,
        error::ApiError,
        extract::{JsonBody, PathParams},
    },
    auth::random_alphanumeric,
    automation::cadence::{first_run, parse_cron},
    clock::now_ts,
    model::ConsistencyLevel,
    store::{Cadence, ScheduleRecord},
    workflows::{requests::SnapshotSpec, validate::IssueCode},
};

const DEFAULT_KEEP_LAST: i64 = 7;
const MAX_KEEP_LAST: i64 = 1000;
const DEFAULT_NAME_PREFIX: &str = "sched";

#[derive(Deserialize)]
pub struct ScheduleBody {
    source_host_id: String,
    database_ids: Vec<Id>,
    #[serde(default)]
    interval_secs: Option<i64>,
    #[serde(default)]
    cron: Option<String>,
    #[serde(default)]
    consistency_level: Option<String>,
    #[serde(default)]
    name_prefix: Option<String>,
    #[serde(default)]
    keep_last: Option<i64>,
}

/// A schedule as the API shows it.
#[derive(Serialize)]
pub struct ScheduleView {
    id: String,
    source_host_id: String,
    database_ids: Vec<String>,
    interval_secs: Option<i64>,
    cron: Option<String>,
    consistency_level: ConsistencyLevel,
    name_prefix: String,
    keep_last: i64,
    next_run_ts: i64,
    last_run_ts: Option<i64>,
    last_task_id: Option<String>,
    created_ts: i64,
    /// The ids of the db snapshots it took that still exist, oldest first.
    snapshot_ids: Vec<String>,
}

async fn view(state: &AppState, schedule: ScheduleRecord) -> Result<ScheduleView, ApiError> {
    let snapshot_ids = state
        .store
        .db_snapshots_of_schedule(&schedule.id)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let (interval_secs, cron) = match schedule.cadence {
        Cadence::Interval(secs) => (Some(secs), None),
        Cadence::Cron(cron) => (None, Some(cron)),
    };
    Ok(ScheduleView {
        id: schedule.id,
        source_host_id: schedule.source_host_id,
        database_ids: schedule.database_ids,
        interval_secs,
        cron,
        consistency_level: schedule.consistency_level,
        name_prefix: schedule.name_prefix,
        keep_last: schedule.keep_last,
        next_run_ts: schedule.next_run_ts,
        last_run_ts: schedule.last_run_ts,
        last_task_id: schedule.last_task_id,
        created_ts: schedule.created_ts,
        snapshot_ids,
    })
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("INVALID_FIELD", message)
}

fn cadence_of(interval_secs: Option<i64>, cron: Option<String>) -> Result<Cadence, ApiError> {
    match (interval_secs, cron) {
        (Some(secs), None) if (1..=MAX_TTL_SECS).contains(&secs) => Ok(Cadence::Interval(secs)),
        (Some(secs), None) => Err(invalid(format!(
            "field 'interval_secs': {secs} must be between 1 and {MAX_TTL_SECS}"
        ))),
        (None, Some(cron)) => parse_cron(&cron)
            .map(|_| Cadence::Cron(cron.trim().to_owned()))
            .map_err(|err| invalid(format!("field 'cron': {err}"))),
        _ => Err(invalid(
            "give exactly one of 'interval_secs' and 'cron' (5 fields, UTC)",
        )),
    }
}

pub async fn create_schedule(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ScheduleBody>,
) -> Result<Response, ApiError> {
    let cadence = cadence_of(body.interval_secs, body.cron)?;
    let keep_last = body.keep_last.unwrap_or(DEFAULT_KEEP_LAST);
    if !(1..=MAX_KEEP_LAST).contains(&keep_last) {
        return Err(invalid(format!(
            "field 'keep_last': {keep_last} must be between 1 and {MAX_KEEP_LAST}"
        )));
    }
    let mut issues = Vec::new();
    let spec = SnapshotSpec {
        consistency_level: consistency_level(body.consistency_level, &mut issues),
        source_host_id: body.source_host_id,
        database_ids: body.database_ids.into_iter().map(Id::into_string).collect(),
        name_prefix: body
            .name_prefix
            .unwrap_or_else(|| DEFAULT_NAME_PREFIX.to_owned()),
        force_vss_usage: false,
        schedule_id: None,
    };
    issues.extend(checker(&state).snapshot(&spec).await?);
    // What may change before a run (an agent that reconnects, an array configured later) is
    // no reason to refuse the schedule: that run fails, visibly, as its task.
    issues.retain(|issue| {
        !matches!(
            issue.issue_type,
            IssueCode::HostNotConnected | IssueCode::SdpNotConfigured
        )
    });
    if !issues.is_empty() {
        return Err(refuse(&issues));
    }
    let now = now_ts();
    let next_run_ts = first_run(&cadence, now).map_err(invalid)?;
    let schedule = ScheduleRecord {
        id: format!("sch_{}", random_alphanumeric(16).to_lowercase()),
        source_host_id: spec.source_host_id,
        database_ids: spec.database_ids,
        cadence,
        consistency_level: spec.consistency_level,
        name_prefix: spec.name_prefix,
        keep_last,
        next_run_ts,
        last_run_ts: None,
        last_task_id: None,
        created_ts: now,
    };
    state.store.insert_schedule(&schedule).await?;
    tracing::info!(schedule_id = %schedule.id, next_run_ts, "schedule created");
    Ok((StatusCode::CREATED, Json(view(&state, schedule).await?)).into_response())
}

pub async fn list_schedules(
    State(state): State<AppState>,
) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    let mut views = Vec::new();
    for schedule in state.store.list_schedules().await? {
        views.push(view(&state, schedule).await?);
    }
    Ok(Json(views))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "SCHEDULE_NOT_FOUND",
        format!("snapshot schedule '{id}' does not exist"),
    )
}

pub async fn get_schedule(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let schedule = state
        .store
        .get_schedule(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(view(&state, schedule).await?))
}

/// Deletes the schedule; the snapshots it took stay (delete them as any other).
pub async fn delete_schedule(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_schedule(&id).await? {
        tracing::info!(schedule_id = %id, "schedule deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}
