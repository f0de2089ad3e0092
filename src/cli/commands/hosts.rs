//! `flex hosts`, `flex dbs`, `flex topology`: what is registered, connected and cloned where.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Context, dry_run_verdict, issue, verdict};
use crate::cli::{
    Exit,
    api::{CliError, segment},
    args::{HostsAction, HostsArgs},
    output::{self, items, text, time_secs},
};

pub async fn run(ctx: &Context, args: HostsArgs) -> Result<Exit, CliError> {
    match args.action {
        None => list(ctx).await,
        Some(HostsAction::Register { host_id, dry_run }) => register(ctx, &host_id, dry_run).await,
        Some(HostsAction::Rm { host_id, dry_run }) => unregister(ctx, &host_id, dry_run).await,
    }
}

async fn list(ctx: &Context) -> Result<Exit, CliError> {
    let hosts = ctx.api.get("/api/v1/hosts", &[]).await?;
    let rows = items(&hosts)
        .iter()
        .map(|host| {
            vec![
                text(host, "/host_id"),
                if host.get("is_connected") == Some(&Value::Bool(true)) {
                    "yes".into()
                } else {
                    "no".into()
                },
                time_secs(host, "/last_seen_ts"),
                text(host, "/host_os_version"),
                text(host, "/agent_version"),
                text(host, "/db_engine_version"),
            ]
        })
        .collect();
    ctx.out.list(
        &hosts,
        &[
            "HOST",
            "CONNECTED",
            "LAST SEEN",
            "OS",
            "AGENT",
            "SQL SERVER",
        ],
        rows,
    );
    Ok(Exit::Completed)
}

/// Whether the host exists, read the way the API answers it.
async fn host_exists(ctx: &Context, host_id: &str) -> Result<bool, CliError> {
    match ctx
        .api
        .get(&format!("/api/v1/hosts/{}", segment(host_id)), &[])
        .await
    {
        Ok(_) => Ok(true),
        Err(CliError::Refused { status: 404, .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

async fn register(ctx: &Context, host_id: &str, dry_run: bool) -> Result<Exit, CliError> {
    let path = format!("/api/v1/hosts/{}", segment(host_id));
    if dry_run {
        // Hosts have no `__validate` twin: the read answers the same question.
        let mut issues = Vec::new();
        if host_exists(ctx, host_id).await? {
            issues.push(issue(
                "HOST_ALREADY_EXISTS",
                &format!("host '{host_id}' is already registered"),
            ));
        }
        return dry_run_verdict(ctx, &verdict(&issues));
    }
    let body = json!({"db_vendor": "mssql"});
    let registered = ctx.api.send(Method::PUT, &path, Some(&body)).await?;
    if ctx.out.is_json() {
        output::print_json(&registered);
    } else {
        println!("host {host_id} registered");
        println!(
            "agent token (shown this once): {}",
            text(&registered, "/token")
        );
    }
    Ok(Exit::Completed)
}

async fn unregister(ctx: &Context, host_id: &str, dry_run: bool) -> Result<Exit, CliError> {
    let exists = host_exists(ctx, host_id).await?;
    if dry_run {
        if !ctx.out.is_json() && !exists {
            eprintln!("host {host_id} is not registered: nothing would change");
        }
        return dry_run_verdict(ctx, &verdict(&[]));
    }
    let path = format!("/api/v1/hosts/{}", segment(host_id));
    ctx.api.send(Method::DELETE, &path, None).await?;
    if ctx.out.is_json() {
        output::print_json(&json!({"host_id": host_id, "unregistered": exists}));
    } else if exists {
        println!("host {host_id} unregistered");
    } else {
        println!("host {host_id} was not registered");
    }
    Ok(Exit::Completed)
}

pub async fn databases(ctx: &Context, host: &str) -> Result<Exit, CliError> {
    let listed = ctx
        .api
        .get(&format!("/api/v1/hosts/{}/databases", segment(host)), &[])
        .await?;
    let rows = items(&listed)
        .iter()
        .map(|db| {
            let files = items(db.pointer("/mssql/files").unwrap_or(&Value::Null));
            let size_mb: u64 = files
                .iter()
                .filter_map(|f| f.get("size_mb").and_then(Value::as_u64))
                .sum();
            let mut volumes: Vec<String> = files.iter().map(|f| text(f, "/volume_name")).collect();
            volumes.dedup();
            vec![
                text(db, "/id"),
                text(db, "/name"),
                text(db, "/status"),
                format!("{size_mb} MB"),
                volumes.join(","),
                time_secs(db, "/expires_ts"),
                if db.get("protected") == Some(&Value::Bool(true)) {
                    "yes".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    ctx.out.list(
        &listed,
        &[
            "ID",
            "NAME",
            "STATUS",
            "SIZE",
            "VOLUMES",
            "EXPIRES",
            "PROTECTED",
        ],
        rows,
    );
    Ok(Exit::Completed)
}

pub async fn topology(ctx: &Context) -> Result<Exit, CliError> {
    let topology = ctx.api.get("/api/echo/v1/topology", &[]).await?;
    let mut rows = Vec::new();
    for entry in items(&topology) {
        let host = text(entry, "/host/id");
        for db in items(entry.get("databases").unwrap_or(&Value::Null)) {
            let parent = match db.get("parent") {
                Some(parent) if parent.is_object() => format!(
                    "{}/{} @ {}",
                    text(parent, "/src_host_id"),
                    text(parent, "/src_db_id"),
                    text(parent, "/snap_id")
                ),
                _ => String::new(),
            };
            rows.push(vec![
                host.clone(),
                text(db, "/id"),
                text(db, "/name"),
                if parent.is_empty() { "source" } else { "echo" }.to_owned(),
                parent,
                items(db.get("db_snapshots").unwrap_or(&Value::Null))
                    .len()
                    .to_string(),
                time_secs(db, "/expires_ts"),
            ]);
        }
        if items(entry.get("databases").unwrap_or(&Value::Null)).is_empty() {
            rows.push(vec![host, String::new(), "(no databases)".into()]);
        }
    }
    ctx.out.list(
        &topology,
        &["HOST", "DB", "NAME", "KIND", "FROM", "SNAPSHOTS", "EXPIRES"],
        rows,
    );
    Ok(Exit::Completed)
}
