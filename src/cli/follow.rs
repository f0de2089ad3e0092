//! Following a task to its end, the cheapest way the server allows: its event stream (each
//! step as it happens), else long polls, else polling with back-off. Progress goes to stderr:
//! a bar on a terminal, one line per step change otherwise.

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::StatusCode;
use serde_json::Value;

use super::{
    Exit,
    api::{Api, CliError, segment},
    output,
};

/// How long the server may be gone (a restart, a failover) before waiting gives up.
const OUTAGE_LIMIT: Duration = Duration::from_mins(1);
/// The stream sends a keep-alive every 15 s; three missed ones mean it is dead.
const STREAM_SILENCE: Duration = Duration::from_secs(45);
const TASK_EVENTS: &str = "task.progress,task.completed,task.failed,task.aborted";
const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(5);

pub fn task_path(id: &str) -> String {
    format!("/api/echo/v1/tasks/{}", segment(id))
}

pub fn state(task: &Value) -> &str {
    task.get("state")
        .and_then(Value::as_str)
        .unwrap_or("running")
}

pub fn ended(task: &Value) -> bool {
    state(task) != "running"
}

/// The exit code a task's end stands for.
pub fn exit_of(task: &Value) -> Exit {
    match state(task) {
        "completed" => Exit::Completed,
        "aborted" => Exit::Aborted,
        _ => Exit::Failed,
    }
}

/// Waits until the task is no longer running and returns it as the server reads it then.
pub async fn until_end(api: &Api, id: &str) -> Result<Value, CliError> {
    let path = task_path(id);
    let mut progress = Progress::new(id);
    let task = api.get(&path, &[]).await?;
    progress.show(&task);
    if !ended(&task) {
        let ref_id = output::text(&task, "/ref_id");
        match follow_events(api, &path, id, &ref_id, &mut progress).await? {
            Followed::Ended => {}
            Followed::NoStream => poll(api, &path, &mut progress).await?,
        }
    }
    let task = api.get(&path, &[]).await?;
    progress.finish(&task);
    Ok(task)
}

enum Followed {
    Ended,
    /// The server has no event stream (an older Flex).
    NoStream,
}

async fn follow_events(
    api: &Api,
    path: &str,
    id: &str,
    ref_id: &str,
    progress: &mut Progress,
) -> Result<Followed, CliError> {
    let mut outage = Outage::default();
    loop {
        let mut query = vec![("types", TASK_EVENTS.to_owned())];
        if !ref_id.is_empty() {
            query.push(("ref_id", ref_id.to_owned()));
        }
        let response = match api.open("/api/echo/v1/events", &query).await {
            Ok(response) => response,
            Err(err) => {
                outage.wait_or_give_up(err).await?;
                continue;
            }
        };
        match response.status() {
            status if status.is_success() => {}
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                return Ok(Followed::NoStream);
            }
            status if status.is_server_error() => {
                let text = response.text().await.unwrap_or_default();
                outage.wait_or_give_up(api.refusal(status, &text)).await?;
                continue;
            }
            status => {
                let text = response.text().await.unwrap_or_default();
                return Err(api.refusal(status, &text));
            }
        }
        // The stream starts at the newest event: read the task once more, so a step or an
        // end between the first read and the stream's start is not missed.
        let Some(task) = read_through(api, path, &[], &mut outage).await? else {
            continue;
        };
        progress.show(&task);
        if ended(&task) {
            return Ok(Followed::Ended);
        }
        let mut events = response.bytes_stream().eventsource();
        while let Ok(Some(Ok(event))) = tokio::time::timeout(STREAM_SILENCE, events.next()).await {
            let Ok(body) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            let Some(task) = body.get("task") else {
                continue;
            };
            if task.get("request_id").and_then(Value::as_str) != Some(id) {
                continue;
            }
            progress.show(task);
            if ended(task) {
                return Ok(Followed::Ended);
            }
        }
        // The stream ended (the server stopping, a proxy's timeout): read and stream again.
        tokio::time::sleep(FIRST_RETRY).await;
    }
}

/// For servers without the event stream: a long poll where the server has one (it answers
/// when the task ends or after a second, so a step change shows a second late at most), and
/// back-off where it answers at once.
async fn poll(api: &Api, path: &str, progress: &mut Progress) -> Result<(), CliError> {
    let mut outage = Outage::default();
    let mut pause = FIRST_RETRY;
    loop {
        let asked = Instant::now();
        let long_poll = [("wait_secs", "1".to_owned())];
        let Some(task) = read_through(api, path, &long_poll, &mut outage).await? else {
            continue;
        };
        if progress.show(&task) {
            pause = FIRST_RETRY;
        }
        if ended(&task) {
            return Ok(());
        }
        if asked.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LAST_RETRY);
        }
    }
}

/// One read of the task; `None`, after a pause, while the server is away (within the limit).
async fn read_through(
    api: &Api,
    path: &str,
    query: &[(&str, String)],
    outage: &mut Outage,
) -> Result<Option<Value>, CliError> {
    match api.get(path, query).await {
        Ok(task) => {
            *outage = Outage::default();
            Ok(Some(task))
        }
        Err(err @ (CliError::Unreachable { .. } | CliError::Server { .. })) => {
            outage.wait_or_give_up(err).await?;
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Retries while the server is away, up to [`OUTAGE_LIMIT`] in a row.
#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    pause: Option<Duration>,
}

impl Outage {
    async fn wait_or_give_up(&mut self, err: CliError) -> Result<(), CliError> {
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() > OUTAGE_LIMIT {
            return Err(err);
        }
        let pause = self.pause.map_or(FIRST_RETRY, |p| (p * 2).min(LAST_RETRY));
        self.pause = Some(pause);
        tokio::time::sleep(pause).await;
        Ok(())
    }
}

/// Where the task is, as the person or the log watching it sees it.
struct Progress {
    id: String,
    bar: Option<ProgressBar>,
    last: Option<(String, String, u64)>,
}

impl Progress {
    fn new(id: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(1);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} [{bar:24}] {pos}/{len} {wide_msg} {elapsed}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            id: id.to_owned(),
            bar,
            last: None,
        }
    }

    /// Shows the task's step; whether it changed since the last one shown.
    fn show(&mut self, task: &Value) -> bool {
        let step = output::text(task, "/progress/step");
        let phase = output::text(task, "/progress/phase");
        let done = task
            .pointer("/progress/done")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let total = task
            .pointer("/progress/total")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let now = (step, phase, done);
        if self.last.as_ref() == Some(&now) {
            return false;
        }
        let (step, phase, done) = &now;
        let doing = if phase == "undo" {
            format!("undoing {step}")
        } else {
            step.clone()
        };
        match &self.bar {
            Some(bar) => {
                bar.set_prefix(output::text(task, "/command_type"));
                bar.set_length(total.max(1));
                bar.set_position(*done);
                bar.set_message(doing);
            }
            None if !step.is_empty() => {
                eprintln!("task {}: {doing} ({done}/{total})", self.id);
            }
            None => {}
        }
        self.last = Some(now);
        true
    }

    fn finish(&mut self, task: &Value) {
        let took = task_duration(task);
        let line = match state(task) {
            "completed" => format!("task {} completed in {took}", self.id),
            state => {
                let error = output::text(task, "/error");
                if error.is_empty() {
                    format!("task {} {state} after {took}", self.id)
                } else {
                    format!("task {} {state} after {took}: {error}", self.id)
                }
            }
        };
        match self.bar.take() {
            Some(bar) => {
                bar.finish_and_clear();
                eprintln!("{line}");
            }
            None => eprintln!("{line}"),
        }
    }
}

/// From creation to the last change, as the server timed it.
pub fn task_duration(task: &Value) -> String {
    let at = |field| task.get(field).and_then(Value::as_i64).unwrap_or(0);
    match at("update_ts") - at("create_ts") {
        // The server counts whole seconds.
        ..=0 => "< 1 s".to_owned(),
        secs => output::duration_ms(secs * 1000),
    }
}
