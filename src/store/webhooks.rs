//! Webhook endpoints, their delivery cursors and their delivery attempts.
//!
//! Each endpoint reads the event log in order from its cursor (`delivered_seq`): an event is
//! delivered until an attempt succeeds, and only then does the cursor move past it, so events
//! reach an endpoint in order, each until one 2xx. One replica at a time delivers to an
//! endpoint, under a lease; every write of a delivery is fenced on that lease, and extends it.

use super::{Store, StoreError, StoreResult, corrupt, in_write_tx, on_reader};
use crate::model::EventType;

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookRecord {
    pub id: String,
    pub url: String,
    pub event_types: Vec<EventType>,
    pub description: String,
    /// `whsec_…`: the key deliveries are signed with (kept, since signing needs it).
    pub secret: String,
    pub created_ts: i64,
    /// Every event up to this id has been delivered to the endpoint, or did not match.
    pub delivered_seq: i64,
    /// Failed attempts at the event after the cursor.
    pub attempts: i64,
    /// No attempt before this time (unix ms).
    pub next_attempt_ms: i64,
}

/// One attempt to deliver an event.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryRecord {
    pub webhook_id: String,
    pub event_seq: i64,
    pub attempt: i64,
    pub ts_ms: i64,
    /// The endpoint's HTTP status; `None` when it did not answer.
    pub status: Option<i64>,
    /// Why the attempt failed (empty when it succeeded).
    pub error: String,
    pub duration_ms: i64,
}

impl DeliveryRecord {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: String,
    url: String,
    event_types: String,
    description: String,
    secret: String,
    created_ts: i64,
    delivered_seq: i64,
    attempts: i64,
    next_attempt_ms: i64,
}

impl TryFrom<WebhookRow> for WebhookRecord {
    type Error = StoreError;

    fn try_from(row: WebhookRow) -> StoreResult<WebhookRecord> {
        Ok(WebhookRecord {
            event_types: serde_json::from_str(&row.event_types)
                .map_err(|e| corrupt("webhooks", &row.id, e))?,
            id: row.id,
            url: row.url,
            description: row.description,
            secret: row.secret,
            created_ts: row.created_ts,
            delivered_seq: row.delivered_seq,
            attempts: row.attempts,
            next_attempt_ms: row.next_attempt_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    webhook_id: String,
    event_seq: i64,
    attempt: i64,
    ts_ms: i64,
    status: Option<i64>,
    error: String,
    duration_ms: i64,
}

/// Endpoints ready for `$1` (an owner) at `$2` (unix ms): due, free or already theirs, and
/// with events after their cursor.
macro_rules! due_for_owner {
    () => {
        "next_attempt_ms <= $2 \
         AND (lease_owner IS NULL OR lease_owner = $1 OR lease_expires_ms < $2) \
         AND EXISTS (SELECT 1 FROM events WHERE seq > webhooks.delivered_seq)"
    };
}

macro_rules! webhook_columns {
    () => {
        "id, url, event_types, description, secret, created_ts, delivered_seq, attempts, \
         next_attempt_ms"
    };
}

impl Store {
    /// Stores a new endpoint; it is sent the events that come after this moment.
    pub async fn insert_webhook(&self, webhook: &WebhookRecord) -> StoreResult<WebhookRecord> {
        let types = serde_json::to_string(&webhook.event_types)
            .map_err(|e| corrupt("webhooks", &webhook.id, e))?;
        in_write_tx!(self, |tx| {
            let row: WebhookRow = sqlx::query_as(concat!(
                "INSERT INTO webhooks (id, url, event_types, description, secret, created_ts, \
                 delivered_seq) VALUES ($1, $2, $3, $4, $5, $6, \
                 (SELECT COALESCE(MAX(seq), 0) FROM events)) RETURNING ",
                webhook_columns!()
            ))
            .bind(&webhook.id)
            .bind(&webhook.url)
            .bind(&types)
            .bind(&webhook.description)
            .bind(&webhook.secret)
            .bind(webhook.created_ts)
            .fetch_one(&mut *tx)
            .await?;
            WebhookRecord::try_from(row)
        })
    }

    pub async fn list_webhooks(&self) -> StoreResult<Vec<WebhookRecord>> {
        let sql = concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks ORDER BY created_ts, id"
        );
        let rows: Vec<WebhookRow> =
            on_reader!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        rows.into_iter().map(WebhookRecord::try_from).collect()
    }

    pub async fn get_webhook(&self, id: &str) -> StoreResult<Option<WebhookRecord>> {
        let sql = concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks WHERE id = $1"
        );
        let row: Option<WebhookRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        });
        row.map(WebhookRecord::try_from).transpose()
    }

    /// Deletes an endpoint and its delivery history; false when there is none.
    pub async fn delete_webhook(&self, id: &str) -> StoreResult<bool> {
        in_write_tx!(self, |tx| {
            sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(deleted > 0)
        })
    }

    /// The newest `limit` attempts to deliver to an endpoint, newest first.
    pub async fn webhook_deliveries(
        &self,
        webhook_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let rows: Vec<DeliveryRow> = on_reader!(self, |pool| {
            sqlx::query_as(
                "SELECT webhook_id, event_seq, attempt, ts_ms, status, error, duration_ms \
                 FROM webhook_deliveries WHERE webhook_id = $1 \
                 ORDER BY ts_ms DESC, event_seq DESC, attempt DESC LIMIT $2",
            )
            .bind(webhook_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| DeliveryRecord {
                webhook_id: r.webhook_id,
                event_seq: r.event_seq,
                attempt: r.attempt,
                ts_ms: r.ts_ms,
                status: r.status,
                error: r.error,
                duration_ms: r.duration_ms,
            })
            .collect())
    }

    /// Whether [`Store::claim_due_webhooks`] would find anything: a read, so replicas with
    /// nothing to deliver write nothing.
    pub async fn has_due_webhooks(&self, owner: &str, now_ms: i64) -> StoreResult<bool> {
        let due: Option<String> = on_reader!(self, |pool| {
            sqlx::query_scalar(concat!(
                "SELECT id FROM webhooks WHERE ",
                due_for_owner!(),
                " LIMIT 1"
            ))
            .bind(owner)
            .bind(now_ms)
            .fetch_optional(pool)
            .await?
        });
        Ok(due.is_some())
    }

    /// Takes the lease on endpoints that have events after their cursor and are due, for
    /// `lease_ms`. An endpoint `owner` already holds is renewed.
    pub async fn claim_due_webhooks(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<WebhookRecord>> {
        in_write_tx!(self, |tx| {
            let rows: Vec<WebhookRow> = sqlx::query_as(concat!(
                "UPDATE webhooks SET lease_owner = $1, lease_expires_ms = $3 WHERE ",
                due_for_owner!(),
                " RETURNING ",
                webhook_columns!()
            ))
            .bind(owner)
            .bind(now_ms)
            .bind(now_ms + lease_ms)
            .fetch_all(&mut *tx)
            .await?;
            rows.into_iter().map(WebhookRecord::try_from).collect()
        })
    }

    /// Moves an endpoint's cursor over events it does not subscribe to. False when `owner`
    /// lost the lease (stop delivering).
    pub async fn skip_webhook_events(
        &self,
        webhook_id: &str,
        owner: &str,
        to_seq: i64,
    ) -> StoreResult<bool> {
        in_write_tx!(self, |tx| {
            let moved = sqlx::query(
                "UPDATE webhooks SET delivered_seq = $3 \
                 WHERE id = $1 AND lease_owner = $2 AND delivered_seq < $3",
            )
            .bind(webhook_id)
            .bind(owner)
            .bind(to_seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok(moved > 0)
        })
    }

    /// Records an attempt and its consequence in one transaction, fenced on `owner`'s lease
    /// (which it extends by `lease_ms`): a success moves the cursor past the event; a failure
    /// counts it and sets when to try again. False when the lease was lost.
    pub async fn record_webhook_attempt(
        &self,
        delivery: &DeliveryRecord,
        owner: &str,
        retry_at_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        in_write_tx!(self, |tx| {
            let updated = if delivery.succeeded() {
                sqlx::query(
                    "UPDATE webhooks SET delivered_seq = $3, attempts = 0, next_attempt_ms = 0, \
                     lease_expires_ms = $4 WHERE id = $1 AND lease_owner = $2",
                )
                .bind(&delivery.webhook_id)
                .bind(owner)
                .bind(delivery.event_seq)
                .bind(delivery.ts_ms + lease_ms)
                .execute(&mut *tx)
                .await?
            } else {
                sqlx::query(
                    "UPDATE webhooks SET attempts = attempts + 1, next_attempt_ms = $3, \
                     lease_owner = NULL, lease_expires_ms = 0 \
                     WHERE id = $1 AND lease_owner = $2",
                )
                .bind(&delivery.webhook_id)
                .bind(owner)
                .bind(retry_at_ms)
                .execute(&mut *tx)
                .await?
            }
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO webhook_deliveries (webhook_id, event_seq, attempt, ts_ms, status, \
                 error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&delivery.webhook_id)
            .bind(delivery.event_seq)
            .bind(delivery.attempt)
            .bind(delivery.ts_ms)
            .bind(delivery.status)
            .bind(&delivery.error)
            .bind(delivery.duration_ms)
            .execute(&mut *tx)
            .await?;
            Ok(true)
        })
    }

    /// Gives back the leases `owner` holds (nothing left to deliver, or shutting down).
    pub async fn release_webhook(&self, webhook_id: &str, owner: &str) -> StoreResult<()> {
        in_write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE webhooks SET lease_owner = NULL, lease_expires_ms = 0 \
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(webhook_id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }
}
