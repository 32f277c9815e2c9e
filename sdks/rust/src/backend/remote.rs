//! apalis-core's `Persistence` over Chirpy's `WorkerService`: what Apalis's
//! SQL storages do with SQL, done with gRPC calls.
//!
//! `Persisted` turns any error into a dead worker, so transient failures
//! (the server restarting, a network blip) are absorbed here: a failed
//! heartbeat or lease is logged and retried at the next opportunity, and
//! only a worker that cannot register at all gives up.

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use apalis_core::{
    backend::{persistence::Persistence, persistence::TaskEvent, queue::Queue},
    task::{Task, builder::TaskBuilder, metadata::MetadataStore, task_id::TaskId},
    worker::context::WorkerContext,
};
use chirpy_proto::{
    json,
    v1::{self as pb, job_service_client::JobServiceClient, worker_service_client::WorkerServiceClient},
};
use tonic::transport::Channel;
use ulid::Ulid;

use super::{
    Config,
    ack::{AckLayer, Acks},
};
use crate::Error;

/// The client side of the worker protocol for one backend.
#[derive(Clone)]
pub(crate) struct Remote {
    workers: WorkerServiceClient<Channel>,
    jobs: JobServiceClient<Channel>,
    config: Arc<Config>,
    acks: Acks,
    state: Arc<State>,
}

/// What the calls of one backend share.
#[derive(Default)]
struct State {
    /// The id registered with the server.
    worker_id: OnceLock<String>,
    /// Set by a heartbeat with the QUIET directive: lease nothing.
    quiet: AtomicBool,
    /// The heartbeat interval the server asked for, in milliseconds.
    heartbeat_ms: AtomicU64,
    /// Whether a heartbeat has been answered, so `heartbeat_ms` is the
    /// server's.
    heard: AtomicBool,
}

/// The longest wait for the first heartbeat after registering.
///
/// `Persisted` arms its heartbeat timer with the interval it was given when
/// registration began, before the server's answer set ours; with a short
/// lease TTL, a first wait of the configured interval would let the first
/// leases expire.
const FIRST_HEARTBEAT: Duration = Duration::from_secs(1);

impl Remote {
    pub(crate) fn new(
        workers: WorkerServiceClient<Channel>,
        jobs: JobServiceClient<Channel>,
        config: Arc<Config>,
        acks: Acks,
    ) -> Self {
        let state = State::default();
        state.heartbeat_ms.store(config.heartbeat_interval.as_millis() as u64, Ordering::Relaxed);
        Remote { workers, jobs, config, acks, state: Arc::new(state) }
    }

    pub(crate) fn acks(&self) -> &Acks {
        &self.acks
    }

    pub(crate) fn ack_layer(&self) -> AckLayer {
        AckLayer::new(self.acks.clone())
    }

    pub(crate) fn worker_id(&self) -> Option<String> {
        self.state.worker_id.get().cloned()
    }

    pub(crate) fn heartbeat_interval(&self) -> Duration {
        let interval = Duration::from_millis(self.state.heartbeat_ms.load(Ordering::Relaxed));
        if self.state.heard.load(Ordering::Relaxed) { interval } else { interval.min(FIRST_HEARTBEAT) }
    }

    fn id(&self) -> String {
        self.worker_id().unwrap_or_default()
    }

    async fn send_heartbeat(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        let request = pb::HeartbeatRequest {
            worker_id: self.id(),
            queues: vec![self.config.queue.clone()],
            running_job_ids: self.acks.leased_ids(),
        };
        let response = self.workers.heartbeat(request).await?.into_inner();
        for id in response.canceled_job_ids.iter().chain(&response.lost_job_ids) {
            // Its outcome would be refused: stop the task and drop it.
            self.acks.stop(id);
            if let Ok(task) = worker.get_task(id) {
                let _ = task.cancel();
            }
        }
        if !response.canceled_job_ids.is_empty() || !response.lost_job_ids.is_empty() {
            tracing::info!(canceled = ?response.canceled_job_ids, lost = ?response.lost_job_ids, "stopping jobs");
        }
        let quiet = response.directive() == pb::WorkerDirective::Quiet;
        if quiet != self.state.quiet.swap(quiet, Ordering::Relaxed) {
            tracing::info!(quiet, "server directive changed");
        }
        if let Some(interval) = response.heartbeat_interval.and_then(|d| Duration::try_from(d).ok()) {
            let interval = interval.clamp(Duration::from_millis(200), Duration::from_secs(60));
            self.state.heartbeat_ms.store(interval.as_millis() as u64, Ordering::Relaxed);
        }
        self.state.heard.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The Apalis task of a leased job: its payload as JSON bytes, with the
    /// job's id, attempt, schedule and metadata in its context.
    fn task(job: pb::Job) -> Result<Task<Vec<u8>>, Error> {
        let ulid = Ulid::from_string(&job.id).map_err(|_| Error::Incomplete("valid job id"))?;
        let payload = job.payload.map(json::to_json).transpose()?.unwrap_or_default();
        let run_at = job
            .scheduled_at
            .and_then(|t| SystemTime::try_from(t).ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let mut builder = TaskBuilder::new(serde_json::to_vec(&payload)?)
            .task_id(TaskId::Ulid(ulid))
            // Apalis counts the attempt when it starts the task; the server
            // already counted it when leasing.
            .attempt(job.attempts.saturating_sub(1).max(0) as usize)
            .max_attempts(job.max_attempts.max(0) as usize)
            .priority(job.priority.max(0) as usize)
            .queue(Queue::from(job.queue))
            .run_at_timestamp(run_at)
            .with_metadata(metadata(job.metadata));
        if !job.idempotency_key.is_empty() {
            builder = builder.idempotency_key(job.idempotency_key);
        }
        Ok(builder.build())
    }
}

fn metadata(pairs: HashMap<String, String>) -> MetadataStore {
    let mut store = MetadataStore::default();
    for (key, value) in pairs {
        // Keys are unique in a map: inserting cannot collide.
        let _ = store.insert(key, value);
    }
    store
}

/// A Chirpy worker id for an Apalis worker name: its characters outside
/// `[A-Za-z0-9_.:@-]` replaced, plus a random suffix so that processes
/// sharing a name (replicas of one deployment) stay distinct.
fn worker_id(name: &str) -> String {
    let base: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '@' | '-') { c } else { '-' })
        .take(110)
        .collect();
    let suffix = Ulid::generate().to_string().to_ascii_lowercase();
    let base = if base.is_empty() { "worker".to_owned() } else { base };
    format!("{base}.{}", &suffix[suffix.len() - 8..])
}

/// Calls `attempt` until it succeeds, up to `tries` times, backing off
/// from 200 ms.
async fn with_retries<T, F, Fut>(tries: u32, mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut pause = Duration::from_millis(200);
    let mut tried = 1;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if tried >= tries => return Err(err),
            Err(err) => {
                tracing::warn!(cause = %err, retry_in = ?pause, "chirpy call failed");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                tried += 1;
            }
        }
    }
}

impl Persistence for Remote {
    type Compact = Vec<u8>;
    type Response = serde_json::Value;
    type Error = Error;

    async fn register(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        let id = self.state.worker_id.get_or_init(|| worker_id(worker.name())).clone();
        let this = self.clone();
        with_retries(8, || {
            let mut this = this.clone();
            let worker = worker.clone();
            async move { this.send_heartbeat(&worker).await }
        })
        .await?;
        tracing::info!(worker = %id, queue = %self.config.queue, "registered with chirpy");
        Ok(())
    }

    async fn heartbeat(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        if let Err(err) = self.send_heartbeat(worker).await {
            tracing::warn!(cause = %err, "heartbeat failed; leases may expire if this lasts");
        }
        Ok(())
    }

    async fn fetch_next(&mut self, _worker: &WorkerContext) -> Result<Vec<Task<Vec<u8>>>, Error> {
        if self.state.quiet.load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        // Idle, wait long for a job. Busy, wait at most half a heartbeat:
        // `Persisted` heartbeats only between fetches, and leases must stay
        // renewed.
        let wait = if self.acks.leased() == 0 { self.config.long_poll } else { self.heartbeat_interval() / 2 };
        let request = pb::LeaseJobsRequest {
            worker_id: self.id(),
            queues: vec![self.config.queue.clone()],
            max_jobs: self.config.batch_size as i32,
            wait: prost_types::Duration::try_from(wait).ok(),
        };
        let leases = match self.workers.lease_jobs(request).await {
            Ok(response) => response.into_inner().leases,
            Err(status) => {
                tracing::warn!(cause = %status, "cannot lease jobs; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Ok(Vec::new());
            }
        };
        let mut tasks = Vec::with_capacity(leases.len());
        for leased in leases {
            let Some(job) = leased.job else { continue };
            self.acks.hold(&job.id, &job.queue, leased.lease_id);
            match Self::task(job) {
                Ok(task) => tasks.push(task),
                Err(err) => tracing::error!(cause = %err, "cannot read a leased job; its lease will expire"),
            }
        }
        Ok(tasks)
    }

    async fn reenqueue_abandoned(&mut self, tasks: Vec<Task<Vec<u8>>>, _worker: &WorkerContext) -> Result<u64, Error> {
        let jobs: Vec<pb::JobLease> = tasks
            .iter()
            .filter_map(|task| task.task_id().map(|id| id.to_string()))
            .filter_map(|id| self.acks.take(&id).map(|(queue, lease_id)| pb::JobLease { queue, id, lease_id }))
            .collect();
        if jobs.is_empty() {
            return Ok(0);
        }
        let count = jobs.len() as u64;
        match self.workers.release_jobs(pb::ReleaseJobsRequest { jobs }).await {
            Ok(_) => tracing::info!(jobs = count, "handed back unstarted jobs"),
            Err(err) => tracing::warn!(cause = %err, "cannot hand back unstarted jobs; their leases will expire"),
        }
        Ok(count)
    }

    async fn handle_events(
        &mut self,
        _events: Vec<TaskEvent<serde_json::Value>>,
        _worker: &WorkerContext,
    ) -> Result<(), Error> {
        // Outcomes are reported by the ack layer (see the module docs of
        // `backend`); no persistence layer feeds this queue.
        Ok(())
    }

    async fn push_tasks(&mut self, tasks: Vec<Task<Vec<u8>>>) -> Result<(), Error> {
        let jobs = tasks
            .into_iter()
            .map(|task| {
                let payload: serde_json::Value = serde_json::from_slice(&task.args)?;
                Ok(pb::PushJobRequest {
                    queue: String::new(),
                    payload: Some(json::from_json(payload)),
                    scheduled_at: task.run_at().map(|secs| (UNIX_EPOCH + Duration::from_secs(secs)).into()),
                    priority: task.priority().map_or(0, |p| p.min(i32::MAX as usize) as i32),
                    max_attempts: task.max_attempts().map_or(0, |n| n.min(1000) as i32),
                    idempotency_key: task.idempotency_key().unwrap_or_default().to_owned(),
                    metadata: task.metadata().iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    retry_policy: None,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if jobs.is_empty() {
            return Ok(());
        }
        let request = pb::BatchPushJobsRequest { queue: self.config.queue.clone(), jobs };
        self.jobs.batch_push_jobs(request).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ids_are_valid_and_distinct() {
        let a = worker_id("email worker #1");
        let b = worker_id("email worker #1");
        assert_ne!(a, b);
        assert!(a.starts_with("email-worker--1."), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || "_.:@-".contains(c)), "{a}");
        assert!(worker_id(&"x".repeat(500)).len() <= 128);
    }
}
