//! What the agent channel keeps: a host's reported facts and liveness, and the outbox of
//! commands to agents with their replies.

use super::{
    Store, StoreError, StoreResult, corrupt,
    events::{EventSubject, record_event},
    hosts::fetch_host,
    in_write_tx, on_reader,
};
use crate::{
    clock::now_ts,
    model::{EventType, HostFacts, SdpHostName},
};

crate::wire_enum! {
    /// Where a command in the outbox stands.
    pub enum OutboxState ("agent command state") {
        /// Waiting to be sent by the replica holding the host's socket.
        Pending = "pending",
        /// Sent, waiting for the reply.
        Delivered = "delivered",
        /// Replied to: the reply is stored.
        Done = "done",
        /// Its deadline passed without a reply; never delivered late.
        Expired = "expired",
    }
}

/// Host facts an agent reports in `hello`.
#[derive(Clone, Debug, Default)]
pub struct AgentFacts {
    pub host_name: String,
    pub host_iqn: String,
    pub host_os: String,
    pub host_os_version: String,
    pub agent_version: String,
    pub cloud_vendor: String,
    pub db_engine_version: String,
    /// Further facts (vm_id, cidrs, …).
    pub facts: HostFacts,
}

/// One command in the outbox: the wire command (its name and JSON arguments, typed by the
/// protocol at both ends) and how its delivery stands.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentCommandRecord {
    pub id: String,
    pub host_id: String,
    pub name: String,
    /// JSON object.
    pub args: String,
    pub ref_id: String,
    pub state: OutboxState,
    /// The agent's reply as JSON (`{"ok": …, "result"|"error": …}`), once it came.
    pub reply: Option<String>,
    pub created_ms: i64,
    pub deadline_ms: i64,
    pub delivered_count: i64,
    pub replied_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct CommandRow {
    id: String,
    host_id: String,
    name: String,
    args: String,
    ref_id: String,
    state: String,
    reply: Option<String>,
    created_ms: i64,
    deadline_ms: i64,
    delivered_count: i64,
    replied_ms: Option<i64>,
}

impl TryFrom<CommandRow> for AgentCommandRecord {
    type Error = StoreError;

    fn try_from(row: CommandRow) -> StoreResult<AgentCommandRecord> {
        Ok(AgentCommandRecord {
            state: row
                .state
                .parse()
                .map_err(|e: crate::model::UnknownValue| corrupt("agent_commands", &row.id, e))?,
            id: row.id,
            host_id: row.host_id,
            name: row.name,
            args: row.args,
            ref_id: row.ref_id,
            reply: row.reply,
            created_ms: row.created_ms,
            deadline_ms: row.deadline_ms,
            delivered_count: row.delivered_count,
            replied_ms: row.replied_ms,
        })
    }
}

macro_rules! command_columns {
    () => {
        "c.id, c.host_id, c.name, c.args, c.ref_id, c.state, c.reply, c.created_ms, \
         c.deadline_ms, c.delivered_count, c.replied_ms"
    };
}

impl Store {
    /// Records an agent's `hello`: its facts, and that `instance` now holds its socket.
    /// Returns false when the host is not registered (any more).
    pub async fn record_agent_hello(
        &self,
        host_id: &str,
        instance: &str,
        facts: &AgentFacts,
    ) -> StoreResult<bool> {
        let now = now_ts();
        // A hello replaces the agent's facts; the SDP host names come back with its inventory.
        let stored = super::hosts::StoredFacts {
            facts: facts.facts.clone(),
            sdps: Vec::new(),
        };
        let facts_json =
            serde_json::to_string(&stored).map_err(|e| corrupt("hosts", host_id, e))?;
        let postgres = self.is_postgres();
        let updated = in_write_tx!(self, |tx| {
            let updated = sqlx::query(
                "UPDATE hosts SET host_name = $2, host_iqn = $3, host_os = $4, \
                 host_os_version = $5, agent_version = $6, cloud_vendor = $7, \
                 db_engine_version = $8, facts = $9, connected_by = $10, last_seen_ts = $11 \
                 WHERE host_id = $1",
            )
            .bind(host_id)
            .bind(&facts.host_name)
            .bind(&facts.host_iqn)
            .bind(&facts.host_os)
            .bind(&facts.host_os_version)
            .bind(&facts.agent_version)
            .bind(&facts.cloud_vendor)
            .bind(&facts.db_engine_version)
            .bind(&facts_json)
            .bind(instance)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if let Some(host) = fetch_host!(tx, host_id) {
                let subject = EventSubject::Host(host);
                record_event!(tx, postgres, EventType::HostConnected, "", subject);
            }
            Ok(updated > 0)
        })?;
        if updated {
            self.announce_events();
        }
        Ok(updated)
    }

    /// Stores which SDPs know this host (their host object names) in its facts.
    pub async fn record_host_sdps(&self, host_id: &str, sdps: &[SdpHostName]) -> StoreResult<()> {
        in_write_tx!(self, |tx| {
            let facts: Option<String> =
                sqlx::query_scalar("SELECT facts FROM hosts WHERE host_id = $1")
                    .bind(host_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(facts) = facts else {
                return Ok(());
            };
            let mut facts: super::hosts::StoredFacts =
                serde_json::from_str(&facts).map_err(|e| corrupt("hosts", host_id, e))?;
            facts.sdps = sdps.to_vec();
            let facts = serde_json::to_string(&facts).map_err(|e| corrupt("hosts", host_id, e))?;
            sqlx::query("UPDATE hosts SET facts = $2 WHERE host_id = $1")
                .bind(host_id)
                .bind(facts)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    /// The agent spoke: refresh `last_seen_ts` (only while `instance` holds its socket).
    pub async fn touch_agent(&self, host_id: &str, instance: &str) -> StoreResult<bool> {
        let now = now_ts();
        in_write_tx!(self, |tx| {
            let updated = sqlx::query(
                "UPDATE hosts SET last_seen_ts = $3 WHERE host_id = $1 AND connected_by = $2",
            )
            .bind(host_id)
            .bind(instance)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok(updated > 0)
        })
    }

    /// The socket held by `instance` closed. A newer socket on another replica is left alone.
    pub async fn record_agent_disconnect(&self, host_id: &str, instance: &str) -> StoreResult<()> {
        let postgres = self.is_postgres();
        let cleared = in_write_tx!(self, |tx| {
            let cleared = sqlx::query(
                "UPDATE hosts SET connected_by = NULL WHERE host_id = $1 AND connected_by = $2",
            )
            .bind(host_id)
            .bind(instance)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if cleared > 0
                && let Some(host) = fetch_host!(tx, host_id)
            {
                let subject = EventSubject::Host(host);
                record_event!(tx, postgres, EventType::HostDisconnected, "", subject);
            }
            Ok(cleared > 0)
        })?;
        if cleared {
            self.announce_events();
        }
        Ok(())
    }

    /// At start, a replica holds no socket: forget any it held before it stopped.
    pub async fn forget_agent_connections(&self, instance: &str) -> StoreResult<u64> {
        let postgres = self.is_postgres();
        let cleared = in_write_tx!(self, |tx| {
            let cleared: Vec<String> = sqlx::query_scalar(
                "UPDATE hosts SET connected_by = NULL WHERE connected_by = $1 RETURNING host_id",
            )
            .bind(instance)
            .fetch_all(&mut *tx)
            .await?;
            for host_id in &cleared {
                if let Some(host) = fetch_host!(tx, host_id) {
                    let subject = EventSubject::Host(host);
                    record_event!(tx, postgres, EventType::HostDisconnected, "", subject);
                }
            }
            Ok(cleared.len() as u64)
        })?;
        if cleared > 0 {
            self.announce_events();
        }
        Ok(cleared)
    }

    /// Enqueues a command. Its id is deterministic, so enqueuing the same command again (a
    /// retried step, a restarted executor) returns the existing row instead of a duplicate.
    /// A command that expired unanswered is revived with the new deadline: the retry must
    /// reach the host again (which answers from memory if it acted the first time).
    pub async fn enqueue_agent_command(
        &self,
        command: &AgentCommandRecord,
    ) -> StoreResult<AgentCommandRecord> {
        in_write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO agent_commands (id, host_id, name, args, ref_id, state, reply, \
                 created_ms, deadline_ms, delivered_count, replied_ms) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', NULL, $6, $7, 0, NULL) \
                 ON CONFLICT (id) DO UPDATE SET state = 'pending', deadline_ms = $7 \
                 WHERE agent_commands.state = 'expired'",
            )
            .bind(&command.id)
            .bind(&command.host_id)
            .bind(&command.name)
            .bind(&command.args)
            .bind(&command.ref_id)
            .bind(command.created_ms)
            .bind(command.deadline_ms)
            .execute(&mut *tx)
            .await?;
            let stored: CommandRow = sqlx::query_as(concat!(
                "SELECT ",
                command_columns!(),
                " FROM agent_commands c WHERE c.id = $1"
            ))
            .bind(&command.id)
            .fetch_one(&mut *tx)
            .await?;
            AgentCommandRecord::try_from(stored)
        })
    }

    pub async fn get_agent_command(&self, id: &str) -> StoreResult<Option<AgentCommandRecord>> {
        let sql = concat!(
            "SELECT ",
            command_columns!(),
            " FROM agent_commands c WHERE c.id = $1"
        );
        let row: Option<CommandRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        });
        row.map(AgentCommandRecord::try_from).transpose()
    }

    /// Which of these commands have a reply (or ended without one): one query for all the
    /// commands a replica waits on, whichever replica received the replies.
    pub async fn settled_agent_commands(&self, ids: &[String]) -> StoreResult<Vec<String>> {
        let mut settled = Vec::new();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT id FROM agent_commands WHERE state IN ('done', 'expired') AND id IN ({})",
                placeholders.join(", ")
            );
            let found: Vec<String> = on_reader!(self, |pool| {
                let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()));
                for id in chunk {
                    query = query.bind(id);
                }
                query.fetch_all(pool).await?
            });
            settled.extend(found);
        }
        Ok(settled)
    }

    /// Commands not yet sent whose host's socket `instance` holds.
    pub async fn undelivered_commands_for(
        &self,
        instance: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<AgentCommandRecord>> {
        let sql = concat!(
            "SELECT ",
            command_columns!(),
            " FROM agent_commands c JOIN hosts h ON h.host_id = c.host_id \
             WHERE c.state = 'pending' AND h.connected_by = $1 AND c.deadline_ms > $2 \
             ORDER BY c.created_ms, c.id"
        );
        let rows: Vec<CommandRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(instance)
                .bind(now_ms)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(AgentCommandRecord::try_from).collect()
    }

    /// Commands of a host still waiting for a reply (sent or not): what a reconnecting agent
    /// is given again.
    pub async fn unanswered_commands_of(
        &self,
        host_id: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<AgentCommandRecord>> {
        let sql = concat!(
            "SELECT ",
            command_columns!(),
            " FROM agent_commands c \
             WHERE c.host_id = $1 AND c.state IN ('pending', 'delivered') AND c.deadline_ms > $2 \
             ORDER BY c.created_ms, c.id"
        );
        let rows: Vec<CommandRow> = on_reader!(self, |pool| {
            sqlx::query_as(sql)
                .bind(host_id)
                .bind(now_ms)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(AgentCommandRecord::try_from).collect()
    }

    /// Takes a pending command for sending. Only one deliverer wins, so a command is not sent
    /// twice on one connection by two paths.
    pub async fn claim_agent_command(&self, id: &str) -> StoreResult<bool> {
        in_write_tx!(self, |tx| {
            let claimed = sqlx::query(
                "UPDATE agent_commands SET state = 'delivered', \
                 delivered_count = delivered_count + 1 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok(claimed > 0)
        })
    }

    /// Counts a delivery of a command still waiting for its reply (a reconnect re-sends it).
    pub async fn count_agent_command_redelivery(&self, id: &str) -> StoreResult<()> {
        in_write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE agent_commands SET state = 'delivered', \
                 delivered_count = delivered_count + 1 \
                 WHERE id = $1 AND state IN ('pending', 'delivered')",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    /// Stores an agent's reply. The first reply wins; a repeated one returns false. A reply to
    /// an expired command is dropped: a retried call revives the command, and the host, which
    /// keeps its replies, answers that one from memory.
    pub async fn store_agent_reply(&self, id: &str, reply: &str, now_ms: i64) -> StoreResult<bool> {
        in_write_tx!(self, |tx| {
            let stored = sqlx::query(
                "UPDATE agent_commands SET state = 'done', reply = $2, replied_ms = $3 \
                 WHERE id = $1 AND state IN ('pending', 'delivered')",
            )
            .bind(id)
            .bind(reply)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok(stored > 0)
        })
    }

    /// Gives up on a command whose deadline passed, so it is never delivered late.
    pub async fn expire_agent_command(&self, id: &str) -> StoreResult<bool> {
        in_write_tx!(self, |tx| {
            let expired = sqlx::query(
                "UPDATE agent_commands SET state = 'expired' \
                 WHERE id = $1 AND state IN ('pending', 'delivered')",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            Ok(expired > 0)
        })
    }
}
