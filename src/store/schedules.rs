//! Snapshot schedules: what to snapshot, how often, how many of its snapshots to keep, and
//! when it runs next. A due run is started through [`Store::create_task`] with a
//! `RunsSchedule` guard, which moves `next_run_ts` in the same transaction.

use super::{Store, StoreError, StoreResult, corrupt, in_write_tx, on_reader};
use crate::model::ConsistencyLevel;

/// How often a schedule runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cadence {
    /// Every so many seconds.
    Interval(i64),
    /// A standard 5-field cron expression, in UTC.
    Cron(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleRecord {
    pub id: String,
    pub source_host_id: String,
    pub database_ids: Vec<String>,
    pub cadence: Cadence,
    pub consistency_level: ConsistencyLevel,
    pub name_prefix: String,
    pub keep_last: i64,
    pub next_run_ts: i64,
    pub last_run_ts: Option<i64>,
    pub last_task_id: Option<String>,
    pub created_ts: i64,
}

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    id: String,
    source_host_id: String,
    database_ids: String,
    interval_secs: Option<i64>,
    cron: Option<String>,
    consistency_level: String,
    name_prefix: String,
    keep_last: i64,
    next_run_ts: i64,
    last_run_ts: Option<i64>,
    last_task_id: Option<String>,
    created_ts: i64,
}

impl TryFrom<ScheduleRow> for ScheduleRecord {
    type Error = StoreError;

    fn try_from(row: ScheduleRow) -> StoreResult<ScheduleRecord> {
        let unreadable = |detail: &dyn std::fmt::Display| {
            corrupt("snapshot_schedules", &row.id, detail.to_string())
        };
        let cadence = match (row.interval_secs, &row.cron) {
            (Some(secs), None) => Cadence::Interval(secs),
            (None, Some(cron)) => Cadence::Cron(cron.clone()),
            _ => {
                return Err(unreadable(
                    &"it needs exactly one of interval_secs and cron",
                ));
            }
        };
        Ok(ScheduleRecord {
            database_ids: serde_json::from_str(&row.database_ids).map_err(|e| unreadable(&e))?,
            consistency_level: row
                .consistency_level
                .parse()
                .map_err(|e: crate::model::UnknownValue| unreadable(&e))?,
            cadence,
            id: row.id,
            source_host_id: row.source_host_id,
            name_prefix: row.name_prefix,
            keep_last: row.keep_last,
            next_run_ts: row.next_run_ts,
            last_run_ts: row.last_run_ts,
            last_task_id: row.last_task_id,
            created_ts: row.created_ts,
        })
    }
}

macro_rules! schedule_columns {
    () => {
        "id, source_host_id, database_ids, interval_secs, cron, consistency_level, name_prefix, \
         keep_last, next_run_ts, last_run_ts, last_task_id, created_ts"
    };
}

impl Store {
    pub async fn insert_schedule(&self, s: &ScheduleRecord) -> StoreResult<()> {
        let database_ids = serde_json::to_string(&s.database_ids)
            .map_err(|e| corrupt("snapshot_schedules", &s.id, e))?;
        let (interval, cron) = match &s.cadence {
            Cadence::Interval(secs) => (Some(*secs), None),
            Cadence::Cron(cron) => (None, Some(cron.clone())),
        };
        in_write_tx!(self, |tx| {
            sqlx::query(concat!(
                "INSERT INTO snapshot_schedules (",
                schedule_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ))
            .bind(&s.id)
            .bind(&s.source_host_id)
            .bind(&database_ids)
            .bind(interval)
            .bind(&cron)
            .bind(s.consistency_level.as_str())
            .bind(&s.name_prefix)
            .bind(s.keep_last)
            .bind(s.next_run_ts)
            .bind(s.last_run_ts)
            .bind(&s.last_task_id)
            .bind(s.created_ts)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    pub async fn get_schedule(&self, id: &str) -> StoreResult<Option<ScheduleRecord>> {
        let sql = concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM snapshot_schedules WHERE id = $1"
        );
        let row: Option<ScheduleRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        });
        row.map(ScheduleRecord::try_from).transpose()
    }

    pub async fn list_schedules(&self) -> StoreResult<Vec<ScheduleRecord>> {
        let sql = concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM snapshot_schedules ORDER BY created_ts, id"
        );
        let rows: Vec<ScheduleRow> =
            on_reader!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        rows.into_iter().map(ScheduleRecord::try_from).collect()
    }

    /// The schedules whose next run is due at `now`.
    pub async fn due_schedules(&self, now: i64) -> StoreResult<Vec<ScheduleRecord>> {
        let sql = concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM snapshot_schedules WHERE next_run_ts <= $1 ORDER BY next_run_ts, id"
        );
        let rows: Vec<ScheduleRow> = on_reader!(self, |pool| sqlx::query_as(sql)
            .bind(now)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(ScheduleRecord::try_from).collect()
    }

    /// Deletes a schedule (its snapshots stay); false when there was none.
    pub async fn delete_schedule(&self, id: &str) -> StoreResult<bool> {
        in_write_tx!(self, |tx| {
            let deleted = sqlx::query("DELETE FROM snapshot_schedules WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Ok(deleted > 0)
        })
    }
}
