//! The worker protocol on SQLite: leases, outcomes, heartbeats and the
//! reaping of expired leases. SQLite serialises writers, so a lease is one
//! `UPDATE`; batches of outcomes run in one `BEGIN IMMEDIATE` transaction,
//! each item fenced by its lease in the `WHERE` clause.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    time::SystemTime,
};

use async_trait::async_trait;
use chirpy_core::{
    Error, Job, JobId, JobState, QueueName, Result, WorkerId,
    job::job_name,
    lease::{Completion, Failure, LeaseRef, LeaseToken},
    worker::HeartbeatReport,
};
use sqlx::Row;

use super::{JOB_COLUMNS, NOW, SqliteStore, row_of, stored_run_at, unix_seconds};
use crate::{
    LeaseStore, Leased, Signals,
    apalis_sql::{
        CHIRPY_WORKER_KIND, DEAD, JobRow, chirpy_metadata, db_error, expired_lease_error, from_micros, lease_conflict,
        plan_failure, retry_assignments, state_condition, trusted,
    },
};

/// The condition fencing an update of job `j` to a lease bound as `?2`
/// (id), `?3` (queue), `?4` (attempt) and `?5` (worker).
const FENCE: &str =
    "j.id = ?2 AND j.job_type = ?3 AND j.status IN ('Queued', 'Running') AND j.lock_by = ?5 AND j.attempts = ?4";

/// A JSON array of strings, the form SQLite's `json_each` reads lists in.
fn json_list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    serde_json::Value::Array(items.into_iter().map(|i| serde_json::Value::String(i.to_string())).collect()).to_string()
}

/// The lease of at most `?3` ready jobs of `queues` queues (bound from
/// `?4` on) for worker `?2` at `?1`.
///
/// One ordered scan per queue and state, each on the partial index Apalis
/// keeps for it (`idx_jobs_pending`, `idx_jobs_failed`): a single scan with
/// `job_type IN (...)` and the state's `OR` cannot use them, and SQLite
/// would sort every ready job of the queue on each lease (40 ms at 100k
/// jobs, against 0.3 ms this way). Pending jobs with a `lock_by` are left
/// alone, as Apalis's own fetch leaves them; neither writes one.
fn lease_statement(queues: usize) -> String {
    let scans: Vec<String> = (0..queues)
        .flat_map(|i| {
            ["j.status = 'Pending' AND j.lock_by IS NULL", "j.status = 'Failed' AND j.attempts < j.max_attempts"].map(
                |state| {
                    format!(
                        "SELECT * FROM (SELECT j.id, j.priority, j.run_at FROM Jobs j \
                         WHERE j.job_type = ?{queue} AND {state} AND j.run_at <= ?1 \
                         ORDER BY j.priority DESC, j.run_at, j.id LIMIT ?3)",
                        queue = i + 4
                    )
                },
            )
        })
        .collect();
    format!(
        "UPDATE Jobs SET status = 'Running', lock_by = ?2, lock_at = ?1, attempts = attempts + 1, done_at = NULL \
         WHERE id IN (SELECT id FROM ({}) ORDER BY priority DESC, run_at, id LIMIT ?3) RETURNING id",
        scans.join(" UNION ALL ")
    )
}

#[async_trait]
impl LeaseStore for SqliteStore {
    fn signals(&self) -> &Signals {
        &self.signals
    }

    async fn register_worker(&self, worker: &WorkerId, queues: &[QueueName]) -> Result<()> {
        let queues = queues.iter().map(QueueName::as_str).collect::<Vec<_>>().join(",");
        sqlx::query(
            "INSERT INTO Workers (id, worker_type, storage_name, layers, last_seen, started_at) \
             VALUES (?2, ?3, ?4, '', ?1, ?1) \
             ON CONFLICT (id) DO UPDATE SET storage_name = excluded.storage_name, last_seen = excluded.last_seen, \
               worker_type = CASE WHEN excluded.worker_type = '' THEN Workers.worker_type ELSE excluded.worker_type END",
        )
        .bind(unix_seconds(SystemTime::now()))
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
        if queues.is_empty() {
            // No scan to build a statement from, and nothing to lease.
            return Ok(Vec::new());
        }
        let mut query = sqlx::query_scalar(trusted(lease_statement(queues.len())))
            .bind(unix_seconds(now))
            .bind(worker.as_str())
            .bind(max as i64);
        for queue in queues {
            query = query.bind(queue.as_str());
        }
        let ids: Vec<String> = query.fetch_all(&self.pool).await.map_err(db_error)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut leased = self
            .rows_by_id(ids.iter())
            .await?
            .into_values()
            .map(|row| {
                let job = row.into_job(now, self.options.lease_ttl)?;
                Ok(Leased { lease: LeaseToken { attempt: job.attempts, worker: worker.clone() }, job })
            })
            .collect::<Result<Vec<_>>>()?;
        Leased::sort(&mut leased);
        Ok(leased)
    }

    async fn next_due(&self, queues: &[QueueName]) -> Result<Option<SystemTime>> {
        let sql = format!(
            "SELECT MIN(j.run_at) * 1000000 FROM Jobs j WHERE j.job_type IN (SELECT value FROM json_each(?2)) AND {}",
            state_condition(JobState::Scheduled, NOW)
        );
        let due: Option<i64> = sqlx::query_scalar(trusted(sql))
            .bind(unix_seconds(SystemTime::now()))
            .bind(json_list(queues))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(due.map(from_micros))
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<Result<Job>>> {
        let now = SystemTime::now();
        let sql = format!(
            "UPDATE Jobs AS j SET status = 'Done', last_result = json_object('Ok', json(?6)), done_at = ?1 \
             WHERE {FENCE} RETURNING id"
        );
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
        let mut updated = HashSet::new();
        for completion in &completions {
            let result = completion.result.as_deref().map_or_else(|| "null".into(), String::from_utf8_lossy);
            let row = bind_lease(sqlx::query_scalar::<_, String>(trusted(sql.clone())), now, &completion.job)
                .bind(result.into_owned())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            updated.extend(row);
        }
        tx.commit().await.map_err(db_error)?;
        let leases: Vec<&LeaseRef> = completions.iter().map(|c| &c.job).collect();
        self.outcomes(&leases, &updated, now, true).await
    }

    async fn fail(&self, failures: Vec<Failure>) -> Result<Vec<Result<Job>>> {
        let now = SystemTime::now();
        let current = self.rows_by_id(failures.iter().map(|f| f.job.id)).await?;
        let sql = format!(
            "UPDATE Jobs AS j SET \
               status = CASE WHEN ?6 THEN 'Failed' ELSE 'Pending' END, \
               max_attempts = CASE WHEN ?6 THEN MIN(max_attempts, attempts) ELSE max_attempts END, \
               run_at = CASE WHEN ?6 THEN run_at ELSE ?7 END, \
               done_at = CASE WHEN ?6 THEN ?1 ELSE NULL END, \
               lock_by = CASE WHEN ?6 THEN lock_by ELSE NULL END, \
               last_result = json_object('Err', ?8) \
             WHERE {FENCE} RETURNING id"
        );
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
        let mut updated = HashSet::new();
        for failure in &failures {
            let (max_attempts, policy) = match current.get(&failure.job.id.to_string()) {
                Some(row) => (row.max_attempts, chirpy_metadata::split(row.metadata.clone()).1),
                None => (0, None),
            };
            let plan = plan_failure(failure, max_attempts, policy.unwrap_or(self.options.default_retry), now);
            let row = bind_lease(sqlx::query_scalar::<_, String>(trusted(sql.clone())), now, &failure.job)
                .bind(plan.dead)
                .bind(stored_run_at(plan.run_at, now))
                .bind(failure.error.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            updated.extend(row);
        }
        tx.commit().await.map_err(db_error)?;
        let leases: Vec<&LeaseRef> = failures.iter().map(|f| &f.job).collect();
        let outcomes = self.outcomes(&leases, &updated, now, false).await?;
        // Waiting leases must learn when a retry becomes due.
        self.announce(outcomes.iter().flatten().filter(|job| !job.state.is_final()).map(|job| job.queue.clone()));
        Ok(outcomes)
    }

    async fn release(&self, leases: Vec<LeaseRef>) -> Result<Vec<Result<Job>>> {
        let now = SystemTime::now();
        let sql = format!(
            "UPDATE Jobs AS j SET status = 'Pending', attempts = attempts - 1, lock_by = NULL, lock_at = NULL \
             WHERE {FENCE} RETURNING id"
        );
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
        let mut updated = HashSet::new();
        for lease in &leases {
            let row = bind_lease(sqlx::query_scalar::<_, String>(trusted(sql.clone())), now, lease)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            updated.extend(row);
        }
        tx.commit().await.map_err(db_error)?;
        let leases: Vec<&LeaseRef> = leases.iter().collect();
        let outcomes = self.outcomes(&leases, &updated, now, false).await?;
        self.announce(outcomes.iter().flatten().map(|job| job.queue.clone()));
        Ok(outcomes)
    }

    async fn extend(&self, lease: &LeaseRef) -> Result<SystemTime> {
        let now = SystemTime::now();
        let sql = format!("UPDATE Jobs AS j SET lock_at = ?1 WHERE {FENCE} RETURNING id");
        let row = bind_lease(sqlx::query_scalar::<_, String>(trusted(sql)), now, lease)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        let mut outcomes = self.outcomes(&[lease], &row.into_iter().collect(), now, false).await?;
        outcomes.pop().unwrap_or_else(|| Err(Error::Storage("no outcome for one lease".into())))?;
        Ok(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(unix_seconds(now) as u64) + self.options.lease_ttl)
    }

    async fn heartbeat(&self, worker: &WorkerId, queues: &[QueueName], running: &[JobId]) -> Result<HeartbeatReport> {
        self.register_worker(worker, queues).await?;
        if running.is_empty() {
            return Ok(HeartbeatReport::default());
        }
        let held: HashSet<String> = sqlx::query_scalar(
            "UPDATE Jobs SET lock_at = ?1 WHERE id IN (SELECT value FROM json_each(?2)) AND lock_by = ?3 \
             AND status IN ('Queued', 'Running') RETURNING id",
        )
        .bind(unix_seconds(SystemTime::now()))
        .bind(json_list(running))
        .bind(worker.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();
        let rest: Vec<&JobId> = running.iter().filter(|id| !held.contains(&id.to_string())).collect();
        if rest.is_empty() {
            return Ok(HeartbeatReport::default());
        }
        let statuses: HashMap<String, String> =
            sqlx::query("SELECT id, status FROM Jobs WHERE id IN (SELECT value FROM json_each(?1))")
                .bind(json_list(&rest))
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(db_error)?;
        let mut report = HeartbeatReport::default();
        for id in rest {
            match statuses.get(&id.to_string()).map(String::as_str) {
                Some("Killed") => report.canceled.push(*id),
                _ => report.lost.push(*id),
            }
        }
        Ok(report)
    }

    async fn reap_expired_leases(&self) -> Result<Vec<String>> {
        let queues: Vec<String> = sqlx::query_scalar(
            "UPDATE Jobs SET \
               status = CASE WHEN attempts >= max_attempts THEN 'Failed' ELSE 'Pending' END, \
               done_at = CASE WHEN attempts >= max_attempts THEN ?1 ELSE NULL END, \
               lock_by = NULL, last_result = json_object('Err', ?4) \
             WHERE id IN (SELECT j.id FROM Jobs j JOIN Workers w ON w.id = j.lock_by \
               WHERE j.status IN ('Queued', 'Running') AND w.storage_name = ?2 AND j.lock_at < ?1 - ?3) \
             RETURNING job_type",
        )
        .bind(unix_seconds(SystemTime::now()))
        .bind(CHIRPY_WORKER_KIND)
        .bind(self.options.lease_ttl.as_secs() as i64)
        .bind(expired_lease_error())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        self.announce(queues.clone());
        Ok(queues)
    }
}

impl SqliteStore {
    pub(super) async fn retry_dead_jobs(&self, queue: &QueueName, ids: Option<&[JobId]>) -> Result<Vec<JobId>> {
        let sql = format!(
            "UPDATE Jobs AS j SET {} WHERE j.job_type = ?2 AND {DEAD} \
             AND (?3 IS NULL OR j.id IN (SELECT value FROM json_each(?3))) RETURNING id",
            retry_assignments(NOW)
        );
        let retried: Vec<String> = sqlx::query_scalar(trusted(sql))
            .bind(unix_seconds(SystemTime::now()))
            .bind(queue.as_str())
            .bind(ids.map(json_list))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let mut retried = retried.iter().map(|id| JobId::parse(id)).collect::<Result<Vec<_>>>()?;
        retried.sort();
        if !retried.is_empty() {
            self.announce([queue.to_string()]);
        }
        Ok(retried)
    }

    /// The current rows of `ids`, by id.
    pub(super) async fn rows_by_id<T: ToString>(
        &self,
        ids: impl IntoIterator<Item = T>,
    ) -> Result<HashMap<String, JobRow>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM Jobs j LEFT JOIN Workers w ON w.id = j.lock_by \
             WHERE j.id IN (SELECT value FROM json_each(?1))"
        );
        let rows = sqlx::query(trusted(sql)).bind(json_list(ids)).fetch_all(&self.pool).await.map_err(db_error)?;
        rows.iter().map(|row| row_of(row).map(|row| (row.id.clone(), row))).collect()
    }

    /// Pairs each lease with its outcome: the job as updated, or why the
    /// fenced update did not match (see [`lease_conflict`]).
    async fn outcomes(
        &self,
        leases: &[&LeaseRef],
        updated: &HashSet<String>,
        now: SystemTime,
        repeat_ok: bool,
    ) -> Result<Vec<Result<Job>>> {
        let mut rows = self.rows_by_id(leases.iter().map(|l| l.id)).await?;
        Ok(leases
            .iter()
            .map(|lease| {
                let id = lease.id.to_string();
                match rows.remove(&id) {
                    Some(row) if updated.contains(&id) => row.into_job(now, self.options.lease_ttl),
                    Some(row) if row.queue == lease.queue.as_str() => {
                        lease_conflict(row, &lease.lease, repeat_ok, now, self.options.lease_ttl)
                    }
                    _ => Err(Error::not_found(format!("job {}", job_name(lease.queue.as_str(), &lease.id)))),
                }
            })
            .collect())
    }

    /// Wakes the lease calls waiting on `queues`.
    pub(super) fn announce(&self, queues: impl IntoIterator<Item = String>) {
        for queue in queues.into_iter().collect::<BTreeSet<_>>() {
            self.signals.notify(&queue);
        }
    }
}

/// Binds the current time and a lease as `?1`..`?5`, the parameters of
/// [`FENCE`].
fn bind_lease<'q, O>(
    query: sqlx::query::QueryScalar<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments>,
    now: SystemTime,
    lease: &LeaseRef,
) -> sqlx::query::QueryScalar<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments> {
    query
        .bind(unix_seconds(now))
        .bind(lease.id.to_string())
        .bind(lease.queue.to_string())
        .bind(lease.lease.attempt)
        .bind(lease.lease.worker.to_string())
}
