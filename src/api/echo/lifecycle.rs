//! An echo DB's lifecycle: the keep-alive a pipeline sends while it uses its clone (when the
//! pipeline dies, the clone expires), and the PATCH that sets its expiry or protection.

use axum::{Json, extract::State};
use serde::{Deserialize, Deserializer};

use super::bodies::{MAX_TTL_SECS, ttl_secs};
use crate::{
    api::{
        AppState,
        error::ApiError,
        extract::{JsonBody, OptionalJson, PathParams},
        hosts::{DatabaseView, database_view, require_host},
    },
    clock::now_ts,
    model::{Lifecycle, TaskState},
    store::EchoDbRecord,
    workflows::validate::IssueCode,
};

#[derive(Deserialize)]
pub struct KeepAliveBody {
    #[serde(default)]
    ttl_secs: Option<i64>,
}

/// A PATCH field: left out, `null`, or a value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Field<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(deserializer).map(|value| value.map_or(Field::Null, Field::Value))
    }
}

/// Unknown fields are refused here (not ignored as elsewhere): a misspelt `protected` must not
/// answer 200 having changed nothing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecyclePatch {
    #[serde(default)]
    ttl_secs: Field<i64>,
    #[serde(default)]
    expires_ts: Field<i64>,
    #[serde(default)]
    protected: Option<bool>,
}

/// The latest `expires_ts` accepted: the end of year 9999.
const MAX_EXPIRES_TS: i64 = 253_402_300_799;

async fn echo_db(state: &AppState, host_id: &str, db_id: &str) -> Result<EchoDbRecord, ApiError> {
    require_host(state, host_id).await?;
    state
        .store
        .get_echo_db(host_id, db_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                IssueCode::EchoDbNotFound.as_str(),
                format!("database '{db_id}' on host '{host_id}' is not an echo DB"),
            )
        })
}

/// `POST …/databases/{db_id}/_keepalive`: pushes the expiry to now + ttl.
pub async fn keep_alive(
    State(state): State<AppState>,
    PathParams((host_id, db_id)): PathParams<(String, String)>,
    OptionalJson(body): OptionalJson<KeepAliveBody>,
) -> Result<Json<DatabaseView>, ApiError> {
    let mut issues = Vec::new();
    let asked = ttl_secs(body.and_then(|b| b.ttl_secs), &mut issues);
    super::check(&issues)?;
    let echo = echo_db(&state, &host_id, &db_id).await?;
    let (Some(own_ttl), Some(_)) = (echo.lifecycle.ttl_secs, echo.lifecycle.expires_ts) else {
        return Err(ApiError::conflict(
            "ECHO_DB_NOT_EXPIRING",
            format!(
                "echo DB '{}' on host '{host_id}' does not expire, so there is nothing to keep \
                 alive; give it a ttl with PATCH {{\"ttl_secs\": N}}",
                echo.name
            ),
        ));
    };
    if let Some(task_id) = &echo.expiry_task_id
        && let Some(task) = state.store.get_task(task_id).await?
        && task.state == TaskState::Running
    {
        return Err(ApiError::conflict(
            "ECHO_DB_EXPIRED",
            format!(
                "echo DB '{}' on host '{host_id}' has expired and is being deleted (task {task_id})",
                echo.name
            ),
        ));
    }
    let lifecycle = Lifecycle {
        expires_ts: Some(now_ts() + asked.unwrap_or(own_ttl)),
        ..echo.lifecycle
    };
    state
        .store
        .set_lifecycle(&host_id, &echo.db_id, lifecycle)
        .await?;
    Ok(Json(database_view(&state, &host_id, &echo.db_id).await?))
}

/// `PATCH …/databases/{db_id}`: a new ttl (from now), an expiry time, never expire, protect.
pub async fn update(
    State(state): State<AppState>,
    PathParams((host_id, db_id)): PathParams<(String, String)>,
    JsonBody(patch): JsonBody<LifecyclePatch>,
) -> Result<Json<DatabaseView>, ApiError> {
    let mut issues = Vec::new();
    if let Field::Value(ttl) = patch.ttl_secs {
        ttl_secs(Some(ttl), &mut issues);
    }
    super::check(&issues)?;
    if let Field::Value(at) = patch.expires_ts
        && !(0..=MAX_EXPIRES_TS).contains(&at)
    {
        return Err(ApiError::bad_request(
            "INVALID_FIELD",
            format!("field 'expires_ts': {at} must be epoch seconds from 0 to {MAX_EXPIRES_TS}"),
        ));
    }
    let echo = echo_db(&state, &host_id, &db_id).await?;
    let now = now_ts();
    let mut lifecycle = echo.lifecycle;
    // `expires_ts` says when; `ttl_secs` says how long a keep-alive adds (and, alone, when:
    // that long from now). An echo DB that never expires has no ttl either.
    match patch.ttl_secs {
        Field::Value(ttl) => {
            lifecycle.ttl_secs = Some(ttl);
            lifecycle.expires_ts = Some(now + ttl);
        }
        Field::Null => lifecycle.expires_ts = None,
        Field::Absent => {}
    }
    match patch.expires_ts {
        // A time in the past expires it at the next check.
        Field::Value(at) => lifecycle.expires_ts = Some(at),
        Field::Null => lifecycle.expires_ts = None,
        Field::Absent => {}
    }
    match lifecycle.expires_ts {
        None => lifecycle.ttl_secs = None,
        Some(at) => {
            let until = (at - now).clamp(1, MAX_TTL_SECS);
            lifecycle.ttl_secs = lifecycle.ttl_secs.or(Some(until));
        }
    }
    if let Some(protected) = patch.protected {
        lifecycle.protected = protected;
    }
    state
        .store
        .set_lifecycle(&host_id, &echo.db_id, lifecycle)
        .await?;
    Ok(Json(database_view(&state, &host_id, &echo.db_id).await?))
}
