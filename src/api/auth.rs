//! Who may call the API: the bearer-token check in front of every API route,
//! login for people, and app tokens for pipelines.

use axum::{
    Json, Router,
    extract::{MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::{Deserialize, Serialize};

use super::{
    AppState,
    error::ApiError,
    extract::{ClientAddr, FormBody, JsonBody, PathParams},
    roles,
};
use crate::{
    auth::{self, SESSION_TTL_SECS, TokenSpec},
    clock::{now_ms, now_ts},
    store::{Role, TokenKind, TokenRecord},
};

/// The token a request was authenticated with.
#[derive(Clone, Debug)]
pub struct Principal {
    pub token_id: String,
    pub kind: TokenKind,
    pub role: Role,
}

pub fn login_routes() -> Router<AppState> {
    Router::new().route("/api/v1/auth/local/login", post(login))
}

pub fn app_token_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/flex_app_tokens",
            get(list_app_tokens).post(create_app_token),
        )
        .route("/api/v2/flex_app_tokens/{id}", delete(delete_app_token))
}

fn bearer_token(req: &Request) -> Result<&str, ApiError> {
    let missing = || {
        ApiError::Unauthorized(
            "missing bearer token: send 'Authorization: Bearer <token>'".to_owned(),
        )
    };
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(missing());
    }
    Ok(token)
}

/// Admits requests that carry a live admin, app or login token whose role may do what the
/// route does (before any of it is read or done). Host tokens are refused with a 403 that says
/// which token to use instead: they only open the agent channel of their host.
pub async fn require_api_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = bearer_token(&req)?;
    let record = auth::authenticate(&state.store, token)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("invalid, expired or revoked token".to_owned()))?;
    if record.kind == TokenKind::Host {
        return Err(ApiError::Forbidden(format!(
            "this is the agent token of host '{}': it only authenticates that host's agent. \
             Call the API with the admin token, an app token or a token from \
             /api/v1/auth/local/login",
            record.host_id.as_deref().unwrap_or_default()
        )));
    }
    crate::store::audit::note_principal(&record.id, &record.app_name, record.role.as_str());
    let needed = roles::needed(req.method(), req.extensions().get::<MatchedPath>());
    if record.role < needed {
        return Err(ApiError::ForbiddenForRole {
            needed,
            held: record.role,
        });
    }
    req.extensions_mut().insert(Principal {
        token_id: record.id,
        kind: record.kind,
        role: record.role,
    });
    Ok(next.run(req).await)
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct LoginResponse {
    access_token: String,
    #[serde(rename = "expiresIn")]
    expires_in: i64,
    #[serde(rename = "expiresOn")]
    expires_on: String,
}

/// Failed logins (for one user name, or from one address) within the window after which
/// further attempts are refused until the oldest of them leaves it.
const LOGIN_FAILURES_ALLOWED: u32 = 5;
const LOGIN_WINDOW_MS: i64 = 15 * 60 * 1000;
/// The longest user name the audit trail keeps (and throttling counts by).
const MAX_USER_NAME_LEN: usize = 256;

/// Refuses a login while its user name or its address has used up its failures. Counted from
/// the audit trail, so every replica sees every failure and a restart forgets none. It holds
/// for user names that do not exist too, which so stay indistinguishable.
async fn throttle(state: &AppState, user_name: &str, client_addr: &str) -> Result<(), ApiError> {
    let now = now_ms();
    let (by_user, by_addr) = state
        .store
        .recent_login_failures(
            user_name,
            client_addr,
            now - LOGIN_WINDOW_MS,
            LOGIN_FAILURES_ALLOWED,
        )
        .await?;
    let allowed = LOGIN_FAILURES_ALLOWED as usize;
    // Without an address (an app driven without a listener) only the user name counts.
    let counted = if client_addr.is_empty() {
        vec![by_user]
    } else {
        vec![by_user, by_addr]
    };
    let free_at = counted
        .iter()
        .filter(|failures| failures.len() >= allowed)
        .filter_map(|failures| failures.last())
        .map(|oldest_counted| oldest_counted + LOGIN_WINDOW_MS)
        .max();
    match free_at {
        Some(at) => Err(ApiError::TooManyLogins {
            retry_after_secs: u64::try_from((at - now + 999) / 1000).unwrap_or(1).max(1),
        }),
        None => Ok(()),
    }
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(client_addr): ClientAddr,
    FormBody(form): FormBody<LoginForm>,
) -> Result<Json<LoginResponse>, ApiError> {
    // As recorded and counted: a megabyte of user name is not kept whole.
    let user_key: String = form.username.chars().take(MAX_USER_NAME_LEN).collect();
    crate::store::audit::note_user(&user_key);
    throttle(&state, &user_key, &client_addr).await?;
    let config = &state.config;
    let accepted = match (&config.admin_user, &config.admin_password) {
        (Some(user), Some(password)) => {
            // Both comparisons always run, so timing does not tell which one failed.
            let user_ok = auth::secrets_equal(&form.username, user);
            let password_ok = auth::secrets_equal(&form.password, password);
            user_ok & password_ok
        }
        _ => false,
    };
    if !accepted {
        return Err(ApiError::Unauthorized(
            "invalid username or password".to_owned(),
        ));
    }
    let minted = auth::mint(TokenSpec {
        kind: TokenKind::Session,
        // The bootstrap user is the administrator.
        role: Role::Admin,
        host_id: None,
        app_name: "login",
        description: &format!("login session of '{}'", form.username),
        ttl: Some(SESSION_TTL_SECS),
    });
    // The session and the login's audit row commit together.
    crate::store::audit::note_principal(&minted.record.id, "login", Role::Admin.as_str());
    state.store.insert_token(&minted.record).await?;
    state.store.purge_expired_sessions().await?;
    let expires_on = minted
        .record
        .expire_ts
        .and_then(|ts| chrono::DateTime::from_timestamp(ts, 0))
        .map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    Ok(Json(LoginResponse {
        access_token: minted.plaintext,
        expires_in: SESSION_TTL_SECS,
        expires_on,
    }))
}

#[derive(Serialize)]
struct AppTokenView {
    id: String,
    app_name: String,
    description: String,
    role: Role,
    /// Seconds; [`NEVER`] for a token that does not expire.
    ttl: i64,
    valid: bool,
    /// Epoch seconds; [`NEVER`] for a token that does not expire.
    expire_ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// `ttl` and `expire_ts` of a token that never expires: clients read them as numbers.
const NEVER: i64 = -1;

impl AppTokenView {
    fn new(record: TokenRecord, now: i64) -> AppTokenView {
        AppTokenView {
            valid: !record.is_expired(now),
            id: record.id,
            app_name: record.app_name,
            description: record.description,
            role: record.role,
            ttl: record.ttl.unwrap_or(NEVER),
            expire_ts: record.expire_ts.unwrap_or(NEVER),
            token: None,
        }
    }
}

#[derive(Deserialize)]
struct NewAppToken {
    app_name: String,
    #[serde(default)]
    description: String,
    /// Lifetime in seconds; absent, null or -1 means the token does not expire.
    #[serde(default)]
    ttl: Option<i64>,
    /// viewer, operator or admin (absent or null: admin, what every token was before roles).
    #[serde(default)]
    role: Option<String>,
}

const MAX_APP_NAME_LEN: usize = 64;
/// Ten years: long enough for any pipeline, short enough that expiry arithmetic stays sane.
const MAX_TTL_SECS: i64 = 10 * 365 * 24 * 3600;
const MAX_DESCRIPTION_LEN: usize = 256;

async fn create_app_token(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewAppToken>,
) -> Result<impl IntoResponse, ApiError> {
    let app_name = body.app_name.as_str();
    if !app_name.chars().any(|c| c != ' ') || app_name.chars().count() > MAX_APP_NAME_LEN {
        return Err(ApiError::bad_request(
            "INVALID_FIELD",
            format!("field 'app_name' must be 1 to {MAX_APP_NAME_LEN} characters, not all spaces"),
        ));
    }
    if body.description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ApiError::bad_request(
            "INVALID_FIELD",
            format!("field 'description' must be at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    let ttl = body.ttl.filter(|&ttl| ttl != NEVER);
    if ttl.is_some_and(|ttl| !(1..=MAX_TTL_SECS).contains(&ttl)) {
        return Err(ApiError::bad_request(
            "INVALID_FIELD",
            format!("field 'ttl' must be 1 to {MAX_TTL_SECS} seconds, or -1 for never"),
        ));
    }
    let role = match body.role.as_deref() {
        None => Role::Admin,
        Some(raw) => Role::parse(raw).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_FIELD",
                format!("field 'role' must be one of {}", Role::NAMES.join(", ")),
            )
        })?,
    };
    let minted = auth::mint(TokenSpec {
        kind: TokenKind::App,
        role,
        host_id: None,
        app_name,
        description: &body.description,
        ttl,
    });
    state.store.insert_token(&minted.record).await?;
    let mut view = AppTokenView::new(minted.record, now_ts());
    view.token = Some(minted.plaintext);
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list_app_tokens(
    State(state): State<AppState>,
) -> Result<Json<Vec<AppTokenView>>, ApiError> {
    let now = now_ts();
    let tokens = state.store.list_app_tokens().await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|record| AppTokenView::new(record, now))
            .collect(),
    ))
}

async fn delete_app_token(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_app_token(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "TOKEN_NOT_FOUND",
            format!("app token '{id}' does not exist"),
        ))
    }
}
