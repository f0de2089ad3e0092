//! The Echo operations: snapshot, clone, refresh, delete. Each builds the documented request
//! body (names resolved to ids first) and hands it to [`submit`].

use reqwest::Method;
use serde_json::{Value, json};

use super::{Context, submit};
use crate::cli::{
    Exit,
    api::{CliError, segment},
    args::{
        CloneArgs, RefreshArgs, RmArgs, SnapshotArgs, SnapshotsAction, SnapshotsArgs, wire_name,
    },
    output::{items, text, time_secs},
    resolve::HostDatabases,
};

pub async fn snapshot(ctx: &Context, args: SnapshotArgs) -> Result<Exit, CliError> {
    let ids = HostDatabases::of(&ctx.api, &args.host)
        .await?
        .ids(&args.dbs)?;
    let mut body = json!({
        "source_host_id": args.host,
        "database_ids": ids,
        "consistency_level": if args.crash { "crash" } else { "application" },
    });
    if let Some(prefix) = args.prefix {
        body["name_prefix"] = json!(prefix);
    }
    submit(
        ctx,
        Method::POST,
        "/api/echo/v1/db_snapshots",
        Some(&body),
        args.mutation,
    )
    .await
}

pub async fn snapshots(ctx: &Context, args: SnapshotsArgs) -> Result<Exit, CliError> {
    if let Some(SnapshotsAction::Rm { id, mutation }) = args.action {
        let path = format!("/api/echo/v1/db_snapshots/{}", segment(&id));
        return submit(ctx, Method::DELETE, &path, None, mutation).await;
    }
    let listed = ctx.api.get("/api/echo/v1/db_snapshots", &[]).await?;
    // The API lists every host's; the filter is the client's.
    let listed = Value::Array(
        items(&listed)
            .iter()
            .filter(|s| {
                args.host
                    .as_ref()
                    .is_none_or(|h| s.get("host_id") == Some(&json!(h)))
            })
            .cloned()
            .collect(),
    );
    let rows = items(&listed)
        .iter()
        .map(|snapshot| {
            let databases: Vec<String> = items(snapshot.get("databases").unwrap_or(&Value::Null))
                .iter()
                .map(|db| format!("{} ({})", text(db, "/db_name"), text(db, "/db_id")))
                .collect();
            vec![
                text(snapshot, "/id"),
                text(snapshot, "/host_id"),
                databases.join(", "),
                time_secs(snapshot, "/timestamp"),
                text(snapshot, "/consistency_level"),
                text(snapshot, "/schedule_id"),
            ]
        })
        .collect();
    ctx.out.list(
        &listed,
        &[
            "ID",
            "HOST",
            "DATABASES",
            "TAKEN",
            "CONSISTENCY",
            "SCHEDULE",
        ],
        rows,
    );
    Ok(Exit::Completed)
}

pub async fn clone(ctx: &Context, args: CloneArgs) -> Result<Exit, CliError> {
    let destinations = args
        .destinations
        .iter()
        .map(|raw| destination(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let db_id = HostDatabases::of(&ctx.api, &args.source)
        .await?
        .id(&args.db)?;
    let destinations: Vec<Value> = destinations
        .into_iter()
        .map(|(host, name)| json!({"host_id": host, "db_id": db_id, "db_name": name}))
        .collect();
    let mut body = json!({"destinations": destinations});
    if let Some(state) = args.target_state {
        body["target_state"] = json!(wire_name(&state));
    }
    if let Some(ttl) = args.ttl {
        body["ttl_secs"] = json!(ttl);
    }
    if args.protect {
        body["protected"] = json!(true);
    }
    let path = if let Some(snapshot) = &args.snapshot {
        format!("/api/echo/v1/db_snapshots/{}/echo_db", segment(snapshot))
    } else {
        body["source_host_id"] = json!(args.source);
        body["database_ids"] = json!([db_id]);
        "/api/echo/v1/echo_dbs".to_owned()
    };
    submit(ctx, Method::POST, &path, Some(&body), args.mutation).await
}

/// `HOST:NAME`; the name may itself hold colons, the host may not.
fn destination(raw: &str) -> Result<(String, String), CliError> {
    match raw.split_once(':') {
        Some((host, name)) if !host.is_empty() && !name.is_empty() => {
            Ok((host.to_owned(), name.to_owned()))
        }
        _ => Err(CliError::Usage(format!(
            "--to '{raw}' must be HOST:NAME, for example dev-01:sales_copy"
        ))),
    }
}

pub async fn refresh(ctx: &Context, args: RefreshArgs) -> Result<Exit, CliError> {
    let mut body = json!({"snapshot_id": args.snapshot, "db_names": args.names});
    if let Some(state) = args.target_state {
        body["target_state"] = json!(wire_name(&state));
    }
    if let Some(ttl) = args.ttl {
        body["ttl_secs"] = json!(ttl);
    }
    let path = format!(
        "/api/echo/v1/hosts/{}/databases/_refresh",
        segment(&args.host)
    );
    submit(ctx, Method::POST, &path, Some(&body), args.mutation).await
}

pub async fn remove(ctx: &Context, args: RmArgs) -> Result<Exit, CliError> {
    let db_id = HostDatabases::of(&ctx.api, &args.host)
        .await?
        .id(&args.db)?;
    let body = json!({"host_id": args.host, "database_id": db_id});
    submit(
        ctx,
        Method::DELETE,
        "/api/echo/v1/echo_dbs",
        Some(&body),
        args.mutation,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::destination;

    #[test]
    fn destinations_are_host_colon_name() {
        assert_eq!(
            destination("dev-01:sales_ci").unwrap(),
            ("dev-01".into(), "sales_ci".into())
        );
        assert_eq!(destination("dev-01:a:b").unwrap().1, "a:b");
        for bad in ["dev-01", ":x", "dev-01:"] {
            assert!(destination(bad).is_err(), "{bad}");
        }
    }
}
