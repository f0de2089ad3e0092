//! Tokens at rest: only their SHA-256 hashes are stored; see `crate::auth` for how they are
//! minted and checked.

use super::{Store, StoreResult, in_write_tx, on_reader};
use crate::clock::now_ts;

crate::wire_enum! {
    /// What a token authenticates.
    pub enum TokenKind ("token kind") {
        /// The bootstrap administrator token.
        Admin = "admin",
        /// A named token for a pipeline or application (`/api/v2/flex_app_tokens`).
        App = "app",
        /// Issued by `POST /api/v1/auth/local/login`, expires after 7 days.
        Session = "session",
        /// Authenticates one host's agent on the agent channel, and nothing else.
        Host = "host",
    }
}

crate::wire_enum! {
    /// What an API token may do; each role may do all that the ones before it may.
    pub enum Role ("role") {
        /// Reads and dry runs.
        Viewer = "viewer",
        /// Also the Echo operations: snapshot, clone, refresh, delete, abort, keep-alive.
        Operator = "operator",
        /// Also hosts, tokens, webhooks, schedules and the audit trail.
        Admin = "admin",
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TokenRecord {
    pub id: String,
    pub kind: TokenKind,
    pub role: Role,
    pub host_id: Option<String>,
    pub app_name: String,
    pub description: String,
    pub token_hash: String,
    pub created_ts: i64,
    pub ttl: Option<i64>,
    pub expire_ts: Option<i64>,
}

impl TokenRecord {
    pub fn is_expired(&self, now: i64) -> bool {
        self.expire_ts.is_some_and(|expire| expire <= now)
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    kind: String,
    role: String,
    host_id: Option<String>,
    app_name: String,
    description: String,
    token_hash: String,
    created_ts: i64,
    ttl: Option<i64>,
    expire_ts: Option<i64>,
}

impl TryFrom<TokenRow> for TokenRecord {
    type Error = super::StoreError;

    fn try_from(row: TokenRow) -> StoreResult<TokenRecord> {
        Ok(TokenRecord {
            kind: row
                .kind
                .parse()
                .map_err(|e: crate::model::UnknownValue| super::corrupt("tokens", &row.id, e))?,
            role: row
                .role
                .parse()
                .map_err(|e: crate::model::UnknownValue| super::corrupt("tokens", &row.id, e))?,
            id: row.id,
            host_id: row.host_id,
            app_name: row.app_name,
            description: row.description,
            token_hash: row.token_hash,
            created_ts: row.created_ts,
            ttl: row.ttl,
            expire_ts: row.expire_ts,
        })
    }
}

macro_rules! token_columns {
    () => {
        "id, kind, role, host_id, app_name, description, token_hash, created_ts, ttl, expire_ts"
    };
}

/// Inserts a token on an open connection or transaction of either backend (a macro because the
/// query must be built for the connection's own driver).
macro_rules! insert_token_on {
    ($conn:expr, $token:expr) => {{
        let token: &$crate::store::TokenRecord = $token;
        sqlx::query(
            "INSERT INTO tokens (id, kind, role, host_id, app_name, description, token_hash, \
             created_ts, ttl, expire_ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&token.id)
        .bind(token.kind.as_str())
        .bind(token.role.as_str())
        .bind(&token.host_id)
        .bind(&token.app_name)
        .bind(&token.description)
        .bind(&token.token_hash)
        .bind(token.created_ts)
        .bind(token.ttl)
        .bind(token.expire_ts)
        .execute($conn)
        .await
        .map(|_| ())
    }};
}
pub(super) use insert_token_on;

impl Store {
    pub async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()> {
        let inserted = in_write_tx!(self, |tx| Ok(insert_token_on!(&mut *tx, token)?));
        self.tokens_seen.forget_all();
        inserted
    }

    /// Stores `token` as the administrator token, replacing any earlier one.
    pub async fn replace_admin_token(&self, token: &TokenRecord) -> StoreResult<()> {
        let replaced = in_write_tx!(self, |tx| {
            sqlx::query("DELETE FROM tokens WHERE kind = 'admin'")
                .execute(&mut *tx)
                .await?;
            Ok(insert_token_on!(&mut *tx, token)?)
        });
        self.tokens_seen.forget_all();
        replaced
    }

    pub async fn has_admin_token(&self) -> StoreResult<bool> {
        let count: i64 = on_reader!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE kind = 'admin'")
                .fetch_one(pool)
                .await?
        });
        Ok(count > 0)
    }

    /// The token with this id: from memory when this replica read it within the last second
    /// and wrote no token since (`token_cache`), else from the database.
    pub async fn find_token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        if let Some(seen) = self.tokens_seen.get(id) {
            return Ok(Some(seen));
        }
        let generation = self.tokens_seen.generation();
        let sql = concat!("SELECT ", token_columns!(), " FROM tokens WHERE id = $1");
        let row: Option<TokenRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        });
        let record = row.map(TokenRecord::try_from).transpose()?;
        if let Some(record) = &record {
            self.tokens_seen.keep(id, record, generation);
        }
        Ok(record)
    }

    pub async fn list_app_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let sql = concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE kind = 'app' ORDER BY created_ts, id"
        );
        let rows: Vec<TokenRow> =
            on_reader!(self, |pool| { sqlx::query_as(sql).fetch_all(pool).await? });
        rows.into_iter().map(TokenRecord::try_from).collect()
    }

    /// Revokes an app token. Returns false when there was none with that id.
    pub async fn delete_app_token(&self, id: &str) -> StoreResult<bool> {
        let deleted = in_write_tx!(self, |tx| {
            let deleted = sqlx::query("DELETE FROM tokens WHERE id = $1 AND kind = 'app'")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(deleted > 0)
        });
        self.tokens_seen.forget_all();
        deleted
    }

    /// Drops login sessions that have expired; called opportunistically at login.
    pub async fn purge_expired_sessions(&self) -> StoreResult<u64> {
        let now = now_ts();
        let purged = in_write_tx!(self, |tx| {
            let purged = sqlx::query(
                "DELETE FROM tokens WHERE kind = 'session' AND expire_ts IS NOT NULL \
                 AND expire_ts <= $1",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok(purged)
        });
        self.tokens_seen.forget_all();
        purged
    }
}
