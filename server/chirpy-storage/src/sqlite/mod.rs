//! A [`JobStore`] on apalis-sqlite's schema (`Jobs`, `Workers`).
//!
//! Migrations are apalis-sqlite's own; the connection settings are Chirpy's
//! (see [`SqliteStore::connect`]). SQLite keeps times as whole Unix seconds,
//! so a job scheduled for later is rounded up to the next second: it may run
//! up to a second late, never early.

mod leases;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    str::FromStr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use chirpy_core::{
    Error, Job, JobId, JobState, NewJob, Page, PageRequest, QueueName, QueueStats, Result, WorkerInfo, job::job_name,
};
use sqlx::{
    QueryBuilder, Row, Sqlite, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous},
};

use crate::{
    JobStore, OpenError, Pushed, Signals, StoreOptions,
    apalis_sql::{
        DEAD, JobRow, UNFINISHED, cancel_assignments, chirpy_metadata, db_error, pushed_outcomes, queue_stats,
        retry_assignments, state_condition, state_counts, trusted, worker_info,
    },
};

/// Jobs in apalis-sqlite's tables.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    options: StoreOptions,
    signals: Arc<Signals>,
}

/// The columns of a job query over `Jobs j LEFT JOIN Workers w`.
const JOB_COLUMNS: &str = "j.id, j.job_type, j.job, j.status, j.attempts, j.max_attempts, \
    j.run_at * 1000000 AS run_at_us, j.last_result, j.lock_at * 1000000 AS lock_at_us, j.lock_by, \
    w.storage_name AS lock_kind, j.done_at * 1000000 AS done_at_us, j.priority, j.metadata, j.idempotency_key";

/// The current time in SQL: parameter `?1`, bound as Unix seconds.
const NOW: &str = "?1";

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and runs
    /// apalis-sqlite's migrations.
    ///
    /// Unlike `apalis_sqlite::SqliteStorage::setup`, which turns
    /// `synchronous` off, this keeps SQLite's write-ahead log with
    /// `synchronous = NORMAL`: a crash of the process loses nothing that was
    /// acknowledged to a client.
    ///
    /// # Errors
    ///
    /// [`OpenError`] when the file cannot be opened or migrated.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, OpenError> {
        let connect_options = SqliteConnectOptions::from_str(url)
            .map_err(|e| OpenError::BadUrl(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // Every connection to `:memory:` is a database of its own: keep
        // exactly one, for the life of the process.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let file = connect_options.get_filename();
        if let Some(dir) = file.parent().filter(|dir| !in_memory && !dir.as_os_str().is_empty() && !dir.exists()) {
            return Err(OpenError::BadUrl(format!(
                "the directory {} of {} does not exist",
                dir.display(),
                file.display()
            )));
        }
        let pool_options = if in_memory {
            SqlitePoolOptions::new().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(4)
        };
        let pool = crate::open::retry_connect(options.connect_timeout, || {
            pool_options.clone().connect_with(connect_options.clone())
        })
        .await?;
        apalis_sqlite::SqliteStorage::migrations().run(&pool).await.map_err(|e| OpenError::Migrate(e.to_string()))?;
        Ok(SqliteStore { pool, options, signals: Arc::default() })
    }

    /// The connection pool, for embedding Apalis storages beside Chirpy.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn decode(&self, row: &SqliteRow, now: SystemTime) -> Result<Job> {
        row_of(row)?.into_job(now, self.options.lease_ttl)
    }

    /// Updates the job with `set` if it meets `condition`, and returns it;
    /// otherwise explains why not (unknown job, or a state `action` does not
    /// apply to).
    async fn transition(&self, queue: &QueueName, id: JobId, set: &str, condition: &str, action: &str) -> Result<Job> {
        let sql =
            format!("UPDATE Jobs AS j SET {set} WHERE j.id = ?2 AND j.job_type = ?3 AND {condition} RETURNING id");
        let updated = sqlx::query(trusted(sql))
            .bind(unix_seconds(SystemTime::now()))
            .bind(id.to_string())
            .bind(queue.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        let job = self.get(queue, id).await?;
        match updated {
            Some(_) => Ok(job),
            None => Err(Error::precondition(format!("{} is {}; {action}", job.name(), job.state))),
        }
    }
}

/// Reads the columns of [`JOB_COLUMNS`].
fn row_of(row: &SqliteRow) -> Result<JobRow> {
    let json = |column: &str| -> Result<Option<serde_json::Value>> {
        let text: Option<String> = row.try_get(column).map_err(db_error)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    };
    let metadata: BTreeMap<String, String> = match json("metadata")? {
        Some(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    Ok(JobRow {
        id: row.try_get("id").map_err(db_error)?,
        queue: row.try_get("job_type").map_err(db_error)?,
        payload: row.try_get("job").map_err(db_error)?,
        status: row.try_get("status").map_err(db_error)?,
        attempts: row.try_get("attempts").map_err(db_error)?,
        max_attempts: row.try_get("max_attempts").map_err(db_error)?,
        run_at_us: row.try_get("run_at_us").map_err(db_error)?,
        last_result: json("last_result")?,
        lock_at_us: row.try_get("lock_at_us").map_err(db_error)?,
        lock_by: row.try_get("lock_by").map_err(db_error)?,
        lock_kind: row.try_get("lock_kind").map_err(db_error)?,
        done_at_us: row.try_get("done_at_us").map_err(db_error)?,
        priority: row.try_get("priority").map_err(db_error)?,
        metadata,
        idempotency_key: row.try_get("idempotency_key").map_err(db_error)?,
    })
}

/// Whole Unix seconds of `t`, rounded down.
fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The `run_at` to store for a job due at `at`: rounded up to whole seconds
/// when in the future, so the job never runs early.
fn stored_run_at(at: SystemTime, now: SystemTime) -> i64 {
    let secs = unix_seconds(at);
    let whole = at.duration_since(SystemTime::UNIX_EPOCH).is_ok_and(|d| d.subsec_nanos() == 0);
    if at > now && !whole { secs + 1 } else { secs }
}

#[async_trait]
impl JobStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_error)?;
        Ok(())
    }

    async fn push(&self, jobs: Vec<NewJob>) -> Result<Vec<Pushed>> {
        let now = SystemTime::now();
        let mut jobs = jobs;
        for job in &mut jobs {
            job.scheduled_at =
                SystemTime::UNIX_EPOCH + Duration::from_secs(stored_run_at(job.scheduled_at, now) as u64);
        }
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key) ",
        );
        insert.push_values(&jobs, |mut row, job| {
            let metadata = chirpy_metadata::join(&job.metadata, job.retry_policy);
            row.push_bind(job.payload.as_bytes())
                .push_bind(job.id.to_string())
                .push_bind(job.queue.as_str())
                .push_bind("Pending")
                .push_bind(0_i64)
                .push_bind(i64::from(job.max_attempts))
                .push_bind(unix_seconds(job.scheduled_at))
                .push_bind(i64::from(job.priority))
                // Apalis's SQLite storage keeps metadata as a JSON object.
                .push_bind(serde_json::to_string(&metadata).unwrap_or_else(|_| "{}".into()))
                .push_bind(job.idempotency_key.as_deref());
        });
        insert.push(" ON CONFLICT (job_type, idempotency_key) DO NOTHING RETURNING id");
        let inserted: HashSet<String> =
            insert.build_query_scalar().fetch_all(&mut *tx).await.map_err(db_error)?.into_iter().collect();

        let duplicates: Vec<&NewJob> = jobs.iter().filter(|j| !inserted.contains(&j.id.to_string())).collect();
        let mut existing: HashMap<(String, String), Job> = HashMap::new();
        if !duplicates.is_empty() {
            let mut select = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {JOB_COLUMNS} FROM Jobs j LEFT JOIN Workers w ON w.id = j.lock_by \
                 WHERE (j.job_type, j.idempotency_key) IN ("
            ));
            let mut separated = select.separated(", ");
            for job in &duplicates {
                separated.push("(");
                separated.push_bind_unseparated(job.queue.as_str());
                separated.push_unseparated(", ");
                separated.push_bind_unseparated(job.idempotency_key.as_deref());
                separated.push_unseparated(")");
            }
            select.push(")");
            for row in select.build().fetch_all(&mut *tx).await.map_err(db_error)? {
                let job = self.decode(&row, now)?;
                if let Some(key) = job.idempotency_key.clone() {
                    existing.insert((job.queue.clone(), key), job);
                }
            }
        }
        tx.commit().await.map_err(db_error)?;
        self.announce(jobs.iter().filter(|j| inserted.contains(&j.id.to_string())).map(|j| j.queue.to_string()));

        pushed_outcomes(jobs, &inserted, &existing, now)
    }

    async fn get(&self, queue: &QueueName, id: JobId) -> Result<Job> {
        let now = SystemTime::now();
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM Jobs j LEFT JOIN Workers w ON w.id = j.lock_by WHERE j.id = ?1 AND j.job_type = ?2"
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
        let condition = state.map_or_else(|| "1".to_owned(), |s| state_condition(s, NOW));
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM Jobs j LEFT JOIN Workers w ON w.id = j.lock_by \
             WHERE j.job_type = ?2 AND (?3 IS NULL OR j.id > ?3) AND {condition} ORDER BY j.id LIMIT ?4"
        );
        let rows = sqlx::query(trusted(sql))
            .bind(unix_seconds(now))
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
        self.announce([queue.to_string()]);
        Ok(job)
    }

    async fn queues(&self, page: &PageRequest) -> Result<Page<QueueStats>> {
        let sql = format!(
            "SELECT j.job_type, {} FROM Jobs j \
             WHERE (?2 IS NULL OR j.job_type > ?2) GROUP BY j.job_type ORDER BY j.job_type LIMIT ?3",
            state_counts(NOW)
        );
        let rows = sqlx::query(trusted(sql))
            .bind(unix_seconds(SystemTime::now()))
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
            "SELECT w.id, w.worker_type, w.storage_name, w.started_at * 1000000 AS started_at_us, \
               w.last_seen * 1000000 AS last_seen_us, \
               (SELECT COUNT(*) FROM Jobs j WHERE j.lock_by = w.id AND j.status IN ('Queued', 'Running')) AS running \
             FROM Workers w WHERE w.last_seen >= ?1 ORDER BY w.last_seen DESC, w.id",
        )
        .bind(unix_seconds(since))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(worker_info).collect::<Result<Vec<_>, sqlx::Error>>().map_err(db_error)
    }

    async fn retry_dead(&self, queue: &QueueName, ids: Option<&[JobId]>) -> Result<Vec<JobId>> {
        self.retry_dead_jobs(queue, ids).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn future_schedules_round_up_and_present_ones_down() {
        let at = |secs: u64, nanos: u32| SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
        let now = at(100, 500_000_000);
        assert_eq!(stored_run_at(now, now), 100);
        assert_eq!(stored_run_at(at(150, 1), now), 151);
        assert_eq!(stored_run_at(at(150, 0), now), 150);
    }
}
