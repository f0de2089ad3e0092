//! The audit trail: who asked for what, from where, and how it was answered.
//!
//! A request that changes something must not commit its change without its audit row. So the
//! API runs each mutating request inside an [`AuditScope`] (a tokio task-local), and the first
//! write transaction the request commits inserts the row too (`open_row!`, called by
//! `in_write_tx!`). The answer is not known then: once it is, the row gets its status and
//! task id (`status` NULL means the change committed and the answer was lost, say to a crash).
//! A request that changed nothing gets its row once answered. Work the executor or automation
//! does runs outside any scope and is not audited as a request (its tasks carry the ref id of
//! the request that made them).

use std::sync::{Arc, Mutex};

use super::{Store, StoreResult, in_write_tx, on_reader};

tokio::task_local! {
    static SCOPE: Arc<AuditScope>;
}

/// One row of the trail. Tokens appear by id, never in full.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub ts_ms: i64,
    pub token_id: String,
    /// The token's app name (`admin`, `login` for sessions, an app token's name).
    pub token_name: String,
    pub role: String,
    /// The user name a login gave.
    pub user_name: String,
    pub client_addr: String,
    pub method: String,
    /// The path asked for, without its query.
    pub path: String,
    pub status: Option<u16>,
    pub ref_id: String,
    pub task_id: Option<String>,
}

/// The audit row of the request being served, and whether a transaction wrote it yet.
#[derive(Debug)]
pub struct AuditScope {
    state: Mutex<ScopeState>,
}

#[derive(Debug)]
struct ScopeState {
    entry: AuditEntry,
    /// The row's seq once a committed transaction holds it.
    written: Option<i64>,
}

impl AuditScope {
    pub fn new(entry: AuditEntry) -> Arc<AuditScope> {
        Arc::new(AuditScope {
            state: Mutex::new(ScopeState {
                entry,
                written: None,
            }),
        })
    }

    /// Runs `request` with this scope, so the store's writes on its behalf are audited.
    pub async fn run<F: Future>(self: Arc<Self>, request: F) -> F::Output {
        SCOPE.scope(self, request).await
    }

    fn with<T>(&self, f: impl FnOnce(&mut ScopeState) -> T) -> T {
        f(&mut self.state.lock().expect("audit scope lock"))
    }
}

/// Changes the current request's row, if there is one.
fn update(f: impl FnOnce(&mut AuditEntry)) {
    let _ = SCOPE.try_with(|scope| scope.with(|state| f(&mut state.entry)));
}

/// The token the current request was authenticated with.
pub fn note_principal(token_id: &str, token_name: &str, role: &str) {
    update(|entry| {
        token_id.clone_into(&mut entry.token_id);
        token_name.clone_into(&mut entry.token_name);
        role.clone_into(&mut entry.role);
    });
}

/// The user name a login request gave.
pub fn note_user(user_name: &str) {
    update(|entry| user_name.clone_into(&mut entry.user_name));
}

/// The task the current request created.
pub(super) fn note_task(task_id: &str) {
    update(|entry| entry.task_id = Some(task_id.to_owned()));
}

/// The current request's row as it stands (who, from where), for the actions it takes.
pub(super) fn current() -> Option<AuditEntry> {
    SCOPE
        .try_with(|scope| scope.with(|state| state.entry.clone()))
        .ok()
}

/// The current request's row, if it has one that no committed transaction holds yet.
pub(super) fn unwritten() -> Option<AuditEntry> {
    SCOPE
        .try_with(|scope| scope.with(|state| state.written.is_none().then(|| state.entry.clone())))
        .ok()
        .flatten()
}

/// The transaction that inserted row `seq` committed.
pub(super) fn committed(seq: Option<i64>) {
    if let Some(seq) = seq {
        let _ = SCOPE.try_with(|scope| scope.with(|state| state.written = Some(seq)));
    }
}

/// Inserts the current request's row in an open transaction of either backend, first thing,
/// and evaluates to its seq (`None` outside a request, or once a transaction holds it). A
/// macro because the query is built for the connection's own driver.
macro_rules! open_row {
    ($conn:expr) => {{
        match $crate::store::audit::unwritten() {
            None => None,
            Some(entry) => Some($crate::store::audit::insert_row!($conn, &entry)?),
        }
    }};
}
pub(crate) use open_row;

macro_rules! insert_row {
    ($conn:expr, $entry:expr) => {{
        let entry: &$crate::store::audit::AuditEntry = $entry;
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO audit (ts_ms, token_id, token_name, role, user_name, client_addr, \
             method, path, status, ref_id, task_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING seq",
        )
        .bind(entry.ts_ms)
        .bind(&entry.token_id)
        .bind(&entry.token_name)
        .bind(&entry.role)
        .bind(&entry.user_name)
        .bind(&entry.client_addr)
        .bind(&entry.method)
        .bind(&entry.path)
        .bind(entry.status.map(i32::from))
        .bind(&entry.ref_id)
        .bind(&entry.task_id)
        .fetch_one($conn)
        .await
    }};
}
pub(crate) use insert_row;

/// What `GET /api/v1/audit` asks for.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub ref_id: Option<String>,
    pub limit: u32,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    ts_ms: i64,
    token_id: String,
    token_name: String,
    role: String,
    user_name: String,
    client_addr: String,
    method: String,
    path: String,
    status: Option<i32>,
    ref_id: String,
    task_id: Option<String>,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> AuditEntry {
        AuditEntry {
            seq: row.seq,
            ts_ms: row.ts_ms,
            token_id: row.token_id,
            token_name: row.token_name,
            role: row.role,
            user_name: row.user_name,
            client_addr: row.client_addr,
            method: row.method,
            path: row.path,
            status: row.status.and_then(|s| u16::try_from(s).ok()),
            ref_id: row.ref_id,
            task_id: row.task_id,
        }
    }
}

/// The path whose failures count towards login throttling.
pub const LOGIN_PATH: &str = "/api/v1/auth/local/login";

impl Store {
    /// Settles the current request's row once it is answered: the status (and task) on the row
    /// its change committed with, or a whole row when nothing committed one.
    pub async fn finish_audit(&self, scope: &AuditScope, status: u16) -> StoreResult<()> {
        let (mut entry, written) = scope.with(|state| (state.entry.clone(), state.written));
        entry.status = Some(status);
        in_write_tx!(self, |tx| {
            match written {
                Some(seq) => {
                    sqlx::query("UPDATE audit SET status = $1, task_id = $2 WHERE seq = $3")
                        .bind(i32::from(status))
                        .bind(&entry.task_id)
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                }
                None => {
                    insert_row!(&mut *tx, &entry)?;
                }
            }
            Ok(())
        })
    }

    /// Newest first.
    pub async fn audit_entries(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = on_reader!(self, |pool| {
            sqlx::query_as(
                "SELECT seq, ts_ms, token_id, token_name, role, user_name, client_addr, method, \
                 path, status, ref_id, task_id FROM audit \
                 WHERE ($1 IS NULL OR ts_ms >= $1) AND ($2 IS NULL OR ts_ms < $2) \
                 AND ($3 IS NULL OR ref_id = $3) ORDER BY seq DESC LIMIT $4",
            )
            .bind(query.since_ms)
            .bind(query.until_ms)
            .bind(&query.ref_id)
            .bind(i64::from(query.limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// When the most recent `count` failed logins (401) since `since_ms` began, for the user
    /// name and for the address: newest first, at most `count` of each.
    pub async fn recent_login_failures(
        &self,
        user_name: &str,
        client_addr: &str,
        since_ms: i64,
        count: u32,
    ) -> StoreResult<(Vec<i64>, Vec<i64>)> {
        const BY_USER: &str = "SELECT ts_ms FROM audit WHERE user_name = $1 AND path = $2 \
             AND status = 401 AND ts_ms > $3 ORDER BY ts_ms DESC LIMIT $4";
        const BY_ADDR: &str = "SELECT ts_ms FROM audit WHERE client_addr = $1 AND path = $2 \
             AND status = 401 AND ts_ms > $3 ORDER BY ts_ms DESC LIMIT $4";
        let mut found = Vec::new();
        for (sql, value) in [(BY_USER, user_name), (BY_ADDR, client_addr)] {
            let times: Vec<i64> = on_reader!(self, |pool| {
                sqlx::query_scalar(sql)
                    .bind(value)
                    .bind(LOGIN_PATH)
                    .bind(since_ms)
                    .bind(i64::from(count))
                    .fetch_all(pool)
                    .await?
            });
            found.push(times);
        }
        let by_addr = found.pop().unwrap_or_default();
        let by_user = found.pop().unwrap_or_default();
        Ok((by_user, by_addr))
    }

    /// Forgets audit rows older than `before_ms`; returns how many.
    pub async fn prune_audit(&self, before_ms: i64) -> StoreResult<u64> {
        in_write_tx!(self, |tx| {
            Ok(sqlx::query("DELETE FROM audit WHERE ts_ms < $1")
                .bind(before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected())
        })
    }
}
