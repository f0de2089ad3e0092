//! The executor's persistence: the few writes and reads that claim, fence, checkpoint and end
//! a task. [`Store`] is the journal Flex runs on; the executor's own unit tests run on a
//! journal in memory, so that retries and undo can be tested against a paused clock.

use std::future::Future;

use crate::{
    model::{CommandType, Phase, TaskState},
    store::{ClaimedTask, StepLogEntry, Store, StoreResult},
};

pub trait Journal: Clone + Send + Sync + 'static {
    /// Takes the oldest runnable task of these types whose lease is free or expired.
    fn claim(
        &self,
        owner: &str,
        lease_ms: i64,
        now_ms: i64,
        runnable: &[CommandType],
    ) -> impl Future<Output = StoreResult<Option<ClaimedTask>>> + Send;

    /// Frees every lease `owner` holds.
    fn release_leases_of(&self, owner: &str) -> impl Future<Output = StoreResult<u64>> + Send;

    /// False: the lease was lost.
    fn extend_lease(
        &self,
        request_id: &str,
        epoch: i64,
        until_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Records a finished step and where the task goes next; false: the lease was lost.
    fn checkpoint_step(
        &self,
        request_id: &str,
        epoch: i64,
        next: (usize, Phase),
        checkpoint: &str,
        step: &StepLogEntry,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Ends the task; false: the lease was lost.
    fn finish_task(
        &self,
        request_id: &str,
        epoch: i64,
        state: TaskState,
        error: &str,
        result: Option<&str>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn abort_requested(&self, request_id: &str) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Asks a running task to stop (the abort matrix asks from inside a step).
    fn request_abort(&self, request_id: &str) -> impl Future<Output = StoreResult<bool>> + Send;
}

impl Journal for Store {
    async fn claim(
        &self,
        owner: &str,
        lease_ms: i64,
        now_ms: i64,
        runnable: &[CommandType],
    ) -> StoreResult<Option<ClaimedTask>> {
        self.claim_task(owner, lease_ms, now_ms, runnable).await
    }

    async fn release_leases_of(&self, owner: &str) -> StoreResult<u64> {
        Store::release_leases_of(self, owner).await
    }

    async fn extend_lease(&self, request_id: &str, epoch: i64, until_ms: i64) -> StoreResult<bool> {
        Store::extend_lease(self, request_id, epoch, until_ms).await
    }

    async fn checkpoint_step(
        &self,
        request_id: &str,
        epoch: i64,
        next: (usize, Phase),
        checkpoint: &str,
        step: &StepLogEntry,
    ) -> StoreResult<bool> {
        Store::checkpoint_step(self, request_id, epoch, next, checkpoint, step).await
    }

    async fn finish_task(
        &self,
        request_id: &str,
        epoch: i64,
        state: TaskState,
        error: &str,
        result: Option<&str>,
    ) -> StoreResult<bool> {
        Store::finish_task(self, request_id, epoch, state, error, result).await
    }

    async fn abort_requested(&self, request_id: &str) -> StoreResult<bool> {
        Store::abort_requested(self, request_id).await
    }

    async fn request_abort(&self, request_id: &str) -> StoreResult<bool> {
        Store::request_abort(self, request_id).await
    }
}
