//! Prometheus metrics at `GET /metrics` (`CHIRPY_METRICS`).
//!
//! Jobs are counted where the server sees them change (pushed, leased,
//! succeeded, failed, dead, canceled, expired), labelled by queue; queue
//! depth by state is read from the storage at each scrape (one grouped count
//! over the jobs, at the scrape interval). Request counts and latencies
//! per protocol, RPC and code come from [`requests`].
//!
//! Queue names are labels, so their number is the series count: fine for
//! the tens of queues job servers usually have, not for a queue per user.

pub mod requests;

use std::{sync::Arc, time::SystemTime};

use axum::{extract::State, http::header};
use chirpy_core::{Job, JobState, QueueStats};
use chirpy_storage::JobStore;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Durations observed, in seconds: from a millisecond to an hour.
const BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// What `GET /metrics` needs.
pub struct Scrape {
    handle: PrometheusHandle,
    store: Arc<dyn JobStore>,
}

/// Installs the process-wide recorder; without it (`CHIRPY_METRICS=false`)
/// every metric below is a no-op.
///
/// # Errors
///
/// When a recorder is already installed.
pub fn install(store: Arc<dyn JobStore>) -> Result<Arc<Scrape>, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    gauge!("chirpy_build_info", "version" => env!("CARGO_PKG_VERSION"), "storage" => store.kind()).set(1.0);
    describe();
    Ok(Arc::new(Scrape { handle, store }))
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("chirpy_build_info", "Chirpy's version and storage; always 1");
    describe_counter!("chirpy_jobs_pushed_total", "Jobs pushed (deduplicated pushes not counted)");
    describe_counter!("chirpy_jobs_leased_total", "Attempts handed to workers");
    describe_counter!("chirpy_jobs_succeeded_total", "Jobs finished successfully");
    describe_counter!("chirpy_jobs_failed_total", "Failed attempts, retried or not");
    describe_counter!("chirpy_jobs_dead_total", "Jobs sent to the failure queue");
    describe_counter!("chirpy_jobs_canceled_total", "Jobs canceled");
    describe_counter!("chirpy_leases_expired_total", "Leases that expired without an outcome");
    describe_counter!("chirpy_heartbeats_total", "Worker heartbeats received");
    describe_gauge!("chirpy_queue_jobs", "Jobs per queue and state, as of the scrape");
    describe_gauge!("chirpy_lease_polls_waiting", "Lease calls waiting for a job");
    describe_histogram!("chirpy_job_queue_wait_seconds", "From ready (scheduled_at) to leased");
    describe_histogram!("chirpy_job_run_seconds", "From leased to the worker's outcome");
    requests::describe();
}

impl Scrape {
    /// Renders every metric in the Prometheus text format.
    async fn render(&self) -> String {
        self.refresh_depths().await;
        self.handle.run_upkeep();
        self.handle.render()
    }

    async fn refresh_depths(&self) {
        match self.store.all_queues().await {
            Ok(queues) => {
                for queue in queues {
                    for (state, count) in counts(&queue) {
                        gauge!("chirpy_queue_jobs", "queue" => queue.name.clone(), "state" => state.as_str())
                            .set(count as f64);
                    }
                }
            }
            Err(err) => tracing::warn!(cause = %err, "cannot read queue depths for /metrics"),
        }
    }
}

fn counts(queue: &QueueStats) -> [(JobState, i64); 6] {
    [
        (JobState::Pending, queue.pending),
        (JobState::Scheduled, queue.scheduled),
        (JobState::Running, queue.running),
        (JobState::Succeeded, queue.succeeded),
        (JobState::Dead, queue.dead),
        (JobState::Canceled, queue.canceled),
    ]
}

/// `GET /metrics`.
pub async fn serve(State(scrape): State<Arc<Scrape>>) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], scrape.render().await)
}

/// Jobs stored by a push.
pub fn pushed(queue: &str, count: usize) {
    counter!("chirpy_jobs_pushed_total", "queue" => queue.to_owned()).increment(count as u64);
}

/// Jobs handed to a worker.
pub fn leased(jobs: &[&Job]) {
    for job in jobs {
        counter!("chirpy_jobs_leased_total", "queue" => job.queue.clone()).increment(1);
        if let Some(wait) = job.started_at.and_then(|at| at.duration_since(job.scheduled_at).ok()) {
            histogram!("chirpy_job_queue_wait_seconds", "queue" => job.queue.clone()).record(wait.as_secs_f64());
        }
    }
}

/// A worker's outcome, recorded: the job as it is now.
pub fn outcome(job: &Job) {
    let queue = job.queue.clone();
    match job.state {
        JobState::Succeeded => counter!("chirpy_jobs_succeeded_total", "queue" => queue.clone()).increment(1),
        JobState::Dead => {
            counter!("chirpy_jobs_failed_total", "queue" => queue.clone()).increment(1);
            counter!("chirpy_jobs_dead_total", "queue" => queue.clone()).increment(1);
        }
        _ => counter!("chirpy_jobs_failed_total", "queue" => queue.clone()).increment(1),
    }
    let ran = job.started_at.and_then(|at| SystemTime::now().duration_since(at).ok());
    if let Some(ran) = ran {
        histogram!("chirpy_job_run_seconds", "queue" => queue).record(ran.as_secs_f64());
    }
}

/// A job canceled.
pub fn canceled(queue: &str) {
    counter!("chirpy_jobs_canceled_total", "queue" => queue.to_owned()).increment(1);
}

/// Leases that expired, by the queue of each job.
pub fn expired(queues: &[String]) {
    for queue in queues {
        counter!("chirpy_leases_expired_total", "queue" => queue.clone()).increment(1);
    }
}

/// A worker heartbeat.
pub fn heartbeat() {
    counter!("chirpy_heartbeats_total").increment(1);
}

/// Counts a lease call as waiting while the guard lives.
pub fn waiting() -> impl Drop {
    struct Waiting;
    impl Drop for Waiting {
        fn drop(&mut self) {
            gauge!("chirpy_lease_polls_waiting").decrement(1.0);
        }
    }
    gauge!("chirpy_lease_polls_waiting").increment(1.0);
    Waiting
}
