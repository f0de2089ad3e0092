//! `flex tokens` and `flex audit`: an administrator's view of who may do what, and who did.

use reqwest::Method;
use serde_json::{Value, json};

use super::Context;
use crate::cli::{
    Exit,
    api::{CliError, segment},
    args::{AuditArgs, ReconcileArgs, TokensAction, TokensArgs, wire_name},
    output::{self, items, text, time_secs},
};

pub async fn tokens(ctx: &Context, args: TokensArgs) -> Result<Exit, CliError> {
    let path = "/api/v2/flex_app_tokens";
    match args.action {
        None => {
            let listed = ctx.api.get(path, &[]).await?;
            let rows = items(&listed)
                .iter()
                .map(|token| {
                    vec![
                        text(token, "/id"),
                        text(token, "/app_name"),
                        text(token, "/role"),
                        if token.get("valid") == Some(&Value::Bool(true)) {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                        time_secs(token, "/expire_ts"),
                        text(token, "/description"),
                    ]
                })
                .collect();
            ctx.out.list(
                &listed,
                &["ID", "NAME", "ROLE", "VALID", "EXPIRES", "DESCRIPTION"],
                rows,
            );
        }
        Some(TokensAction::Create {
            name,
            role,
            ttl,
            description,
        }) => {
            let mut body =
                json!({"app_name": name, "role": wire_name(&role), "description": description});
            if let Some(ttl) = ttl {
                body["ttl"] = json!(ttl);
            }
            let created = ctx.api.send(Method::POST, path, Some(&body)).await?;
            if ctx.out.is_json() {
                output::print_json(&created);
            } else {
                println!(
                    "token {} ({}, {}) made",
                    text(&created, "/id"),
                    text(&created, "/app_name"),
                    text(&created, "/role")
                );
                println!("token (shown this once): {}", text(&created, "/token"));
            }
        }
        Some(TokensAction::Rm { id }) => {
            ctx.api
                .send(Method::DELETE, &format!("{path}/{}", segment(&id)), None)
                .await?;
            if ctx.out.is_json() {
                output::print_json(&json!({"id": id, "revoked": true}));
            } else {
                println!("token {id} revoked");
            }
        }
    }
    Ok(Exit::Completed)
}

pub async fn audit(ctx: &Context, args: &AuditArgs) -> Result<Exit, CliError> {
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(secs) = args.since {
        let since_ms = chrono::Utc::now().timestamp_millis()
            - i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        query.push(("since", since_ms.to_string()));
    }
    if let Some(ref_id) = &args.ref_id {
        query.push(("ref_id", ref_id.clone()));
    }
    let rows = ctx.api.get("/api/v1/audit", &query).await?;
    let table = items(&rows)
        .iter()
        .map(|row| {
            let who = match (text(row, "/token_name"), text(row, "/user_name")) {
                (token, user) if token.is_empty() => user,
                (token, user) if user.is_empty() => token,
                (token, user) => format!("{token} ({user})"),
            };
            vec![
                output::time_ms(row, "/ts"),
                who,
                text(row, "/role"),
                text(row, "/client_addr"),
                format!("{} {}", text(row, "/method"), text(row, "/path")),
                text(row, "/status"),
                text(row, "/ref_id"),
                text(row, "/task_id"),
            ]
        })
        .collect();
    ctx.out.list(
        &rows,
        &[
            "TIME", "WHO", "ROLE", "FROM", "REQUEST", "STATUS", "REF ID", "TASK",
        ],
        table,
    );
    Ok(Exit::Completed)
}

/// The reconcile report (applied with `--apply`): one line per finding.
pub async fn reconcile(ctx: &Context, args: &ReconcileArgs) -> Result<Exit, CliError> {
    let path = "/api/v1/sdp/reconcile";
    let report = if args.apply {
        ctx.api.send(Method::POST, path, None).await?
    } else {
        ctx.api.get(path, &[]).await?
    };
    let line = |finding: &str, row: &Value| {
        vec![
            finding.to_owned(),
            text(row, "/kind"),
            text(row, "/sdp_id"),
            text(row, "/name"),
            text(row, "/action"),
            text(row, "/outcome"),
            match text(row, "/error") {
                error if error.is_empty() => text(row, "/reason"),
                error => error,
            },
        ]
    };
    let mut rows: Vec<Vec<String>> = items(&report["missing"])
        .iter()
        .map(|row| line("missing", row))
        .collect();
    rows.extend(
        items(&report["orphans"])
            .iter()
            .map(|row| line("orphan", row)),
    );
    ctx.out.list(
        &report,
        &[
            "FINDING", "KIND", "SDP ID", "NAME", "ACTION", "OUTCOME", "WHY",
        ],
        rows,
    );
    Ok(Exit::Completed)
}
