//! Webhook deliveries: every endpoint is sent the events it subscribes to, in order, each
//! until one attempt succeeds (a 2xx), signed the Standard Webhooks way ([`signing`]).
//!
//! Durable and once across replicas: an endpoint's cursor, attempt count and next attempt
//! time are in the store (`store/webhooks.rs`); a replica delivers to an endpoint only under
//! its lease, so a restart or a replica's death loses nothing (its lease runs out and another
//! takes over). A failure is retried after `--webhook-retry-base-ms`, then ×6 each time with
//! jitter, up to 10 hours apart (8 attempts span about a day), for as long as the endpoint
//! exists. Each endpoint is delivered to on a task of its own, with a 10 s timeout, so a slow
//! or dead one delays neither the executor nor the other endpoints.

pub mod policy;
pub mod signing;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::Rng;
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    clock::{now_ms, now_ts},
    store::{DeliveryRecord, EventRecord, Store, WebhookRecord},
};

/// How an event's JSON is made (the API's, so webhooks and streams say the same).
pub type Render = Arc<dyn Fn(&EventRecord) -> serde_json::Value + Send + Sync>;

/// An endpoint's answer must come within this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// An endpoint's lease: comfortably longer than one attempt.
const LEASE_MS: i64 = 60_000;
/// How often due endpoints are looked for when no event wakes the deliverer.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Retries back off by this factor...
const BACKOFF_FACTOR: f64 = 6.0;
/// ...up to this far apart.
const MAX_RETRY_DELAY: Duration = Duration::from_hours(10);
/// Events read from the log at a time.
const BATCH: i64 = 100;

/// The wait before the next attempt, after `failures` failed ones (1 or more): the base,
/// then ×6 each time, at most 10 hours, give or take a fifth.
pub fn retry_delay(base: Duration, failures: i64) -> Duration {
    let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
    let nominal = (base.as_secs_f64() * BACKOFF_FACTOR.powi(exponent.min(30)))
        .min(MAX_RETRY_DELAY.as_secs_f64());
    Duration::from_secs_f64(nominal * rand::rng().random_range(0.8..1.2))
}

#[derive(Clone)]
struct Shared {
    store: Store,
    owner: String,
    retry_base: Duration,
    render: Render,
    http: reqwest::Client,
    in_flight: Arc<Mutex<HashSet<String>>>,
    stopping: watch::Receiver<bool>,
}

/// The running deliverer; [`Deliverer::stop`] ends it.
pub struct Deliverer {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Deliverer {
    /// Delivers as `owner` (this replica's instance id).
    pub fn start(store: Store, owner: String, retry_base: Duration, render: Render) -> Deliverer {
        let (stop, stopping) = watch::channel(false);
        let shared = Shared {
            http: policy::client(TIMEOUT),
            store,
            owner,
            retry_base,
            render,
            in_flight: Arc::default(),
            stopping,
        };
        let handle = tokio::spawn(look_for_due(shared));
        Deliverer { stop, handle }
    }

    /// Stops claiming; attempts under way end (their leases lapse or are given back).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

async fn look_for_due(shared: Shared) {
    let mut writes = shared.store.event_writes();
    let mut stopping = shared.stopping.clone();
    loop {
        writes.borrow_and_update();
        let store = &shared.store;
        let due = match store.has_due_webhooks(&shared.owner, now_ms()).await {
            Ok(true) => {
                store
                    .claim_due_webhooks(&shared.owner, now_ms(), LEASE_MS)
                    .await
            }
            Ok(false) => Ok(Vec::new()),
            Err(err) => Err(err),
        };
        match due {
            Ok(due) => {
                for webhook in due {
                    let fresh = shared
                        .in_flight
                        .lock()
                        .expect("in-flight set")
                        .insert(webhook.id.clone());
                    if fresh {
                        tokio::spawn(deliver_to(shared.clone(), webhook));
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "looking for due webhooks failed"),
        }
        tokio::select! {
            _ = writes.changed() => {}
            () = tokio::time::sleep(LOOK_EVERY) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// Delivers to one endpoint while it has events and succeeds; a failure ends the run until
/// its retry is due.
async fn deliver_to(shared: Shared, mut webhook: WebhookRecord) {
    let id = webhook.id.clone();
    if let Err(err) = deliver_pending(&shared, &mut webhook).await {
        tracing::warn!(webhook_id = %id, error = %err, "webhook delivery stopped");
    }
    shared.in_flight.lock().expect("in-flight set").remove(&id);
}

async fn deliver_pending(
    shared: &Shared,
    webhook: &mut WebhookRecord,
) -> Result<(), crate::store::StoreError> {
    let store = &shared.store;
    loop {
        if *shared.stopping.borrow() {
            return store.release_webhook(&webhook.id, &shared.owner).await;
        }
        let events = store.events_after(webhook.delivered_seq, BATCH).await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return store.release_webhook(&webhook.id, &shared.owner).await;
        };
        let Some(event) = events
            .into_iter()
            .find(|e| webhook.event_types.contains(&e.event_type))
        else {
            if !store
                .skip_webhook_events(&webhook.id, &shared.owner, last)
                .await?
            {
                return Ok(());
            }
            webhook.delivered_seq = last;
            continue;
        };
        let delivery = attempt(shared, webhook, &event).await;
        let retry_at = now_ms()
            + i64::try_from(retry_delay(shared.retry_base, webhook.attempts + 1).as_millis())
                .unwrap_or(i64::MAX / 2);
        let kept = store
            .record_webhook_attempt(&delivery, &shared.owner, retry_at, LEASE_MS)
            .await?;
        if !kept || !delivery.succeeded() {
            if kept {
                tracing::info!(
                    webhook_id = %webhook.id,
                    event_id = event.seq,
                    attempt = delivery.attempt,
                    error = %delivery.error,
                    "webhook delivery failed; retrying later"
                );
            }
            return Ok(());
        }
        webhook.delivered_seq = event.seq;
        webhook.attempts = 0;
    }
}

/// One signed `POST` of an event, and how it went.
async fn attempt(shared: &Shared, webhook: &WebhookRecord, event: &EventRecord) -> DeliveryRecord {
    let started = Instant::now();
    let ts_ms = now_ms();
    let body = (shared.render)(event).to_string();
    let webhook_id = event.seq.to_string();
    let timestamp = now_ts();
    let mut delivery = DeliveryRecord {
        webhook_id: webhook.id.clone(),
        event_seq: event.seq,
        attempt: webhook.attempts + 1,
        ts_ms,
        status: None,
        error: String::new(),
        duration_ms: 0,
    };
    let outcome = match (
        signing::secret_key(&webhook.secret),
        policy::check_url(&webhook.url),
    ) {
        (Err(err), _) => Err(format!("the endpoint's secret is unusable: {err}")),
        (_, Err(err)) => Err(format!("the endpoint's URL is refused: {err}")),
        (Ok(key), Ok(url)) => {
            let signature = signing::signature(&key, &webhook_id, timestamp, body.as_bytes());
            shared
                .http
                .post(url)
                .header("content-type", "application/json")
                .header("webhook-id", &webhook_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await
                .map_err(|err| describe(&err.without_url()))
        }
    };
    match outcome {
        Ok(response) => {
            let status = response.status();
            delivery.status = Some(i64::from(status.as_u16()));
            if !status.is_success() {
                delivery.error = format!("the endpoint answered {status}");
            }
        }
        Err(error) => delivery.error = error,
    }
    delivery.duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    delivery
}

/// A transport error in words, with its causes (the URL left out).
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_about_a_day_over_eight_attempts() {
        let base = Duration::from_secs(5);
        let first = retry_delay(base, 1);
        assert!((4.0..6.0).contains(&first.as_secs_f64()), "{first:?}");
        let fourth = retry_delay(base, 4).as_secs_f64();
        assert!((0.8 * 1080.0..1.2 * 1080.0).contains(&fourth), "{fourth}");
        assert!(retry_delay(base, 40) <= MAX_RETRY_DELAY.mul_f64(1.2));
        // Attempt 1 is at once; attempts 2..=8 follow the first 7 delays.
        let nominal: f64 = (1..=7)
            .map(|n| (5.0 * 6f64.powi(n - 1)).min(36_000.0))
            .sum();
        assert!(
            (20.0 * 3600.0..36.0 * 3600.0).contains(&nominal),
            "8 attempts span {} h",
            nominal / 3600.0
        );
    }
}
