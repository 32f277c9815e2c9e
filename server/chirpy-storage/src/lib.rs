//! Chirpy's job storage: the [`JobStore`] trait and its implementations on
//! the schemas of Apalis's own storages.
//!
//! # Layout
//!
//! - [`sqlite`] and [`postgres`]: stores on apalis-sqlite's and
//!   apalis-postgres's tables, migrated by those crates, so that an embedded
//!   Apalis worker on the same database and queue works the jobs Chirpy
//!   stores, and the reverse.
//! - `apalis_sql`: the SQL vocabulary both share: how Apalis statuses map to
//!   [`JobState`]s, and the row a query returns.
//! - [`open`]: picks a store from a `DATABASE_URL`.
//!
//! Apalis stores jobs but has no cancel, no listing by every state and no
//! way to return the id of a pushed job; those are written here as SQL on
//! Apalis's tables. Transport concerns (gRPC codes, JSON) stay in the server.
#![forbid(unsafe_code)]

mod apalis_sql;
mod open;
pub mod postgres;
pub mod sqlite;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chirpy_core::{Job, JobId, JobState, NewJob, Page, PageRequest, QueueName, QueueStats, Result, WorkerInfo};

pub use open::{OpenError, open, redact};

/// What a store needs to know beyond its connection.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a worker's lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// How long to keep trying to reach the database at start-up.
    pub connect_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { lease_ttl: Duration::from_secs(30), connect_timeout: Duration::from_secs(15) }
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

/// A place to keep jobs: the operations behind `chirpy.v1.JobService`.
///
/// Every implementation behaves the same; the server's integration tests run
/// one suite against each.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// The storage's name for logs and health: `sqlite` or `postgres`.
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

    /// Lists the workers heard from since `since`, most recent first.
    async fn workers(&self, since: SystemTime) -> Result<Vec<WorkerInfo>>;
}
