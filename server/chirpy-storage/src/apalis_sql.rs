//! The SQL vocabulary shared by the SQLite and PostgreSQL stores: Apalis's
//! statuses, how they map to Chirpy's [`JobState`]s, and the row every job
//! query returns. The Redis store reads a job's meta hash into the same
//! [`JobRow`], so the state table, fencing diagnosis and failure plans below
//! serve all three.
//!
//! Apalis records `Pending`, `Queued`, `Running`, `Done`, `Failed` and
//! `Killed`. Chirpy's states are derived from them without any column of its
//! own, so that Apalis workers and Chirpy read the same truth:
//!
//! | state     | Apalis row                                                      |
//! |-----------|-----------------------------------------------------------------|
//! | PENDING   | `Pending`, or `Failed` with attempts left, and `run_at <= now`  |
//! | SCHEDULED | the same, with `run_at > now` (pushed for later, or backing off)|
//! | RUNNING   | `Queued` or `Running`                                           |
//! | SUCCEEDED | `Done`                                                          |
//! | DEAD      | `Failed` with `attempts >= max_attempts`                        |
//! | CANCELED  | `Killed`                                                        |

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chirpy_core::{
    Error, Job, JobId, JobState, NewJob, QueueStats, WorkerInfo,
    error::BoxError,
    job::{Lease, RetryPolicy},
    lease::{Failure, LeaseToken},
};

use crate::Pushed;

/// The `storage_name` Chirpy records for its remote workers in Apalis's
/// workers table; leases expire only for these (Apalis workers have their
/// own orphan detection).
pub(crate) const CHIRPY_WORKER_KIND: &str = "chirpy";

/// The condition, in SQL over a job row aliased `j`, for jobs in `state`.
/// `now` is the SQL expression of the current time in the column's type.
pub(crate) fn state_condition(state: JobState, now: &str) -> String {
    const READY: &str = "(j.status = 'Pending' OR (j.status = 'Failed' AND j.attempts < j.max_attempts))";
    match state {
        JobState::Pending => format!("({READY} AND j.run_at <= {now})"),
        JobState::Scheduled => format!("({READY} AND j.run_at > {now})"),
        JobState::Running => "j.status IN ('Queued', 'Running')".into(),
        JobState::Succeeded => "j.status = 'Done'".into(),
        JobState::Dead => "(j.status = 'Failed' AND j.attempts >= j.max_attempts)".into(),
        JobState::Canceled => "j.status = 'Killed'".into(),
    }
}

/// The condition for jobs that may still change state by themselves or be
/// canceled: pending, scheduled or running.
pub(crate) const UNFINISHED: &str =
    "(j.status IN ('Pending', 'Queued', 'Running') OR (j.status = 'Failed' AND j.attempts < j.max_attempts))";

/// The condition for dead jobs (the failure queue).
pub(crate) const DEAD: &str = "(j.status = 'Failed' AND j.attempts >= j.max_attempts)";

/// The assignments that cancel a job, as of `now`. Clearing `lock_by` fences
/// the worker: neither a Chirpy worker nor Apalis's result handler (which
/// matches on `lock_by`) can complete the job afterwards.
pub(crate) fn cancel_assignments(now: &str) -> String {
    format!("status = 'Killed', done_at = {now}, lock_by = NULL")
}

/// The assignments that bring a dead job back, ready as of `now`.
pub(crate) fn retry_assignments(now: &str) -> String {
    format!("status = 'Pending', attempts = 0, run_at = {now}, done_at = NULL, lock_by = NULL, lock_at = NULL")
}

/// The six per-state counts of a `GROUP BY job_type` over jobs `j`, in the
/// order of [`JobState::ALL`], as read by [`queue_stats`].
pub(crate) fn state_counts(now: &str) -> String {
    JobState::ALL
        .iter()
        .map(|&state| format!("COUNT(*) FILTER (WHERE {})", state_condition(state, now)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a row of `SELECT j.job_type, {state_counts}`.
pub(crate) fn queue_stats<'r, R>(row: &'r R) -> Result<QueueStats, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(QueueStats {
        name: row.try_get(0)?,
        pending: row.try_get(1)?,
        scheduled: row.try_get(2)?,
        running: row.try_get(3)?,
        succeeded: row.try_get(4)?,
        dead: row.try_get(5)?,
        canceled: row.try_get(6)?,
    })
}

/// Reads a worker row with the columns `id`, `worker_type`, `storage_name`,
/// `started_at_us`, `last_seen_us` and `running`.
pub(crate) fn worker_info<'r, R>(row: &'r R) -> Result<WorkerInfo, sqlx::Error>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let queues: String = row.try_get("worker_type")?;
    Ok(WorkerInfo {
        id: row.try_get("id")?,
        // A Chirpy worker on several queues records them comma-separated.
        queues: queues.split(',').map(str::to_owned).collect(),
        kind: row.try_get("storage_name")?,
        started_at: row.try_get::<Option<i64>, _>("started_at_us")?.map(from_micros),
        last_heartbeat_at: from_micros(row.try_get("last_seen_us")?),
        running_jobs: row.try_get("running")?,
    })
}

/// Pairs each pushed job with its outcome: stored (its id is in `inserted`)
/// or deduplicated (its queue and idempotency key found in `existing`).
pub(crate) fn pushed_outcomes(
    jobs: Vec<NewJob>,
    inserted: &HashSet<String>,
    existing: &HashMap<(String, String), Job>,
    now: SystemTime,
) -> Result<Vec<Pushed>, Error> {
    jobs.into_iter()
        .map(|new| {
            if inserted.contains(&new.id.to_string()) {
                return Ok(Pushed { job: new_job(new, now), deduplicated: false });
            }
            let key = (new.queue.as_str().to_owned(), new.idempotency_key.clone().unwrap_or_default());
            existing
                .get(&key)
                .cloned()
                .map(|job| Pushed { job, deduplicated: true })
                .ok_or_else(|| corrupt(format!("job {} was neither stored nor deduplicated", new.id)))
        })
        .collect()
}

/// Marks SQL assembled by this crate as safe to run. Every dynamic query here
/// is built from this crate's constants (column lists, state conditions);
/// every value from a client is bound as a parameter, never formatted in.
pub(crate) fn trusted(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// A job row as both SQL stores decode it, times in Unix microseconds.
#[derive(Debug)]
pub(crate) struct JobRow {
    pub id: String,
    pub queue: String,
    pub payload: Vec<u8>,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at_us: i64,
    pub last_result: Option<serde_json::Value>,
    pub lock_at_us: Option<i64>,
    pub lock_by: Option<String>,
    /// The `storage_name` of the worker in `lock_by`.
    pub lock_kind: Option<String>,
    pub done_at_us: Option<i64>,
    pub priority: i64,
    pub metadata: BTreeMap<String, String>,
    pub idempotency_key: Option<String>,
}

impl JobRow {
    /// Turns the row into a [`Job`], deriving its state as of `now`.
    pub fn into_job(self, now: SystemTime, lease_ttl: Duration) -> Result<Job, Error> {
        let id = JobId::parse(&self.id).map_err(|_| corrupt(format!("job id {:?} is not a ULID", self.id)))?;
        let run_at = from_micros(self.run_at_us);
        let state = state_of(&self.status, self.attempts, self.max_attempts, run_at, now)
            .ok_or_else(|| corrupt(format!("job {id} has unknown status {:?}", self.status)))?;
        let (result, last_error) = match self.last_result {
            Some(serde_json::Value::Object(mut outcome)) => match (outcome.remove("Ok"), outcome.remove("Err")) {
                (Some(ok), _) => (Some(ok), None),
                (None, Some(serde_json::Value::String(err))) => (None, Some(err)),
                (None, Some(err)) => (None, Some(err.to_string())),
                (None, None) => (None, None),
            },
            _ => (None, None),
        };
        let lease = match (state, self.lock_by) {
            (JobState::Running, Some(worker_id)) => Some(Lease {
                worker_id,
                // Only Chirpy's own leases expire; Apalis workers are watched
                // through their heartbeats instead.
                expires_at: (self.lock_kind.as_deref() == Some(CHIRPY_WORKER_KIND))
                    .then(|| self.lock_at_us.map(|at| from_micros(at) + lease_ttl))
                    .flatten(),
            }),
            _ => None,
        };
        let (metadata, retry_policy) = chirpy_metadata::split(self.metadata);
        Ok(Job {
            id,
            queue: self.queue,
            // Apalis's JSON codec wrote these bytes; a payload from another
            // codec is shown as a JSON string of its bytes, lossy but visible.
            payload: serde_json::from_slice(&self.payload)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&self.payload).into_owned())),
            state,
            priority: clamp_i32(self.priority),
            attempts: clamp_i32(self.attempts),
            max_attempts: clamp_i32(self.max_attempts),
            scheduled_at: run_at,
            started_at: self.lock_at_us.map(from_micros),
            finished_at: if state.is_final() { self.done_at_us.map(from_micros) } else { None },
            last_error,
            result: if state == JobState::Succeeded { result } else { None },
            metadata,
            idempotency_key: self.idempotency_key,
            lease,
            retry_policy,
        })
    }
}

/// The job a freshly inserted [`NewJob`] became, without reading it back.
pub(crate) fn new_job(new: NewJob, now: SystemTime) -> Job {
    Job {
        id: new.id,
        queue: new.queue.to_string(),
        // The payload was encoded from a JSON value a moment ago.
        payload: serde_json::from_slice(new.payload.as_bytes()).unwrap_or_default(),
        state: if new.scheduled_at <= now { JobState::Pending } else { JobState::Scheduled },
        priority: new.priority,
        attempts: 0,
        max_attempts: new.max_attempts,
        scheduled_at: new.scheduled_at,
        started_at: None,
        finished_at: None,
        last_error: None,
        result: None,
        metadata: new.metadata,
        idempotency_key: new.idempotency_key,
        lease: None,
        retry_policy: new.retry_policy,
    }
}

impl JobRow {
    /// Whether the row is still held by `lease`: the same worker and attempt.
    fn held_by(&self, lease: &LeaseToken) -> bool {
        self.lock_by.as_deref() == Some(lease.worker.as_str()) && self.attempts == i64::from(lease.attempt)
    }
}

/// Explains why a fenced update matched no row, given the row as it is now:
/// the job was canceled, or `lease` is no longer held. A completion repeated
/// by the worker that made it (`repeat_ok`) is not an error.
pub(crate) fn lease_conflict(
    row: JobRow,
    lease: &LeaseToken,
    repeat_ok: bool,
    now: SystemTime,
    lease_ttl: Duration,
) -> Result<Job, Error> {
    let held = row.held_by(lease);
    let job = row.into_job(now, lease_ttl)?;
    match job.state {
        JobState::Succeeded if held && repeat_ok => Ok(job),
        JobState::Canceled => {
            Err(Error::precondition(format!("{} was canceled; the outcome is not recorded", job.name())))
        }
        state => Err(Error::precondition(format!(
            "{}: lease {lease} is no longer held; the job is {state} at attempt {}",
            job.name(),
            job.attempts
        ))),
    }
}

/// What a failure does to a job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FailurePlan {
    /// Into the failure queue (else back to pending at `run_at`).
    pub dead: bool,
    /// When the next attempt may start.
    pub run_at: SystemTime,
}

/// Decides what failing attempt `attempt` of a job allowed `max_attempts`
/// does: dead when out of attempts or `non_retryable`, else a retry after
/// `retry_after` or the job's backoff.
pub(crate) fn plan_failure(failure: &Failure, max_attempts: i64, policy: RetryPolicy, now: SystemTime) -> FailurePlan {
    let attempt = failure.job.lease.attempt;
    let dead = failure.non_retryable || i64::from(attempt) >= max_attempts;
    let wait = failure.retry_after.unwrap_or_else(|| policy.backoff(attempt));
    FailurePlan { dead, run_at: now + wait }
}

/// The `last_result` of a lease that expired.
pub(crate) fn expired_lease_error() -> &'static str {
    "lease expired: the worker stopped heartbeating"
}

/// Derives a job's state from its Apalis row; `None` for an unknown status.
pub(crate) fn state_of(
    status: &str,
    attempts: i64,
    max_attempts: i64,
    run_at: SystemTime,
    now: SystemTime,
) -> Option<JobState> {
    let ready = |run_at: SystemTime| if run_at <= now { JobState::Pending } else { JobState::Scheduled };
    Some(match status {
        "Pending" => ready(run_at),
        "Failed" if attempts < max_attempts => ready(run_at),
        "Failed" => JobState::Dead,
        "Queued" | "Running" => JobState::Running,
        "Done" => JobState::Succeeded,
        "Killed" => JobState::Canceled,
        _ => return None,
    })
}

/// Chirpy's own keys in a job's Apalis metadata.
pub(crate) mod chirpy_metadata {
    use std::{collections::BTreeMap, time::Duration};

    use chirpy_core::job::RetryPolicy;

    const INITIAL_BACKOFF_MS: &str = "chirpy.retry.initial_backoff_ms";
    const MAX_BACKOFF_MS: &str = "chirpy.retry.max_backoff_ms";

    /// The metadata to store for a job: the producer's pairs plus the job's
    /// retry policy under reserved keys (Apalis has no column for it).
    pub fn join(metadata: &BTreeMap<String, String>, retry_policy: Option<RetryPolicy>) -> BTreeMap<String, String> {
        let mut stored = metadata.clone();
        if let Some(policy) = retry_policy {
            stored.insert(INITIAL_BACKOFF_MS.into(), policy.initial_backoff.as_millis().to_string());
            stored.insert(MAX_BACKOFF_MS.into(), policy.max_backoff.as_millis().to_string());
        }
        stored
    }

    /// Splits stored metadata back into the producer's pairs and the retry
    /// policy.
    pub fn split(mut stored: BTreeMap<String, String>) -> (BTreeMap<String, String>, Option<RetryPolicy>) {
        let millis = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok()).map(Duration::from_millis);
        let initial = millis(stored.remove(INITIAL_BACKOFF_MS));
        let max = millis(stored.remove(MAX_BACKOFF_MS));
        stored.retain(|key, _| !key.starts_with(chirpy_core::limits::RESERVED_METADATA_PREFIX));
        let policy = match (initial, max) {
            (Some(initial_backoff), Some(max_backoff)) => Some(RetryPolicy { initial_backoff, max_backoff }),
            _ => None,
        };
        (stored, policy)
    }
}

/// Unix microseconds of `t` (0 before the epoch, which validation excludes).
pub(crate) fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros().min(i64::MAX as u128) as i64)
}

/// The time `us` Unix microseconds after the epoch (the epoch for negative).
pub(crate) fn from_micros(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us.max(0) as u64)
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

fn corrupt(message: String) -> Error {
    Error::Storage(message.into())
}

/// Maps a database error: connection trouble is [`Error::Unavailable`], the
/// rest [`Error::Storage`].
pub(crate) fn db_error(err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::Unavailable(Box::new(err) as BoxError),
        other => Error::Storage(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_the_table() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let past = now - Duration::from_secs(1);
        let future = now + Duration::from_secs(1);
        let cases = [
            ("Pending", 0, 25, past, Some(JobState::Pending)),
            ("Pending", 0, 25, now, Some(JobState::Pending)),
            ("Pending", 0, 25, future, Some(JobState::Scheduled)),
            ("Failed", 1, 25, past, Some(JobState::Pending)),
            ("Failed", 1, 25, future, Some(JobState::Scheduled)),
            ("Failed", 25, 25, past, Some(JobState::Dead)),
            ("Queued", 0, 25, past, Some(JobState::Running)),
            ("Running", 1, 25, past, Some(JobState::Running)),
            ("Done", 1, 25, past, Some(JobState::Succeeded)),
            ("Killed", 1, 25, past, Some(JobState::Canceled)),
            ("Bogus", 1, 25, past, None),
        ];
        for (status, attempts, max, run_at, want) in cases {
            assert_eq!(state_of(status, attempts, max, run_at, now), want, "{status} {attempts}/{max}");
        }
    }

    #[test]
    fn retry_policy_round_trips_through_metadata_and_stays_hidden() {
        use chirpy_core::job::RetryPolicy;
        let user = BTreeMap::from([("tenant".to_string(), "acme".to_string())]);
        let policy = RetryPolicy { initial_backoff: Duration::from_secs(2), max_backoff: Duration::from_secs(60) };
        let stored = chirpy_metadata::join(&user, Some(policy));
        assert_eq!(stored.len(), 3);
        assert_eq!(chirpy_metadata::split(stored), (user, Some(policy)));
    }
}
