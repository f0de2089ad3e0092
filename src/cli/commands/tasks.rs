//! `flex tasks`, `flex task`, `flex wait`, `flex abort`: what is running, what ran, and how
//! it went, step by step.

use reqwest::Method;
use serde_json::Value;

use super::{Context, dry_run_verdict, finish, issue, verdict};
use crate::cli::{
    Exit,
    api::CliError,
    args::{AbortArgs, TasksArgs},
    follow::{self, task_path},
    output::{self, duration_ms, items, table, text, time_secs},
};

pub async fn list(ctx: &Context, args: TasksArgs) -> Result<Exit, CliError> {
    let mut query = Vec::new();
    if let Some(state) = args.state {
        query.push(("state", state));
    }
    if let Some(ref_id) = args.ref_id {
        query.push(("ref_id", ref_id));
    }
    let tasks = ctx.api.get("/api/echo/v1/tasks", &query).await?;
    let rows = items(&tasks)
        .iter()
        .map(|task| {
            vec![
                text(task, "/request_id"),
                text(task, "/state"),
                text(task, "/command_type"),
                text(task, "/ref_id"),
                progress(task),
                time_secs(task, "/create_ts"),
                follow::task_duration(task),
            ]
        })
        .collect();
    ctx.out.list(
        &tasks,
        &[
            "ID", "STATE", "COMMAND", "REF ID", "STEP", "CREATED", "TOOK",
        ],
        rows,
    );
    Ok(Exit::Completed)
}

fn progress(task: &Value) -> String {
    let step = text(task, "/progress/step");
    if step.is_empty() {
        return String::new();
    }
    let undo = if text(task, "/progress/phase") == "undo" {
        "undo "
    } else {
        ""
    };
    format!(
        "{undo}{step} {}/{}",
        text(task, "/progress/done"),
        text(task, "/progress/total")
    )
}

/// One task with every step of its workflow.
pub async fn show(ctx: &Context, id: &str) -> Result<Exit, CliError> {
    let task = ctx
        .api
        .get(&task_path(id), &[("steps", "true".to_owned())])
        .await?;
    if ctx.out.is_json() {
        output::print_json(&task);
        return Ok(Exit::Completed);
    }
    print_result(&task);
    println!("created  {}", time_secs(&task, "/create_ts"));
    println!("ref id   {}", text(&task, "/ref_id"));
    println!("owner    {}", text(&task, "/owner"));
    let steps = items(task.get("steps").unwrap_or(&Value::Null));
    if !steps.is_empty() {
        let rows = steps
            .iter()
            .map(|step| {
                let at = |field: &str| step.get(field).and_then(Value::as_i64);
                let took = match (at("started_ms"), at("ended_ms")) {
                    (Some(start), Some(end)) => duration_ms(end - start),
                    _ => String::new(),
                };
                let waited = step
                    .get("waited_ms")
                    .and_then(Value::as_f64)
                    .map(output::duration_f64_ms)
                    .unwrap_or_default();
                vec![
                    text(step, "/name"),
                    text(step, "/state"),
                    took,
                    waited,
                    text(step, "/attempts"),
                    text(step, "/error"),
                ]
            })
            .collect();
        println!();
        println!(
            "{}",
            table(
                &["STEP", "STATE", "TOOK", "WAITED", "ATTEMPTS", "ERROR"],
                rows
            )
        );
    }
    Ok(Exit::Completed)
}

/// A task's outcome in a few lines: state, what it made, why it failed.
pub fn print_result(task: &Value) {
    println!(
        "task     {} ({})",
        text(task, "/request_id"),
        text(task, "/command_type")
    );
    println!("state    {}", text(task, "/state"));
    let step = progress(task);
    if !step.is_empty() {
        println!("step     {step}");
    }
    let error = text(task, "/error");
    if !error.is_empty() {
        println!("error    {error}");
    }
    let snapshot = text(task, "/result/db_snapshot/id");
    if !snapshot.is_empty() {
        println!("snapshot {snapshot}");
    }
    for db in items(task.pointer("/result/cloned_dbs").unwrap_or(&Value::Null)) {
        println!(
            "echo db  {} on {} (id {})",
            text(db, "/name"),
            text(db, "/host_id"),
            text(db, "/id")
        );
    }
}

/// Follows each task in turn; the exit code is the first one that did not complete.
pub async fn wait(ctx: &Context, ids: &[String]) -> Result<Exit, CliError> {
    let mut exit = Exit::Completed;
    for id in ids {
        let ended = finish(ctx, id).await?;
        if exit == Exit::Completed {
            exit = ended;
        }
    }
    Ok(exit)
}

pub async fn abort(ctx: &Context, args: &AbortArgs) -> Result<Exit, CliError> {
    let path = task_path(&args.id);
    if args.dry_run {
        // Aborts have no `__validate` twin: reading the task answers the question.
        let task = ctx.api.get(&path, &[]).await?;
        let issues = if follow::ended(&task) {
            let state = follow::state(&task);
            vec![issue(
                "TASK_NOT_RUNNING",
                &format!("task '{}' is {state}", args.id),
            )]
        } else {
            Vec::new()
        };
        return dry_run_verdict(ctx, &verdict(&issues));
    }
    let task = ctx
        .api
        .send(Method::POST, &format!("{path}/abort"), None)
        .await?;
    if args.wait {
        return finish(ctx, &args.id).await;
    }
    if ctx.out.is_json() {
        output::print_json(&task);
    } else {
        println!(
            "task {} abort requested; follow it with: flex wait {}",
            args.id, args.id
        );
    }
    Ok(Exit::Completed)
}
