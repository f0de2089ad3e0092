//! The kinds of event Flex records in its event log, streams (`…/events`) and delivers to
//! webhooks.

crate::wire_enum! {
    /// What happened, as `type` in an event's JSON and `event:` on the stream.
    pub enum EventType ("event type") {
        TaskCreated = "task.created",
        TaskProgress = "task.progress",
        TaskCompleted = "task.completed",
        TaskFailed = "task.failed",
        TaskAborted = "task.aborted",
        EchoDbCreated = "echo_db.created",
        EchoDbDeleted = "echo_db.deleted",
        /// Its expiry came and Flex started deleting it.
        EchoDbExpiring = "echo_db.expiring",
        DbSnapshotCreated = "db_snapshot.created",
        DbSnapshotDeleted = "db_snapshot.deleted",
        HostRegistered = "host.registered",
        HostUnregistered = "host.unregistered",
        HostConnected = "host.connected",
        HostDisconnected = "host.disconnected",
    }
}

impl EventType {
    /// The event a task's end is announced with.
    pub fn of_task_end(state: super::TaskState) -> Option<EventType> {
        match state {
            super::TaskState::Running => None,
            super::TaskState::Completed => Some(EventType::TaskCompleted),
            super::TaskState::Failed => Some(EventType::TaskFailed),
            super::TaskState::Aborted => Some(EventType::TaskAborted),
        }
    }
}
