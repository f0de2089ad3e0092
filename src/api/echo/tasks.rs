//! Creating a task for an accepted Echo request: the row the executor will claim, with its
//! typed request stored as JSON and the hosts it involves, and the executor woken at once.
//!
//! A request with an `Idempotency-Key` creates its task once: a repeat of it (same method,
//! path and request) within 24 hours answers with the first request's task, looked up before
//! the request is checked (what the first request changed, a clone's name now taken, must not
//! refuse its retry); the same key on another request is 422.

use axum::{
    extract::{FromRequestParts, OriginalUri},
    http::{Method, request::Parts},
};
use sha2::{Digest, Sha256};

use super::super::{AppState, context::RefId, error::ApiError, tasks::TaskView};
use crate::{
    clock::now_ms,
    store::{Creation, Idempotency, Once},
    workflows::{
        requests::{TaskRequest, new_task},
        validate::Issue,
    },
};

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const MAX_KEY_LEN: usize = 255;

/// Where a task-creating request came from: its path family (its task's `location` resolves
/// there), its method and path, its ref id, and its idempotency key if it has one.
pub struct TaskOrigin {
    method: Method,
    path: String,
    ref_id: String,
    key: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for TaskOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path().to_owned(), |uri| uri.path().to_owned());
        let ref_id = parts
            .extensions
            .get::<RefId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let key = match parts.headers.get(IDEMPOTENCY_HEADER) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .filter(|v| (1..=MAX_KEY_LEN).contains(&v.len()))
                    .filter(|v| v.bytes().all(|b| (0x20..0x7f).contains(&b)))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "INVALID_HEADER",
                            "header 'Idempotency-Key' must be 1 to 255 printable ASCII characters",
                        )
                    })?
                    .to_owned(),
            ),
        };
        Ok(TaskOrigin {
            method: parts.method.clone(),
            path,
            ref_id,
            key,
        })
    }
}

impl TaskOrigin {
    /// Which path family the request came by, so its task's `location` resolves there.
    fn tasks_prefix(&self) -> &'static str {
        if self.path.starts_with("/flex/") {
            "/flex/api/v1/ocie/tasks"
        } else if self.path.starts_with("/api/ocie/") {
            "/api/ocie/v1/tasks"
        } else {
            "/api/echo/v1/tasks"
        }
    }

    /// The key as stored: client keys apart from the keys Flex's automation uses.
    fn idempotency<R: TaskRequest>(&self, request: &R) -> Option<Idempotency> {
        let key = self.key.as_ref()?;
        let request = serde_json::to_string(request).unwrap_or_default();
        let digest = Sha256::new()
            .chain_update(self.method.as_str())
            .chain_update(b"\n")
            .chain_update(&self.path)
            .chain_update(b"\n")
            .chain_update(R::COMMAND.as_str())
            .chain_update(b"\n")
            .chain_update(request);
        Some(Idempotency {
            key: format!("api:{key}"),
            fingerprint: hex::encode(digest.finalize()),
        })
    }
}

/// A checked request: the first request's task if it repeats one, refused with its issues if
/// it has any, else stored as a running task.
pub async fn submit<R: TaskRequest>(
    state: &AppState,
    origin: &TaskOrigin,
    (request, issues): (R, Vec<Issue>),
) -> Result<TaskView, ApiError> {
    let idempotency = origin.idempotency(&request);
    if let Some(idem) = &idempotency
        && let Some((fingerprint, request_id)) =
            state.store.idempotent_task(&idem.key, now_ms()).await?
    {
        return repeated(state, fingerprint == idem.fingerprint, &request_id).await;
    }
    super::check(&issues)?;
    let task = new_task(
        &request,
        &origin.ref_id,
        origin.tasks_prefix(),
        &state.config.instance_id,
    )
    .map_err(|err| ApiError::Internal(format!("cannot store the request: {err}")))?;
    let once = idempotency.map_or(Once::Always, Once::Key);
    match state.store.create_task(&task, &once).await? {
        Creation::Created => {}
        Creation::Repeated { request_id } => return repeated(state, true, &request_id).await,
        Creation::KeyReused | Creation::NotDue => return Err(key_reused()),
    }
    state.executor.wake();
    let record = task.record;
    tracing::info!(request_id = %record.request_id, command_type = %R::COMMAND, "task created");
    Ok(record.into())
}

/// The answer to a request whose idempotency key was used before.
async fn repeated(state: &AppState, same: bool, request_id: &str) -> Result<TaskView, ApiError> {
    if !same {
        return Err(key_reused());
    }
    let task = state.store.get_task(request_id).await?.ok_or_else(|| {
        ApiError::Internal(format!("idempotency key names a missing task {request_id}"))
    })?;
    Ok(task.into())
}

fn key_reused() -> ApiError {
    ApiError::Unprocessable {
        code: "IDEMPOTENCY_KEY_REUSED",
        message: "this Idempotency-Key was used within 24 hours for a different request; use a \
                  new key for a new request"
            .into(),
    }
}
