//! A client of Flex's event stream: reads `text/event-stream` off a real response, frame by
//! frame, as a browser's `EventSource` would.

use std::time::Duration;

use serde_json::Value;

/// One event as it came off the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct SseEvent {
    pub id: i64,
    pub event: String,
    pub data: Value,
}

pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
    /// Comment lines (keep-alives) seen so far.
    pub comments: usize,
}

impl SseStream {
    /// Opens `path` on `base` with the admin token and, if given, a `Last-Event-ID`.
    pub async fn open(base_url: &str, path: &str, last_event_id: Option<i64>) -> SseStream {
        let mut request = reqwest::Client::new()
            .get(format!("{base_url}{path}"))
            .bearer_auth(super::ADMIN_TOKEN);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        SseStream {
            response,
            buffer: String::new(),
            comments: 0,
        }
    }

    /// The next event, or `None` when none came within `wait` (or the stream ended).
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = self.parse(&frame) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(Ok(None)) | Err(_) => return None,
                Ok(Err(err)) => panic!("event stream broke: {err}"),
            }
        }
    }

    /// Events until one satisfies `last` (included), failing after `wait` in all.
    pub async fn until(
        &mut self,
        wait: Duration,
        last: impl Fn(&SseEvent) -> bool,
    ) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(event) = self.next(left).await else {
                panic!("the awaited event never came; saw {seen:#?}");
            };
            let done = last(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }

    fn parse(&mut self, frame: &str) -> Option<SseEvent> {
        let (mut id, mut event, mut data) = (None, None, String::new());
        for line in frame.lines() {
            if line.starts_with(':') {
                self.comments += 1;
            } else if let Some(value) = line.strip_prefix("id:") {
                id = Some(value.trim().parse().unwrap());
            } else if let Some(value) = line.strip_prefix("event:") {
                event = Some(value.trim().to_owned());
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
        Some(SseEvent {
            id: id?,
            event: event?,
            data: serde_json::from_str(&data).unwrap(),
        })
    }
}
