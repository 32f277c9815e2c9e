//! Chirpy's job storage: the [`JobStore`] trait and its implementations on
//! the schemas of Apalis's own storages.
//!
//! # Layout
//!
//! - [`sqlite`] and [`postgres`]: stores on apalis-sqlite's and
//!   apalis-postgres's tables, migrated by those crates, so that an embedded
//!   Apalis worker on the same database and queue works the jobs Chirpy
//!   stores, and the reverse.
//! - [`redis`]: the same on apalis-redis's keys, with Lua scripts for what
//!   apalis-redis lacks (priority, listing by state, cancel, max_attempts and
//!   backoff, idempotent pushes, lease expiry).
//! - `apalis_sql`: the vocabulary all three share: how Apalis statuses map to
//!   [`JobState`]s, the row a job is read into, fencing and failure plans.
//! - [`open`]: picks a store from a `DATABASE_URL`.
//!
//! Apalis stores jobs but has no cancel, no listing by every state and no
//! way to return the id of a pushed job; those are written here as SQL on
//! Apalis's tables, or Lua on its Redis keys. Transport concerns (gRPC codes, JSON) stay in the server.
#![forbid(unsafe_code)]

mod apalis_sql;
mod open;
pub mod postgres;
pub mod redis;
mod signals;
pub mod sqlite;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chirpy_core::{
    Job, JobId, JobState, NewJob, Page, PageRequest, QueueName, QueueStats, Result, WorkerId, WorkerInfo,
    job::RetryPolicy,
    lease::{Completion, Failure, LeaseRef, LeaseToken},
    worker::HeartbeatReport,
};

pub use open::{OpenError, open, redact};
pub use signals::{Signals, Subscription};

/// What a store needs to know beyond its connection.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a worker's lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// How long to keep trying to reach the database at start-up.
    pub connect_timeout: Duration,
    /// The backoff of failed jobs pushed without a retry policy.
    pub default_retry: RetryPolicy,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            lease_ttl: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            default_retry: RetryPolicy::default(),
        }
    }
}

/// The outcome of pushing one job.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    /// The job as stored: the new one, or the existing one it duplicates.
    pub job: Job,
    /// True when an existing job with the same idempotency key was returned.
    pub deduplicated: bool,
}

/// A job leased to a worker, with the token that fences its attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased {
    /// The job, running.
    pub job: Job,
    /// Its lease.
    pub lease: LeaseToken,
}

impl Leased {
    /// Puts `leased` in the order leases are handed out in: highest priority
    /// first, then earliest `scheduled_at`, then id.
    pub(crate) fn sort(leased: &mut [Leased]) {
        leased.sort_by_key(|l| (std::cmp::Reverse(l.job.priority), l.job.scheduled_at, l.job.id));
    }
}

/// A place to keep jobs: the operations behind `chirpy.v1.JobService`, and
/// (through [`LeaseStore`]) `chirpy.v1.WorkerService`.
///
/// Every implementation behaves the same; the server's integration tests run
/// one suite against each.
#[async_trait]
pub trait JobStore: LeaseStore + Send + Sync + 'static {
    /// The storage's name for logs and health: `sqlite`, `postgres` or `redis`.
    fn kind(&self) -> &'static str;

    /// Checks that the storage answers.
    async fn ping(&self) -> Result<()>;

    /// Stores `jobs`, all in one transaction, and returns one result per job
    /// in order. A job whose idempotency key already exists in its queue
    /// (or earlier in `jobs`) is not stored; the existing job is returned.
    async fn push(&self, jobs: Vec<NewJob>) -> Result<Vec<Pushed>>;

    /// Returns the job `id` of `queue`.
    async fn get(&self, queue: &QueueName, id: JobId) -> Result<Job>;

    /// Lists `queue`'s jobs in id (creation) order, optionally in one state.
    async fn list(&self, queue: &QueueName, state: Option<JobState>, page: &PageRequest) -> Result<Page<Job>>;

    /// Cancels a pending, scheduled or running job.
    async fn cancel(&self, queue: &QueueName, id: JobId) -> Result<Job>;

    /// Makes a dead job pending again, with its attempts reset.
    async fn retry(&self, queue: &QueueName, id: JobId) -> Result<Job>;

    /// Lists the queues that hold jobs, by name, with per-state counts.
    async fn queues(&self, page: &PageRequest) -> Result<Page<QueueStats>>;

    /// Every queue that holds jobs, through every page of [`queues`](JobStore::queues).
    async fn all_queues(&self) -> Result<Vec<QueueStats>> {
        let mut queues = Vec::new();
        let mut token = String::new();
        loop {
            let size = chirpy_core::limits::MAX_PAGE_SIZE as i32;
            let page = self.queues(&PageRequest::parse(size, &token, "queues".into())?).await?;
            queues.extend(page.items);
            match page.next_page_token {
                Some(next) => token = next,
                None => return Ok(queues),
            }
        }
    }

    /// Lists the workers heard from since `since`, most recent first.
    async fn workers(&self, since: SystemTime) -> Result<Vec<WorkerInfo>>;

    /// Makes dead jobs pending again: `ids`, or every dead job of `queue`
    /// when `None`. Returns the ids retried, in id order.
    async fn retry_dead(&self, queue: &QueueName, ids: Option<&[JobId]>) -> Result<Vec<JobId>>;
}

/// The worker protocol's side of a store: leases, outcomes, heartbeats.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// The wake-ups of this store's queues, for waiting lease calls.
    fn signals(&self) -> &Signals;

    /// Records `worker` as alive and working `queues` (in Apalis's workers
    /// table, as a `chirpy` worker).
    async fn register_worker(&self, worker: &WorkerId, queues: &[QueueName]) -> Result<()>;

    /// Leases up to `max` ready jobs of `queues` to `worker`: highest
    /// priority first, then oldest `scheduled_at`. Each lease counts an
    /// attempt. The worker must be registered.
    async fn lease(&self, worker: &WorkerId, queues: &[QueueName], max: usize) -> Result<Vec<Leased>>;

    /// When the earliest job of `queues` that is waiting for its time becomes
    /// ready, if any.
    async fn next_due(&self, queues: &[QueueName]) -> Result<Option<SystemTime>>;

    /// Records successes; each item is fenced by its lease on its own.
    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<Result<Job>>>;

    /// Records failures: a retry after a backoff, or the failure queue.
    async fn fail(&self, failures: Vec<Failure>) -> Result<Vec<Result<Job>>>;

    /// Hands leased, unstarted jobs back: pending again, attempt uncounted.
    async fn release(&self, leases: Vec<LeaseRef>) -> Result<Vec<Result<Job>>>;

    /// Renews one lease; returns when it now expires.
    async fn extend(&self, lease: &LeaseRef) -> Result<SystemTime>;

    /// Records a heartbeat: renews the leases `worker` holds among `running`,
    /// and reports those canceled or no longer held.
    async fn heartbeat(&self, worker: &WorkerId, queues: &[QueueName], running: &[JobId]) -> Result<HeartbeatReport>;

    /// Puts jobs whose Chirpy lease expired back to run (or in the failure
    /// queue when out of attempts). Returns the queue of each such job.
    async fn reap_expired_leases(&self) -> Result<Vec<String>>;
}
