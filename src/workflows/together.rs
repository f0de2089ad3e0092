//! How a step makes SDP calls that do not depend on each other: all at once (a bounded
//! number in flight), so a step with ten volumes waits one round trip of the array's latency,
//! not ten; and how it creates an object without looking for it first, looking only when the
//! array says the name is taken.

use std::future::Future;

use futures_util::{StreamExt, stream};

use crate::{executor::StepError, sdp::SdpError};

/// SDP calls one step keeps in flight at once. The array's own rate limit (429 with
/// `Retry-After`) still applies to each; this only bounds what one task asks at a time.
pub const SDP_CALLS_IN_FLIGHT: usize = 8;

/// Runs `call` on every item, [`SDP_CALLS_IN_FLIGHT`] at a time; the answers in item order.
/// Every call runs to its end, so what one call made is kept even when another fails.
pub async fn together<I, F, Fut, T>(items: I, call: F) -> Vec<T>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = T>,
{
    stream::iter(items)
        .map(call)
        .buffered(SDP_CALLS_IN_FLIGHT)
        .collect()
        .await
}

/// Hands every success to `keep` (so the checkpoint records all that was made), then answers
/// the first failure, if any.
pub fn keep_all<T>(
    answers: Vec<Result<T, StepError>>,
    mut keep: impl FnMut(T),
) -> Result<(), StepError> {
    let mut first_error = None;
    for answer in answers {
        match answer {
            Ok(made) => keep(made),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Creates an object named after the task; when the array refuses because the name is taken
/// (an earlier attempt made it and its answer was lost), or refuses at all, `find` looks for
/// it by that name. Found: it is this task's own (`false`: not made by this call). The usual
/// path is one call; the look-up runs only after a refusal.
pub async fn create_or_find<T, Find>(
    create: impl Future<Output = Result<T, SdpError>>,
    find: impl FnOnce() -> Find,
) -> Result<(T, bool), SdpError>
where
    Find: Future<Output = Result<Option<T>, SdpError>>,
{
    match create.await {
        Ok(made) => Ok((made, true)),
        Err(err) if err.is_name_taken() || matches!(err, SdpError::Permanent { .. }) => {
            match find().await? {
                Some(found) => Ok((found, false)),
                None => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}
