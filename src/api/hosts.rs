//! Hosts: registration (which mints the host's agent token), unregistration, lookup, and the
//! databases each host's agent reports.

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};

use super::{
    AppState,
    error::ApiError,
    extract::{JsonBody, PathParams},
};
use crate::{
    auth::{self, TokenSpec},
    clock::now_ts,
    model::{DatabaseFile, Lifecycle, MountPoint},
    store::{DatabaseRecord, DeleteHostOutcome, EchoDbRecord, HostRecord, NewHost, TokenKind},
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/hosts", get(list_hosts)).route(
        "/hosts/{host_id}",
        get(get_host).put(register_host).delete(unregister_host),
    )
}

pub fn database_routes() -> Router<AppState> {
    Router::new()
        .route("/hosts/{host_id}/databases", get(list_databases))
        .route("/hosts/{host_id}/databases/{db_id}", get(get_database))
}

/// The only database vendor Flex drives today.
pub const SUPPORTED_VENDOR: &str = "mssql";

/// The documented rule: 3–32 characters, `^[a-zA-Z][a-zA-Z0-9_-]+[a-zA-Z0-9]$`.
pub fn is_valid_host_id(host_id: &str) -> bool {
    let bytes = host_id.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    (3..=32).contains(&bytes.len())
        && first.is_ascii_alphabetic()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// A host as `GET host`, list hosts and (reshaped) topology show it.
#[derive(Serialize)]
pub struct HostView {
    pub host_id: String,
    pub db_vendor: String,
    pub last_seen_ts: i64,
    pub host_name: String,
    pub host_iqn: String,
    pub host_os: String,
    pub host_os_version: String,
    pub agent_version: String,
    pub cloud_vendor: String,
    pub is_connected: bool,
    pub db_engine_version: String,
}

impl HostView {
    /// The host as it stood at `now` (unix seconds), for agents silent longer than `silence`.
    pub fn new(host: HostRecord, silence: std::time::Duration, now: i64) -> HostView {
        HostView {
            is_connected: host.is_connected(silence, now),
            host_id: host.host_id,
            db_vendor: host.db_vendor,
            last_seen_ts: host.last_seen_ts,
            host_name: host.host_name,
            host_iqn: host.host_iqn,
            host_os: host.host_os,
            host_os_version: host.host_os_version,
            agent_version: host.agent_version,
            cloud_vendor: host.cloud_vendor,
            db_engine_version: host.db_engine_version,
        }
    }
}

#[derive(Deserialize)]
struct RegisterHost {
    db_vendor: String,
}

#[derive(Serialize)]
struct Registered {
    host_id: String,
    db_vendor: String,
    token: String,
}

fn host_not_found(host_id: &str) -> ApiError {
    ApiError::not_found(
        "HOST_NOT_FOUND",
        format!("host '{host_id}' is not registered"),
    )
}

async fn register_host(
    State(state): State<AppState>,
    PathParams(host_id): PathParams<String>,
    JsonBody(body): JsonBody<RegisterHost>,
) -> Result<Response, ApiError> {
    if !is_valid_host_id(&host_id) {
        return Err(ApiError::bad_request(
            "INVALID_HOST_ID",
            format!(
                "host_id '{host_id}' is invalid: it must be 3-32 characters, start with a \
                 letter, end with a letter or digit, and contain only letters, digits, '_' and '-'"
            ),
        ));
    }
    if body.db_vendor != SUPPORTED_VENDOR {
        return Err(ApiError::bad_request(
            "INVALID_FIELD",
            format!(
                "field 'db_vendor': '{}' is not supported; the only supported vendor is '{SUPPORTED_VENDOR}'",
                body.db_vendor
            ),
        ));
    }
    let minted = auth::mint(TokenSpec {
        kind: TokenKind::Host,
        role: crate::store::Role::Viewer,
        host_id: Some(&host_id),
        app_name: "agent",
        description: &format!("agent token of host '{host_id}'"),
        ttl: None,
    });
    let new_host = NewHost {
        host_id: host_id.clone(),
        db_vendor: body.db_vendor,
    };
    let host = match state.store.insert_host(&new_host, &minted.record).await {
        Ok(host) => host,
        Err(crate::store::StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "HOST_ALREADY_EXISTS",
                format!("host '{host_id}' is already registered"),
            ));
        }
        Err(other) => return Err(other.into()),
    };
    tracing::info!(host_id = %host.host_id, "host registered");
    let body = Registered {
        host_id: host.host_id,
        db_vendor: host.db_vendor,
        token: minted.plaintext,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn unregister_host(
    State(state): State<AppState>,
    PathParams(host_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    match state.store.delete_host(&host_id).await? {
        DeleteHostOutcome::Deleted => {
            state.agents.disconnect(&host_id);
            tracing::info!(%host_id, "host unregistered");
            Ok(StatusCode::NO_CONTENT)
        }
        DeleteHostOutcome::NotFound => Ok(StatusCode::NO_CONTENT),
        DeleteHostOutcome::Busy(tasks) => Err(ApiError::conflict(
            "HOST_IN_USE",
            format!(
                "host '{host_id}' has running tasks ({}); wait for them to end or abort them",
                tasks.join(", ")
            ),
        )),
    }
}

async fn get_host(
    State(state): State<AppState>,
    PathParams(host_id): PathParams<String>,
) -> Result<Json<HostView>, ApiError> {
    let host = state
        .store
        .get_host(&host_id)
        .await?
        .ok_or_else(|| host_not_found(&host_id))?;
    Ok(Json(HostView::new(
        host,
        state.config.agent_silence,
        now_ts(),
    )))
}

async fn list_hosts(State(state): State<AppState>) -> Result<Response, ApiError> {
    let hosts = state.store.list_hosts().await?;
    if hosts.is_empty() {
        // Documented: no hosts is 204, not an empty list.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let now = now_ts();
    let views: Vec<HostView> = hosts
        .into_iter()
        .map(|host| HostView::new(host, state.config.agent_silence, now))
        .collect();
    Ok(Json(views).into_response())
}

/// A database as the host databases endpoints show it.
#[derive(Serialize)]
pub struct DatabaseView {
    pub id: String,
    pub host_id: String,
    pub name: String,
    pub vendor: String,
    pub status: String,
    pub mssql: MssqlDetails,
    pub mount_points: Vec<MountPoint>,
    /// An echo DB's `expires_ts`, `ttl_secs` and `protected`; absent on other databases.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
}

#[derive(Serialize)]
pub struct MssqlDetails {
    pub files: Vec<DatabaseFile>,
}

impl DatabaseView {
    fn new(db: DatabaseRecord, echo_dbs: &[EchoDbRecord]) -> DatabaseView {
        let lifecycle = echo_dbs
            .iter()
            .find(|echo| echo.host_id == db.host_id && echo.db_id == db.db_id)
            .map(|echo| echo.lifecycle);
        DatabaseView {
            lifecycle,
            id: db.db_id,
            host_id: db.host_id,
            name: db.name,
            vendor: db.vendor,
            status: db.status,
            mssql: MssqlDetails { files: db.files },
            mount_points: db.mount_points,
        }
    }
}

pub async fn require_host(state: &AppState, host_id: &str) -> Result<(), ApiError> {
    match state.store.get_host(host_id).await? {
        Some(_) => Ok(()),
        None => Err(host_not_found(host_id)),
    }
}

/// The status of an echo DB Flex still holds (its record, its volumes) that the host no
/// longer reports: taken away by a delete or refresh that has not finished, or that failed
/// half-way. Listed so that it can be seen, and deleted or refreshed again.
pub const DETACHED: &str = "DETACHED";

/// A host's databases as the API shows them: what its agent reports, then the echo DBs Flex
/// holds that the host does not report any more (as [`DETACHED`]).
pub fn with_detached(
    mut inventory: Vec<DatabaseRecord>,
    echo_dbs: &[EchoDbRecord],
) -> Vec<DatabaseRecord> {
    let reported: std::collections::HashSet<(&str, &str)> = inventory
        .iter()
        .map(|db| (db.host_id.as_str(), db.db_id.as_str()))
        .collect();
    let detached: Vec<DatabaseRecord> = echo_dbs
        .iter()
        .filter(|echo| !reported.contains(&(echo.host_id.as_str(), echo.db_id.as_str())))
        .map(|echo| DatabaseRecord {
            host_id: echo.host_id.clone(),
            db_id: echo.db_id.clone(),
            name: echo.name.clone(),
            vendor: SUPPORTED_VENDOR.to_owned(),
            status: DETACHED.to_owned(),
            files: Vec::new(),
            mount_points: Vec::new(),
            updated_ts: echo.created_ts,
        })
        .collect();
    inventory.extend(detached);
    inventory
}

async fn list_databases(
    State(state): State<AppState>,
    PathParams(host_id): PathParams<String>,
) -> Result<Json<Vec<DatabaseView>>, ApiError> {
    require_host(&state, &host_id).await?;
    let inventory = state.store.list_databases(&host_id).await?;
    let echo_dbs = state.store.list_echo_dbs_on(&host_id).await?;
    let databases = with_detached(inventory, &echo_dbs);
    Ok(Json(
        databases
            .into_iter()
            .map(|db| DatabaseView::new(db, &echo_dbs))
            .collect(),
    ))
}

async fn get_database(
    State(state): State<AppState>,
    PathParams((host_id, db_id)): PathParams<(String, String)>,
) -> Result<Json<DatabaseView>, ApiError> {
    Ok(Json(database_view(&state, &host_id, &db_id).await?))
}

/// One database of a host as the API shows it: by its id, or an echo DB by an id it had.
pub async fn database_view(
    state: &AppState,
    host_id: &str,
    db_id: &str,
) -> Result<DatabaseView, ApiError> {
    let (host_id, db_id) = (host_id.to_owned(), db_id.to_owned());
    require_host(state, &host_id).await?;
    let mut reported = state.store.get_database(&host_id, &db_id).await?;
    let mut echo_db = state.store.get_echo_db(&host_id, &db_id).await?;
    if reported.is_some() {
        // The host's database by that id, whatever echo DB once had it.
        echo_db = echo_db.filter(|echo| echo.db_id == db_id);
    } else if let Some(echo) = &echo_db {
        // An echo DB found by the id it had before a refresh: shown as it is now.
        reported = state.store.get_database(&host_id, &echo.db_id).await?;
    }
    let db = with_detached(reported.into_iter().collect(), echo_db.as_slice())
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::not_found(
                "DB_NOT_FOUND",
                format!("database '{db_id}' is not on host '{host_id}'"),
            )
        })?;
    Ok(DatabaseView::new(db, echo_db.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::is_valid_host_id;

    #[test]
    fn host_ids_follow_the_documented_pattern() {
        for good in ["abc", "host01", "dev-2", "a_b-c9", &"h".repeat(32)] {
            assert!(is_valid_host_id(good), "{good} should be valid");
        }
        for bad in [
            "",
            "ab",
            "1abc",
            "abc-",
            "ab_",
            "a b",
            "héllo",
            "ab/c",
            "../x",
            &"h".repeat(33),
        ] {
            assert!(!is_valid_host_id(bad), "{bad} should be invalid");
        }
    }
}
