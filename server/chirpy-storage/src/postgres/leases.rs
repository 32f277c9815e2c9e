//! The worker protocol on PostgreSQL: leases, outcomes, heartbeats and the
//! reaping of expired leases. Batches are one statement each (`unnest`), and
//! every outcome is fenced by its lease in the `WHERE` clause.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    time::SystemTime,
};

use async_trait::async_trait;
use chirpy_core::{
    Error, Job, JobId, JobState, QueueName, Result, WorkerId,
    lease::{Completion, Failure, LeaseRef, LeaseToken},
    worker::HeartbeatReport,
};
use sqlx::Row;

use super::{JOB_COLUMNS, PostgresStore, row_of, seconds};
use crate::{
    LeaseStore, Leased, Signals,
    apalis_sql::{
        CHIRPY_WORKER_KIND, DEAD, JobRow, chirpy_metadata, db_error, expired_lease_error, from_micros, lease_conflict,
        plan_failure, retry_assignments, state_condition, trusted,
    },
};

/// The current time in the statements below: parameter `$1`, Unix seconds.
const NOW: &str = "to_timestamp($1::float8)";

/// The condition fencing an update of job `j` to the lease in `input`.
///
/// Only `id` may lead PostgreSQL to the row: `IS NOT DISTINCT FROM` cannot
/// use an index, so the planner cannot pick the index on `lock_by` instead,
/// which holds every job the worker ever finished (Apalis keeps `lock_by`),
/// and would make each outcome cost a scan of the worker's history (with
/// 27,000 jobs finished by one worker: 367 ms per batch of 100, against
/// 1.5 ms by id).
const FENCE: &str = "j.id = input.id AND j.status IN ('Queued', 'Running') \
    AND (j.job_type, j.lock_by, j.attempts) IS NOT DISTINCT FROM (input.job_type, input.worker, input.attempt)";

/// The columns of the lease inputs of a batch, bound as `$2`..`$5`.
const LEASE_INPUT: &str = "unnest($2::text[], $3::text[], $4::int4[], $5::text[])";

#[async_trait]
impl LeaseStore for PostgresStore {
    fn signals(&self) -> &Signals {
        &self.signals
    }

    async fn register_worker(&self, worker: &WorkerId, queues: &[QueueName]) -> Result<()> {
        let queues = queues.iter().map(QueueName::as_str).collect::<Vec<_>>().join(",");
        sqlx::query(
            "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen, started_at) \
             VALUES ($2, $3, $4, '', to_timestamp($1::float8), to_timestamp($1::float8)) \
             ON CONFLICT (id) DO UPDATE SET storage_name = EXCLUDED.storage_name, last_seen = EXCLUDED.last_seen, \
               worker_type = CASE WHEN EXCLUDED.worker_type = '' THEN workers.worker_type ELSE EXCLUDED.worker_type END",
        )
        .bind(seconds(SystemTime::now()))
        .bind(worker.as_str())
        .bind(queues)
        .bind(CHIRPY_WORKER_KIND)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn lease(&self, worker: &WorkerId, queues: &[QueueName], max: usize) -> Result<Vec<Leased>> {
        let now = SystemTime::now();
        // SKIP LOCKED: concurrent leases (from any server instance) take
        // different jobs instead of queueing behind each other's row locks.
        // One scan per queue, in the order of Apalis's fetch index
        // (job_type, priority DESC, run_at), so that it stops after `max`
        // jobs. `job_type = ANY(...)`, or `id` in the scan's order, would make
        // PostgreSQL sort every ready job of the queue on each lease instead
        // (45 ms with 100,000 jobs waiting, against 2 ms this way); ties of
        // one batch push come in insertion order, and the id orders what the
        // scans found.
        let sql = format!(
            "WITH c AS (SELECT l.id FROM unnest($2::text[]) AS q(name), LATERAL (SELECT j.id, j.priority, j.run_at \
               FROM apalis.jobs j WHERE j.job_type = q.name AND {ready} \
               ORDER BY j.priority DESC, j.run_at LIMIT $4 FOR UPDATE SKIP LOCKED) l \
               ORDER BY l.priority DESC, l.run_at, l.id LIMIT $4), \
             j AS (UPDATE apalis.jobs j SET status = 'Running', lock_by = $3, lock_at = {NOW}, \
               attempts = j.attempts + 1, done_at = NULL FROM c WHERE j.id = c.id RETURNING j.*) \
             SELECT {JOB_COLUMNS} FROM j LEFT JOIN apalis.workers w ON w.id = j.lock_by",
            ready = state_condition(JobState::Pending, NOW),
        );
        let rows = sqlx::query(trusted(sql))
            .bind(seconds(now))
            .bind(queues.iter().map(QueueName::as_str).collect::<Vec<_>>())
            .bind(worker.as_str())
            .bind(max as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let mut leased = rows
            .iter()
            .map(|row| {
                let job = self.decode(row, now)?;
                Ok(Leased { lease: LeaseToken { attempt: job.attempts, worker: worker.clone() }, job })
            })
            .collect::<Result<Vec<_>>>()?;
        Leased::sort(&mut leased);
        Ok(leased)
    }

    async fn next_due(&self, queues: &[QueueName]) -> Result<Option<SystemTime>> {
        let sql = format!(
            "SELECT (EXTRACT(EPOCH FROM MIN(j.run_at)) * 1000000)::int8 FROM apalis.jobs j \
             WHERE j.job_type = ANY($2::text[]) AND {}",
            state_condition(JobState::Scheduled, NOW)
        );
        let due: Option<i64> = sqlx::query_scalar(trusted(sql))
            .bind(seconds(SystemTime::now()))
            .bind(queues.iter().map(QueueName::as_str).collect::<Vec<_>>())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(due.map(from_micros))
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<Result<Job>>> {
        let now = SystemTime::now();
        let leases: Vec<&LeaseRef> = completions.iter().map(|c| &c.job).collect();
        let results: Vec<String> = completions
            .iter()
            .map(|c| c.result.as_deref().map_or_else(|| "null".to_owned(), |r| String::from_utf8_lossy(r).into_owned()))
            .collect();
        let sql = format!(
            "WITH input AS (SELECT * FROM unnest($2::text[], $3::text[], $4::int4[], $5::text[], $6::text[]) \
               AS t(id, job_type, attempt, worker, result)), \
             j AS (UPDATE apalis.jobs j SET status = 'Done', last_result = jsonb_build_object('Ok', input.result::jsonb), \
               done_at = {NOW} FROM input WHERE {FENCE} RETURNING j.*) \
             SELECT {JOB_COLUMNS} FROM j LEFT JOIN apalis.workers w ON w.id = j.lock_by"
        );
        let rows = bind_leases(sqlx::query(trusted(sql)).bind(seconds(now)), &leases)
            .bind(results)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        self.outcomes(&leases, &rows, now, true).await
    }

    async fn fail(&self, failures: Vec<Failure>) -> Result<Vec<Result<Job>>> {
        let now = SystemTime::now();
        let current = self.rows_by_id(failures.iter().map(|f| f.job.id)).await?;
        let mut dead = Vec::new();
        let mut run_at = Vec::new();
        for failure in &failures {
            let (max_attempts, policy) = match current.get(&failure.job.id) {
                Some(row) => (row.max_attempts, chirpy_metadata::split(row.metadata.clone()).1),
                None => (0, None),
            };
            let plan = plan_failure(failure, max_attempts, policy.unwrap_or(self.options.default_retry), now);
            dead.push(plan.dead);
            run_at.push(seconds(plan.run_at));
        }
        let errors: Vec<&str> = failures.iter().map(|f| f.error.as_str()).collect();
        let leases: Vec<&LeaseRef> = failures.iter().map(|f| &f.job).collect();
        let sql = format!(
            "WITH input AS (SELECT * FROM unnest($2::text[], $3::text[], $4::int4[], $5::text[], $6::bool[], \
               $7::float8[], $8::text[]) AS t(id, job_type, attempt, worker, dead, run_at, error)), \
             j AS (UPDATE apalis.jobs j SET \
               status = CASE WHEN input.dead THEN 'Failed' ELSE 'Pending' END, \
               max_attempts = CASE WHEN input.dead THEN LEAST(j.max_attempts, j.attempts) ELSE j.max_attempts END, \
               run_at = CASE WHEN input.dead THEN j.run_at ELSE to_timestamp(input.run_at) END, \
               done_at = CASE WHEN input.dead THEN {NOW} ELSE NULL END, \
               lock_by = CASE WHEN input.dead THEN j.lock_by ELSE NULL END, \
               last_result = jsonb_build_object('Err', input.error) \
               FROM input WHERE {FENCE} RETURNING j.*) \
             SELECT {JOB_COLUMNS} FROM j LEFT JOIN apalis.workers w ON w.id = j.lock_by"
        );
        let rows = bind_leases(sqlx::query(trusted(sql)).bind(seconds(now)), &leases)
            .bind(dead)
            .bind(run_at)
            .bind(errors)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let outcomes = self.outcomes(&leases, &rows, now, false).await?;
        // Waiting leases must learn when a retry becomes due.
        let retried = outcomes.iter().flatten().filter(|job| !job.state.is_final()).map(|job| job.queue.clone());
        self.announce(retried).await?;
        Ok(outcomes)
    }

    async fn release(&self, leases: Vec<LeaseRef>) -> Result<Vec<Result<Job>>> {
        let now = SystemTime::now();
        let leases: Vec<&LeaseRef> = leases.iter().collect();
        let sql = format!(
            "WITH input AS (SELECT * FROM {LEASE_INPUT} AS t(id, job_type, attempt, worker)), \
             j AS (UPDATE apalis.jobs j SET status = 'Pending', attempts = j.attempts - 1, lock_by = NULL, \
               lock_at = NULL FROM input WHERE {FENCE} RETURNING j.*) \
             SELECT {JOB_COLUMNS} FROM j LEFT JOIN apalis.workers w ON w.id = j.lock_by"
        );
        let rows = bind_leases(sqlx::query(trusted(sql)).bind(seconds(now)), &leases)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let outcomes = self.outcomes(&leases, &rows, now, false).await?;
        self.announce(outcomes.iter().flatten().map(|job| job.queue.clone())).await?;
        Ok(outcomes)
    }

    async fn extend(&self, lease: &LeaseRef) -> Result<SystemTime> {
        let now = SystemTime::now();
        let sql = format!(
            "WITH input AS (SELECT * FROM {LEASE_INPUT} AS t(id, job_type, attempt, worker)), \
             j AS (UPDATE apalis.jobs j SET lock_at = {NOW} FROM input WHERE {FENCE} RETURNING j.*) \
             SELECT {JOB_COLUMNS} FROM j LEFT JOIN apalis.workers w ON w.id = j.lock_by"
        );
        let rows = bind_leases(sqlx::query(trusted(sql)).bind(seconds(now)), &[lease])
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let mut outcomes = self.outcomes(&[lease], &rows, now, false).await?;
        outcomes.pop().unwrap_or_else(|| Err(Error::Storage("no outcome for one lease".into())))?;
        Ok(now + self.options.lease_ttl)
    }

    async fn heartbeat(&self, worker: &WorkerId, queues: &[QueueName], running: &[JobId]) -> Result<HeartbeatReport> {
        self.register_worker(worker, queues).await?;
        if running.is_empty() {
            return Ok(HeartbeatReport::default());
        }
        let ids: Vec<String> = running.iter().map(JobId::to_string).collect();
        let held: HashSet<String> = sqlx::query_scalar(
            "UPDATE apalis.jobs j SET lock_at = to_timestamp($1::float8) \
             WHERE j.id = ANY($2::text[]) AND j.lock_by IS NOT DISTINCT FROM $3 AND j.status IN ('Queued', 'Running') \
             RETURNING j.id",
        )
        .bind(seconds(SystemTime::now()))
        .bind(&ids)
        .bind(worker.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();
        let rest: Vec<&String> = ids.iter().filter(|id| !held.contains(*id)).collect();
        if rest.is_empty() {
            return Ok(HeartbeatReport::default());
        }
        let statuses: HashMap<String, String> =
            sqlx::query("SELECT j.id, j.status FROM apalis.jobs j WHERE j.id = ANY($1::text[])")
                .bind(&rest)
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(db_error)?;
        let mut report = HeartbeatReport::default();
        for id in running.iter().filter(|id| !held.contains(&id.to_string())) {
            match statuses.get(&id.to_string()).map(String::as_str) {
                Some("Killed") => report.canceled.push(*id),
                _ => report.lost.push(*id),
            }
        }
        Ok(report)
    }

    async fn reap_expired_leases(&self) -> Result<Vec<String>> {
        let sql = format!(
            "WITH expired AS (SELECT j.id FROM apalis.jobs j JOIN apalis.workers w ON w.id = j.lock_by \
               WHERE j.status IN ('Queued', 'Running') AND w.storage_name = $2 \
                 AND j.lock_at < {NOW} - make_interval(secs => $3::float8) FOR UPDATE OF j SKIP LOCKED) \
             UPDATE apalis.jobs j SET \
               status = CASE WHEN j.attempts >= j.max_attempts THEN 'Failed' ELSE 'Pending' END, \
               done_at = CASE WHEN j.attempts >= j.max_attempts THEN {NOW} ELSE NULL END, \
               lock_by = NULL, last_result = jsonb_build_object('Err', $4::text) \
             FROM expired WHERE j.id = expired.id RETURNING j.job_type"
        );
        let queues: Vec<String> = sqlx::query_scalar(trusted(sql))
            .bind(seconds(SystemTime::now()))
            .bind(CHIRPY_WORKER_KIND)
            .bind(self.options.lease_ttl.as_secs_f64())
            .bind(expired_lease_error())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        self.announce(queues.clone()).await?;
        Ok(queues)
    }
}

impl PostgresStore {
    pub(super) async fn retry_dead_jobs(&self, queue: &QueueName, ids: Option<&[JobId]>) -> Result<Vec<JobId>> {
        let sql = format!(
            "UPDATE apalis.jobs j SET {} WHERE j.job_type = $2 AND {DEAD} AND ($3::text[] IS NULL OR j.id = ANY($3)) \
             RETURNING j.id",
            retry_assignments(NOW)
        );
        let ids: Option<Vec<String>> = ids.map(|ids| ids.iter().map(JobId::to_string).collect());
        let retried: Vec<String> = sqlx::query_scalar(trusted(sql))
            .bind(seconds(SystemTime::now()))
            .bind(queue.as_str())
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let mut retried = retried.iter().map(|id| JobId::parse(id)).collect::<Result<Vec<_>>>()?;
        retried.sort();
        if !retried.is_empty() {
            self.announce([queue.to_string()]).await?;
        }
        Ok(retried)
    }

    /// The current rows of `ids`, by id.
    async fn rows_by_id(&self, ids: impl Iterator<Item = JobId>) -> Result<HashMap<JobId, JobRow>> {
        let ids: Vec<String> = ids.map(|id| id.to_string()).collect();
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM apalis.jobs j LEFT JOIN apalis.workers w ON w.id = j.lock_by \
             WHERE j.id = ANY($1::text[])"
        );
        let rows = sqlx::query(trusted(sql)).bind(ids).fetch_all(&self.pool).await.map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let row = row_of(row)?;
                Ok((JobId::parse(&row.id)?, row))
            })
            .collect()
    }

    /// Pairs each lease with its outcome: the updated row, or why the fenced
    /// update did not match (see [`lease_conflict`]).
    async fn outcomes(
        &self,
        leases: &[&LeaseRef],
        updated: &[sqlx::postgres::PgRow],
        now: SystemTime,
        repeat_ok: bool,
    ) -> Result<Vec<Result<Job>>> {
        let mut jobs: HashMap<JobId, Job> = HashMap::new();
        for row in updated {
            let job = self.decode(row, now)?;
            jobs.insert(job.id, job);
        }
        let missing = leases.iter().filter(|l| !jobs.contains_key(&l.id)).map(|l| l.id);
        let mut current = self.rows_by_id(missing).await?;
        Ok(leases
            .iter()
            .map(|lease| match jobs.get(&lease.id) {
                Some(job) => Ok(job.clone()),
                None => match current.remove(&lease.id) {
                    Some(row) if row.queue == lease.queue.as_str() => {
                        lease_conflict(row, &lease.lease, repeat_ok, now, self.options.lease_ttl)
                    }
                    _ => Err(Error::not_found(format!(
                        "job {}",
                        chirpy_core::job::job_name(lease.queue.as_str(), &lease.id)
                    ))),
                },
            })
            .collect())
    }

    /// Wakes the lease calls waiting on `queues`, here and (through NOTIFY)
    /// on every other instance.
    pub(super) async fn announce(&self, queues: impl IntoIterator<Item = String>) -> Result<()> {
        let queues: BTreeSet<String> = queues.into_iter().collect();
        if queues.is_empty() {
            return Ok(());
        }
        for queue in &queues {
            self.signals.notify(queue);
        }
        sqlx::query("SELECT pg_notify($1, q) FROM unnest($2::text[]) AS q")
            .bind(super::listen::CHANNEL)
            .bind(queues.into_iter().collect::<Vec<_>>())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

/// Binds the leases of a batch as `$2`..`$5`: ids, queues, attempts, workers.
fn bind_leases<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    leases: &[&LeaseRef],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(leases.iter().map(|l| l.id.to_string()).collect::<Vec<_>>())
        .bind(leases.iter().map(|l| l.queue.to_string()).collect::<Vec<_>>())
        .bind(leases.iter().map(|l| l.lease.attempt).collect::<Vec<_>>())
        .bind(leases.iter().map(|l| l.lease.worker.to_string()).collect::<Vec<_>>())
}
