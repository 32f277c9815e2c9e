//! Chirpy's jobs, queues and workers in apalis-board's types.
//!
//! Apalis records six statuses where Chirpy derives six states; they map
//! as Apalis's SQL storages store them: pending and scheduled jobs are both
//! `Pending` (a scheduled one has a later `run_at`), running `Running`,
//! succeeded `Done`, dead `Failed`, canceled `Killed`.

use std::{str::FromStr, time::SystemTime};

use apalis_core::{
    backend::{QueueInfo, RunningWorker, StatType, Statistic, queue::Queue},
    task::{Task, builder::TaskBuilder, metadata::MetadataStore, status::Status, task_id::TaskId},
};
use chirpy_core::{Job, JobState, queue::QueueStats, worker::WorkerInfo};
use serde_json::Value;

/// The job as an apalis-board task: its payload as the arguments.
pub fn task(job: Job) -> Task<Value> {
    let status = match job.state {
        JobState::Pending | JobState::Scheduled => Status::Pending,
        JobState::Running => Status::Running,
        JobState::Succeeded => Status::Done,
        JobState::Dead => Status::Failed,
        JobState::Canceled => Status::Killed,
    };
    let mut builder = TaskBuilder::new(job.payload)
        .queue(Queue::from(job.queue))
        .status(status)
        .attempt(job.attempts.max(0) as usize)
        .max_attempts(job.max_attempts.max(0) as usize)
        .priority(job.priority.max(0) as usize)
        .run_at_timestamp(seconds(job.scheduled_at))
        .lock_at(job.started_at.filter(|_| job.lease.is_some()).map(seconds))
        .lock_by(job.lease.map(|lease| lease.worker_id))
        .done_at(job.finished_at.map(seconds))
        .with_metadata(MetadataStore::from_map(job.metadata.into_iter().collect()));
    // Chirpy's ids are ULIDs, as Apalis's are.
    if let Ok(id) = TaskId::from_str(&job.id.to_string()) {
        builder = builder.task_id(id);
    }
    if let Some(key) = job.idempotency_key {
        builder = builder.idempotency_key(key);
    }
    builder.build()
}

/// The states an apalis-board status filter stands for (`[None]`: any).
pub fn states(status: Option<&Status>) -> Vec<Option<JobState>> {
    let states: &[JobState] = match status {
        None => return vec![None],
        Some(Status::Pending) => &[JobState::Pending, JobState::Scheduled],
        Some(Status::Running) => &[JobState::Running],
        Some(Status::Done) => &[JobState::Succeeded],
        Some(Status::Failed) => &[JobState::Dead],
        Some(Status::Killed) => &[JobState::Canceled],
        // `Queued` is Apalis's "fetched, not started yet", which Chirpy's
        // leases never are; nor are statuses Apalis may add later.
        Some(_) => &[],
    };
    states.iter().copied().map(Some).collect()
}

/// A queue's counts as apalis-board statistics, under the titles Apalis's
/// SQL storages use (plus `SCHEDULED_JOBS`, which they count as pending).
pub fn statistics(stats: &QueueStats) -> Vec<Statistic> {
    let active = stats.pending + stats.scheduled + stats.running;
    let finished = stats.succeeded + stats.dead + stats.canceled;
    let number = |title: &str, value: i64, priority| Statistic {
        title: title.into(),
        stat_type: StatType::Number,
        value: value.to_string(),
        priority: Some(priority),
    };
    let mut statistics = vec![
        number("RUNNING_JOBS", stats.running, 1),
        number("PENDING_JOBS", stats.pending + stats.scheduled, 1),
        number("SCHEDULED_JOBS", stats.scheduled, 1),
        number("FAILED_JOBS", stats.dead, 1),
        number("ACTIVE_JOBS", active, 2),
        number("DONE_JOBS", stats.succeeded, 2),
        number("KILLED_JOBS", stats.canceled, 2),
        number("TOTAL_JOBS", active + finished, 3),
    ];
    if finished > 0 {
        statistics.push(Statistic {
            title: "SUCCESS_RATE".into(),
            stat_type: StatType::Percentage,
            value: format!("{:.2}", 100.0 * stats.succeeded as f64 / finished as f64),
            priority: Some(2),
        });
    }
    statistics
}

/// A queue as apalis-board lists it: its counts and the workers working it.
pub fn queue_info(stats: &QueueStats, workers: &[WorkerInfo]) -> QueueInfo {
    QueueInfo {
        name: stats.name.clone(),
        stats: statistics(stats),
        workers: workers.iter().filter(|w| w.queues.contains(&stats.name)).map(|w| w.id.clone()).collect(),
        // Apalis's daily counts of the past week; Chirpy keeps no history
        // (its rates are on /metrics).
        activity: Vec::new(),
    }
}

/// A worker as apalis-board lists it; one that works several queues names
/// them all, comma-separated.
pub fn running_worker(worker: &WorkerInfo) -> RunningWorker {
    RunningWorker {
        id: worker.id.clone(),
        queue: worker.queues.join(","),
        backend: worker.kind.clone(),
        started_at: worker.started_at.map_or(0, seconds),
        last_heartbeat: seconds(worker.last_heartbeat_at),
        layers: String::new(),
    }
}

fn seconds(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_count_every_state_once() {
        let stats =
            QueueStats { name: "q".into(), pending: 1, scheduled: 2, running: 3, succeeded: 4, dead: 5, canceled: 6 };
        let value = |title: &str| {
            statistics(&stats).into_iter().find(|s| s.title == title).map(|s| s.value).unwrap_or_default()
        };
        assert_eq!(value("PENDING_JOBS"), "3");
        assert_eq!(value("ACTIVE_JOBS"), "6");
        assert_eq!(value("TOTAL_JOBS"), "21");
        assert_eq!(value("SUCCESS_RATE"), "26.67");
        let empty = statistics(&QueueStats::default());
        assert!(empty.iter().all(|s| s.title != "SUCCESS_RATE"), "no rate without finished jobs");
    }

    #[test]
    fn status_filters_cover_each_state_once() {
        let mut covered: Vec<JobState> =
            [Status::Pending, Status::Queued, Status::Running, Status::Done, Status::Failed, Status::Killed]
                .iter()
                .flat_map(|status| states(Some(status)))
                .flatten()
                .collect();
        let count = covered.len();
        covered.sort_by_key(|s| s.as_str());
        covered.dedup();
        assert_eq!((count, covered.len()), (JobState::ALL.len(), JobState::ALL.len()));
        assert_eq!(states(None), vec![None]);
    }
}
