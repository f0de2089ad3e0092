//! Counters an operator scrapes from `GET /metrics` (Prometheus text format): how tasks end,
//! how often steps retry, and how long databases stayed frozen for snapshots.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
};

use crate::model::TaskState;

#[derive(Default)]
pub struct Metrics {
    tasks_completed: AtomicU64,
    tasks_failed: AtomicU64,
    tasks_aborted: AtomicU64,
    step_retries: AtomicU64,
    freezes: AtomicU64,
    frozen_ms_sum: AtomicU64,
    frozen_ms_max: AtomicU64,
}

impl Metrics {
    pub fn task_finished(&self, state: TaskState) {
        let counter = match state {
            TaskState::Completed => &self.tasks_completed,
            TaskState::Aborted => &self.tasks_aborted,
            TaskState::Failed => &self.tasks_failed,
            TaskState::Running => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn step_retried(&self) {
        self.step_retries.fetch_add(1, Ordering::Relaxed);
    }

    /// How long a snapshot kept its databases frozen.
    pub fn freeze_held(&self, frozen_ms: u64) {
        self.freezes.fetch_add(1, Ordering::Relaxed);
        self.frozen_ms_sum.fetch_add(frozen_ms, Ordering::Relaxed);
        self.frozen_ms_max.fetch_max(frozen_ms, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP flex_tasks_finished_total Tasks that ended, by final state."
        );
        let _ = writeln!(out, "# TYPE flex_tasks_finished_total counter");
        for (state, counter) in [
            (TaskState::Completed, &self.tasks_completed),
            (TaskState::Failed, &self.tasks_failed),
            (TaskState::Aborted, &self.tasks_aborted),
        ] {
            let _ = writeln!(
                out,
                "flex_tasks_finished_total{{state=\"{state}\"}} {}",
                get(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP flex_step_retries_total Step attempts that failed transiently and were retried."
        );
        let _ = writeln!(out, "# TYPE flex_step_retries_total counter");
        let _ = writeln!(out, "flex_step_retries_total {}", get(&self.step_retries));
        let _ = writeln!(
            out,
            "# HELP flex_freeze_duration_ms Time databases stayed frozen for application-consistent snapshots."
        );
        let _ = writeln!(out, "# TYPE flex_freeze_duration_ms summary");
        let _ = writeln!(
            out,
            "flex_freeze_duration_ms_sum {}",
            get(&self.frozen_ms_sum)
        );
        let _ = writeln!(out, "flex_freeze_duration_ms_count {}", get(&self.freezes));
        let _ = writeln!(
            out,
            "# HELP flex_freeze_duration_ms_max Longest freeze so far."
        );
        let _ = writeln!(out, "# TYPE flex_freeze_duration_ms_max gauge");
        let _ = writeln!(
            out,
            "flex_freeze_duration_ms_max {}",
            get(&self.frozen_ms_max)
        );
        out
    }
}
