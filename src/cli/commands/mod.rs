//! One function per client command, and what the task-creating ones share: the dry run, the
//! operation id shown, the wait.

mod admin;
mod echo;
mod hosts;
mod session;
mod tasks;

use reqwest::Method;
use serde_json::Value;

use super::{
    Exit,
    api::{Api, CliError},
    args::{ClientArgs, ClientCommand, MutationArgs},
    follow,
    output::{self, Output},
};

/// What every command works with.
pub struct Context {
    pub api: Api,
    pub out: Output,
}

pub async fn run(args: ClientArgs, command: ClientCommand) -> Result<Exit, CliError> {
    let ctx = Context {
        api: Api::new(&args)?,
        out: Output::new(args.output),
    };
    match command {
        ClientCommand::Login(login) => session::login(&ctx, &login).await,
        ClientCommand::Logout => session::logout(&ctx),
        ClientCommand::Hosts(hosts) => hosts::run(&ctx, hosts).await,
        ClientCommand::Dbs(dbs) => hosts::databases(&ctx, &dbs.host).await,
        ClientCommand::Topology => hosts::topology(&ctx).await,
        ClientCommand::Snapshot(snapshot) => echo::snapshot(&ctx, snapshot).await,
        ClientCommand::Snapshots(snapshots) => echo::snapshots(&ctx, snapshots).await,
        ClientCommand::Clone(clone) => echo::clone(&ctx, clone).await,
        ClientCommand::Refresh(refresh) => echo::refresh(&ctx, refresh).await,
        ClientCommand::Rm(rm) => echo::remove(&ctx, rm).await,
        ClientCommand::Tasks(list) => tasks::list(&ctx, list).await,
        ClientCommand::Task(task) => tasks::show(&ctx, &task.id).await,
        ClientCommand::Wait(wait) => tasks::wait(&ctx, &wait.ids).await,
        ClientCommand::Abort(abort) => tasks::abort(&ctx, &abort).await,
        ClientCommand::Tokens(tokens) => admin::tokens(&ctx, tokens).await,
        ClientCommand::Audit(audit) => admin::audit(&ctx, &audit).await,
        ClientCommand::Reconcile(reconcile) => admin::reconcile(&ctx, &reconcile).await,
    }
}

/// Sends a task-creating request (or, with `--dry-run`, its `__validate` twin) and, with
/// `--wait`, follows the task to its end.
pub async fn submit(
    ctx: &Context,
    method: Method,
    path: &str,
    body: Option<&Value>,
    mutation: MutationArgs,
) -> Result<Exit, CliError> {
    if mutation.dry_run {
        let verdict = ctx
            .api
            .send(method, &format!("{path}/__validate"), body)
            .await?;
        return dry_run_verdict(ctx, &verdict);
    }
    let task = ctx.api.send(method, path, body).await?;
    let id = output::text(&task, "/request_id");
    if ctx.api.ref_id_generated {
        eprintln!("ref id {}", ctx.api.ref_id());
    }
    if mutation.wait {
        return finish(ctx, &id).await;
    }
    if ctx.out.is_json() {
        output::print_json(&task);
    } else {
        println!(
            "task {id} ({}) {}; follow it with: flex wait {id}",
            output::text(&task, "/command_type"),
            follow::state(&task)
        );
    }
    Ok(Exit::Completed)
}

/// Follows a task to its end, prints it, and says how it ended.
pub async fn finish(ctx: &Context, id: &str) -> Result<Exit, CliError> {
    let task = follow::until_end(&ctx.api, id).await?;
    if ctx.out.is_json() {
        output::print_json(&task);
    } else {
        tasks::print_result(&task);
    }
    Ok(follow::exit_of(&task))
}

/// One issue of a dry run the CLI answers itself (operations without a `__validate` twin),
/// in the server's shape.
pub fn issue(issue_type: &str, description: &str) -> Value {
    serde_json::json!({"issue_type": issue_type, "description": description, "body": {}})
}

/// A verdict in the shape of the server's `__validate` answers.
pub fn verdict(issues: &[Value]) -> Value {
    serde_json::json!({"valid": issues.is_empty(), "issues": issues})
}

/// A dry run's answer: `Completed` when valid, refused (exit 4) with the issues when not.
pub fn dry_run_verdict(ctx: &Context, verdict: &Value) -> Result<Exit, CliError> {
    let valid = verdict.get("valid").and_then(Value::as_bool) == Some(true);
    let issues = output::items(verdict.get("issues").unwrap_or(&Value::Null));
    if ctx.out.is_json() {
        output::print_json(verdict);
    } else if valid {
        println!("dry run: the request would be accepted");
    } else {
        println!("dry run: the request would be refused:");
        for issue in issues {
            println!(
                "  {}: {}",
                output::text(issue, "/issue_type"),
                output::text(issue, "/description")
            );
        }
    }
    if valid {
        Ok(Exit::Completed)
    } else {
        let types: Vec<String> = issues
            .iter()
            .map(|issue| output::text(issue, "/issue_type"))
            .collect();
        Err(CliError::Invalid(types.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_side_verdict_has_the_servers_shape() {
        let valid = verdict(&[]);
        assert_eq!(valid, serde_json::json!({"valid": true, "issues": []}));
        let refused = verdict(&[issue("HOST_ALREADY_EXISTS", "taken")]);
        assert_eq!(refused["valid"], false);
        assert_eq!(
            output::text(&refused, "/issues/0/issue_type"),
            "HOST_ALREADY_EXISTS"
        );
    }
}
