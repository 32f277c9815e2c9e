//! A [`JobStore`] on apalis-postgres's schema (`apalis.jobs`, `apalis.workers`).
//!
//! Migrations are apalis-postgres's own. Times are bound as Unix seconds
//! (`to_timestamp($1)`) and read back as microseconds, so no date-time crate
//! is needed between Rust and SQL.

mod leases;
mod listen;

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use chirpy_core::{
    Error, Job, JobId, JobState, NewJob, Page, PageRequest, QueueName, QueueStats, Result, WorkerInfo, job::job_name,
};
use sqlx::{
    PgPool, Row,
    postgres::{PgPoolOptions, PgRow, types::PgHstore},
};

use crate::{
    JobStore, OpenError, Pushed, Signals, StoreOptions,
    apalis_sql::{
        DEAD, JobRow, UNFINISHED, cancel_assignments, chirpy_metadata, db_error, from_micros, micros, pushed_outcomes,
        queue_stats, retry_assignments, state_condition, state_counts, trusted, worker_info,
    },
};

/// Jobs in apalis-postgres's tables.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    options: StoreOptions,
    signals: Arc<Signals>,
}

/// The columns of a job query over `apalis.jobs j LEFT JOIN apalis.workers w`.
const JOB_COLUMNS: &str = "j.id, j.job_type, j.job, j.status, j.attempts, j.max_attempts, \
    (EXTRACT(EPOCH FROM j.run_at) * 1000000)::int8 AS run_at_us, j.last_result, \
    (EXTRACT(EPOCH FROM j.lock_at) * 1000000)::int8 AS lock_at_us, j.lock_by, w.storage_name AS lock_kind, \
    (EXTRACT(EPOCH FROM j.done_at) * 1000000)::int8 AS done_at_us, COALESCE(j.priority, 0) AS priority, \
    j.metadata, j.idempotency_key";

/// The current time, bound once as parameter `$1` (Unix seconds) and joined
/// in as `clock.now`, so that every row of a query, and the state Rust derives
/// from it, agree on what "now" is.
const CLOCK: &str = "(SELECT to_timestamp($1::float8) AS now) clock";

/// The current time in a query that joins [`CLOCK`].
const NOW: &str = "clock.now";

impl PostgresStore {
    /// Connects to `url`, retrying for up to `options.connect_timeout`, and
    /// runs apalis-postgres's migrations.
    ///
    /// # Errors
    ///
    /// [`OpenError`] when the database cannot be reached in time or the
    /// migrations fail.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, OpenError> {
        let pool_options = PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(5));
        let pool = crate::open::retry_connect(options.connect_timeout, || pool_options.clone().connect(url)).await?;
        apalis_postgres::PostgresStorage::setup(&pool).await.map_err(|e| OpenError::Migrate(e.to_string()))?;
        let signals = Arc::new(Signals::default());
        tokio::spawn(listen::relay(pool.clone(), signals.clone()));
        Ok(PostgresStore { pool, options, signals })
    }

    /// The connection pool, for embedding Apalis storages beside Chirpy.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn decode(&self, row: &PgRow, now: SystemTime) -> Result<Job> {
        row_of(row)?.into_job(now, self.options.lease_ttl)
    }

    /// Runs `UPDATE apalis.jobs j SET {set} WHERE j.id = $2 AND j.job_type = $3
    /// AND {condition}` and returns the updated job, or explains why no row
    /// matched: the job does not exist, or it is in a state `action` does not
    /// apply to.
    async fn transition(&self, queue: &QueueName, id: JobId, set: &str, condition: &str, action: &str) -> Result<Job> {
        let now = SystemTime::now();
        let sql = format!(
            "WITH j AS (UPDATE apalis.jobs j SET {set} FROM {CLOCK} \
               WHERE j.id = $2 AND j.job_type = $3 AND {condition} RETURNING j.*) \
             SELECT {JOB_COLUMNS} FROM j LEFT JOIN apalis.workers w ON w.id = j.lock_by"
        );
        let row = sqlx::query(trusted(sql))
            .bind(seconds(now))
            .bind(id.to_string())
            .bind(queue.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        match row {
            Some(row) => self.decode(&row, now),
            None => {
                let job = self.get(queue, id).await?;
                Err(Error::precondition(format!("{} is {}; {action}", job.name(), job.state)))
            }
        }
    }
}

/// Reads the columns of [`JOB_COLUMNS`].
fn row_of(row: &PgRow) -> Result<JobRow> {
    let metadata: Option<PgHstore> = row.try_get("metadata").map_err(db_error)?;
    Ok(JobRow {
        id: row.try_get("id").map_err(db_error)?,
        queue: row.try_get("job_type").map_err(db_error)?,
        payload: row.try_get("job").map_err(db_error)?,
        status: row.try_get("status").map_err(db_error)?,
        attempts: i64::from(row.try_get::<i32, _>("attempts").map_err(db_error)?),
        max_attempts: i64::from(row.try_get::<i32, _>("max_attempts").map_err(db_error)?),
        run_at_us: row.try_get("run_at_us").map_err(db_error)?,
        last_result: row.try_get("last_result").map_err(db_error)?,
        lock_at_us: row.try_get("lock_at_us").map_err(db_error)?,
        lock_by: row.try_get("lock_by").map_err(db_error)?,
        lock_kind: row.try_get("lock_kind").map_err(db_error)?,
        done_at_us: row.try_get("done_at_us").map_err(db_error)?,
        priority: i64::from(row.try_get::<i32, _>("priority").map_err(db_error)?),
        metadata: metadata
            .map(|m| m.0.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
            .unwrap_or_default(),
        idempotency_key: row.try_get("idempotency_key").map_err(db_error)?,
    })
}

/// `t` as Unix seconds with microseconds, the argument of `to_timestamp`.
fn seconds(t: SystemTime) -> f64 {
    micros(t) as f64 / 1e6
}

#[async_trait]
impl JobStore for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_error)?;
        Ok(())
    }

    async fn push(&self, jobs: Vec<NewJob>) -> Result<Vec<Pushed>> {
        let now = SystemTime::now();
        let mut jobs = jobs;
        for job in &mut jobs {
            // PostgreSQL keeps microseconds; store and report the same instant.
            job.scheduled_at = from_micros(micros(job.scheduled_at));
        }
        // One statement, so one round trip and its own transaction: the batch
        // is stored whole or not at all. Apalis's trigger notifies every
        // instance of the jobs ready now.
        let inserted: HashSet<String> = sqlx::query_scalar(
            "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key) \
             SELECT t.id, t.job_type, t.job, 'Pending', 0, t.max_attempts, to_timestamp(t.run_at), t.priority, t.metadata, t.idempotency_key \
             FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int4[], $5::float8[], $6::int4[], $7::hstore[], $8::text[]) \
               AS t(id, job_type, job, max_attempts, run_at, priority, metadata, idempotency_key) \
             ON CONFLICT (job_type, idempotency_key) DO NOTHING \
             RETURNING id",
        )
        .bind(jobs.iter().map(|j| j.id.to_string()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.payload.as_bytes()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| seconds(j.scheduled_at)).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.priority).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| {
                    let stored = chirpy_metadata::join(&j.metadata, j.retry_policy);
                    PgHstore(stored.into_iter().map(|(k, v)| (k, Some(v))).collect())
                })
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| j.idempotency_key.clone()).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();

        // The jobs not inserted collided with an idempotency key, on jobs
        // committed before the insert returned: read them now.
        let duplicates: Vec<&NewJob> = jobs.iter().filter(|j| !inserted.contains(&j.id.to_string())).collect();
        let mut existing: HashMap<(String, String), Job> = HashMap::new();
        if !duplicates.is_empty() {
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM apalis.jobs j LEFT JOIN apalis.workers w ON w.id = j.lock_by \
                 WHERE (j.job_type, j.idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
            );
            let rows = sqlx::query(trusted(sql))
                .bind(duplicates.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>())
                .bind(duplicates.iter().map(|j| j.idempotency_key.clone()).collect::<Vec<_>>())
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            for row in &rows {
                let job = self.decode(row, now)?;
                if let Some(key) = job.idempotency_key.clone() {
                    existing.insert((job.queue.clone(), key), job);
                }
            }
        }
        let stored = jobs.iter().filter(|j| inserted.contains(&j.id.to_string()));
        for queue in stored.clone().map(|j| j.queue.as_str()).collect::<BTreeSet<_>>() {
            self.signals.notify(queue);
        }
        // Jobs for later are not in Apalis's notifications; the other
        // instances' waiting leases must learn their time.
        let later = stored.filter(|j| j.scheduled_at > now).map(|j| j.queue.to_string());
        self.announce(later.collect::<Vec<_>>()).await?;

        pushed_outcomes(jobs, &inserted, &existing, now)
    }

    async fn get(&self, queue: &QueueName, id: JobId) -> Result<Job> {
        let now = SystemTime::now();
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM apalis.jobs j LEFT JOIN apalis.workers w ON w.id = j.lock_by \
             WHERE j.id = $1 AND j.job_type = $2"
        );
        let row = sqlx::query(trusted(sql))
            .bind(id.to_string())
            .bind(queue.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        match row {
            Some(row) => self.decode(&row, now),
            None => Err(Error::not_found(format!("job {}", job_name(queue.as_str(), &id)))),
        }
    }

    async fn list(&self, queue: &QueueName, state: Option<JobState>, page: &PageRequest) -> Result<Page<Job>> {
        let now = SystemTime::now();
        let condition = state.map_or_else(|| "TRUE".to_owned(), |s| state_condition(s, NOW));
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM apalis.jobs j LEFT JOIN apalis.workers w ON w.id = j.lock_by CROSS JOIN {CLOCK} \
             WHERE j.job_type = $2 AND ($3::text IS NULL OR j.id > $3) AND {condition} \
             ORDER BY j.id LIMIT $4"
        );
        let rows = sqlx::query(trusted(sql))
            .bind(seconds(now))
            .bind(queue.as_str())
            .bind(page.after.as_deref())
            .bind(page.fetch_limit())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let jobs = rows.iter().map(|row| self.decode(row, now)).collect::<Result<Vec<_>>>()?;
        Ok(page.page(jobs, |job| job.id.to_string()))
    }

    async fn cancel(&self, queue: &QueueName, id: JobId) -> Result<Job> {
        self.transition(
            queue,
            id,
            &cancel_assignments(NOW),
            UNFINISHED,
            "only pending, scheduled or running jobs can be canceled",
        )
        .await
    }

    async fn retry(&self, queue: &QueueName, id: JobId) -> Result<Job> {
        let job = self.transition(queue, id, &retry_assignments(NOW), DEAD, "only dead jobs can be retried").await?;
        self.announce([queue.to_string()]).await?;
        Ok(job)
    }

    async fn queues(&self, page: &PageRequest) -> Result<Page<QueueStats>> {
        let sql = format!(
            "SELECT j.job_type, {} FROM apalis.jobs j CROSS JOIN {CLOCK} \
             WHERE ($2::text IS NULL OR j.job_type > $2) GROUP BY j.job_type ORDER BY j.job_type LIMIT $3",
            state_counts(NOW)
        );
        let rows = sqlx::query(trusted(sql))
            .bind(seconds(SystemTime::now()))
            .bind(page.after.as_deref())
            .bind(page.fetch_limit())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let queues = rows.iter().map(queue_stats).collect::<Result<Vec<_>, sqlx::Error>>().map_err(db_error)?;
        Ok(page.page(queues, |q| q.name.clone()))
    }

    async fn workers(&self, since: SystemTime) -> Result<Vec<WorkerInfo>> {
        let rows = sqlx::query(
            "SELECT w.id, w.worker_type, w.storage_name, \
               (EXTRACT(EPOCH FROM w.started_at) * 1000000)::int8 AS started_at_us, \
               (EXTRACT(EPOCH FROM w.last_seen) * 1000000)::int8 AS last_seen_us, \
               (SELECT COUNT(*) FROM apalis.jobs j WHERE j.lock_by = w.id AND j.status IN ('Queued', 'Running')) AS running \
             FROM apalis.workers w WHERE w.last_seen >= to_timestamp($1::float8) ORDER BY w.last_seen DESC, w.id",
        )
        .bind(seconds(since))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(worker_info).collect::<Result<Vec<_>, sqlx::Error>>().map_err(db_error)
    }

    async fn retry_dead(&self, queue: &QueueName, ids: Option<&[JobId]>) -> Result<Vec<JobId>> {
        self.retry_dead_jobs(queue, ids).await
    }
}
