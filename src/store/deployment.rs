//! Which deployment this database is (see the `deployment` migration), and the audited
//! actions reconcile takes on the array and the ledger.

use super::{Store, StoreResult, audit, in_write_tx, on_reader};
use crate::{clock::now_ms, model::LedgerKind};

/// How long a deployment tag is: 36^6 ≈ 2·10⁹ values, so two deployments on one array
/// sharing a tag is not a practical concern.
pub const TAG_LEN: usize = 6;

/// A random tag of lowercase letters and digits.
fn new_tag() -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut bits = uuid::Uuid::new_v4().as_u128();
    (0..TAG_LEN)
        .map(|_| {
            let digit = DIGITS[(bits % 36) as usize];
            bits /= 36;
            char::from(digit)
        })
        .collect()
}

/// This deployment: its tag, and since when Flex has put it into the names it makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub tag: String,
    pub tagged_since_ms: i64,
}

impl Store {
    /// This database's deployment, made at its first start. Replicas sharing a database
    /// race to make it; the first one's stands and all read it.
    pub async fn deployment(&self) -> StoreResult<Deployment> {
        let tag = new_tag();
        let now = now_ms();
        in_write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO deployment (id, tag, tagged_since_ms) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&tag)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })?;
        let (tag, tagged_since_ms): (String, i64) = on_reader!(self, |pool| {
            sqlx::query_as("SELECT tag, tagged_since_ms FROM deployment WHERE id = 1")
                .fetch_one(pool)
                .await?
        });
        Ok(Deployment {
            tag,
            tagged_since_ms,
        })
    }

    /// Records, as an action of the current request in the audit trail, that reconcile did
    /// `method` to `path` (an SDP object, `sdp:/volumes/7`) and the array answered `status`.
    pub async fn audit_action(&self, method: &str, path: &str, status: u16) -> StoreResult<()> {
        let Some(mut entry) = audit::current() else {
            return Ok(());
        };
        entry.ts_ms = now_ms();
        method.clone_into(&mut entry.method);
        path.clone_into(&mut entry.path);
        entry.status = Some(status);
        entry.task_id = None;
        in_write_tx!(self, |tx| {
            audit::insert_row!(&mut *tx, &entry)?;
            Ok(())
        })
    }

    /// Settles a ledger row whose object the array no longer has, as an audited action of the
    /// current request, in one transaction. False when the row was settled already.
    pub async fn ledger_settle(&self, kind: LedgerKind, sdp_id: u64) -> StoreResult<bool> {
        let now = now_ms();
        let action = audit::current().map(|mut entry| {
            entry.ts_ms = now;
            "SETTLE".clone_into(&mut entry.method);
            entry.path = format!("ledger:/{kind}/{sdp_id}");
            entry.status = Some(200);
            entry.task_id = None;
            entry
        });
        in_write_tx!(self, |tx| {
            let settled = sqlx::query(
                "UPDATE sdp_ledger SET deleted_ms = $3 \
                 WHERE kind = $1 AND sdp_id = $2 AND deleted_ms IS NULL",
            )
            .bind(kind.as_str())
            .bind(i64::try_from(sdp_id).unwrap_or(i64::MAX))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if settled && let Some(entry) = &action {
                audit::insert_row!(&mut *tx, entry)?;
            }
            Ok(settled)
        })
    }
}
