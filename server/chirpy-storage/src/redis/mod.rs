//! A [`JobStore`] on apalis-redis 1.0's key layout.
//!
//! # Layout
//!
//! Apalis's keys, per queue `q`, are the source of truth, so that an embedded
//! `apalis_redis::RedisStorage` worker or producer on the same Redis and
//! queue works with Chirpy's jobs, and the reverse:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `q:data` | hash | id → payload (JSON bytes) |
//! | `q:meta:ID` | hash | `status`, `attempts`, `max_attempts`, `result`, `done_at`, `locked_at`, `locked_by`, `idempotency_key`, the producer's metadata, Chirpy's `chirpy.*` fields |
//! | `q:active` | list | ready ids: what Apalis workers fetch from its head |
//! | `q:scheduled` | sorted set | ids waiting for their time, by Unix second |
//! | `q:inflight:WORKER` | set | ids a worker holds |
//! | `q:done`, `q:dead` | sets | succeeded ids; dead (and Apalis-killed) ids |
//! | `q:workers` | sorted set | worker → last seen (Chirpy workers too, as kind `chirpy`) |
//! | `q:idempotency:KEY` | string | the id of the job pushed with that key |
//!
//! Chirpy adds what Apalis lacks (every name starts `chirpy:q:` or
//! `chirpy:g:`, which no Apalis queue's keys can):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `chirpy:q:Q:jobs` | sorted set, score 0 | every id, in id order (`ZRANGEBYLEX` keyset pages) |
//! | `chirpy:q:Q:{queued,running,succeeded,dead,canceled}` | sorted sets, score 0 | ids per state, for lists and counts |
//! | `chirpy:q:Q:runat` | sorted set | queued ids by run_at: pending vs scheduled counts |
//! | `chirpy:q:Q:ready` | sorted set | the mirror of `q:active` in priority order |
//! | `chirpy:q:Q:tail`, `chirpy:q:Q:foreign` | string, set | the list's last id; ids running on Apalis workers |
//! | `chirpy:g:queues` | sorted set, score 0 | every queue, by name |
//! | `chirpy:g:leases` | sorted set | `q/id` → Chirpy lease expiry (Unix ms) |
//! | `chirpy:g:workers`, `chirpy:w:WORKER` | sorted set, hash | Chirpy workers by last heartbeat; their queues |
//!
//! Chirpy's fields in a job's meta hash: `chirpy.priority`, `chirpy.run_at`
//! (Unix seconds), `chirpy.metadata` (the producer's map, whole),
//! `chirpy.retry.*` (its retry policy), `chirpy.canceled`.
//!
//! # Behaviour
//!
//! Every state change is one Lua script ([`scripts`]), atomic in Redis.
//! States derive from Apalis's `status` exactly as on SQL (`apalis_sql`).
//! Priority: Chirpy keeps `q:active` sorted by priority, then run_at, then id
//! (inserting with `LINSERT` before the next entry of the `ready` mirror), and
//! leases from its head; so do Apalis workers. What Apalis workers append
//! (their own promotions, releases, orphans) is re-sorted at the next Chirpy
//! call. What apalis-redis does on its own is reconciled by `settle` (on its
//! pub/sub events, on every read of a job, and periodically): its fixed 25
//! attempts and one-second steps give way to the job's `max_attempts` and
//! backoff, and a cancel sticks. Times are whole seconds, as in apalis-redis
//! (a future schedule is rounded up, as on SQLite); lease expiry is in ms.
//!
//! Wake-ups: scripts `PUBLISH` the queue on `chirpy:jobs`; [`listen`]
//! relays them (and apalis-redis's own task events) to [`Signals`].

mod decode;
mod leases;
mod listen;
mod scripts;

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use chirpy_core::{
    Error, Job, JobId, JobState, NewJob, Page, PageRequest, QueueName, QueueStats, Result, WorkerInfo, error::BoxError,
    job::job_name,
};
use redis::{
    RedisError, Script, ScriptInvocation, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use self::decode::{array, from_millis, int, millis, required_int, string, with_clock};
use crate::{JobStore, OpenError, Pushed, Signals, StoreOptions, apalis_sql::chirpy_metadata};

/// Jobs in apalis-redis's keys.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: ConnectionManager,
    options: StoreOptions,
    signals: Arc<Signals>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("options", &self.options).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[USER][:PASSWORD@]HOST[:PORT][/DB]`),
    /// retrying for up to `options.connect_timeout`, and starts
    /// relaying job events to this process's waiting lease calls.
    ///
    /// # Errors
    ///
    /// [`OpenError`] for a malformed URL or a server that does not answer in
    /// time.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, OpenError> {
        let client = redis::Client::open(url).map_err(|e| OpenError::BadUrl(e.to_string()))?;
        // Scripts that bring a large queue up to date may run for a while;
        // the default 500 ms response timeout is for single commands.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(60)))
            .set_number_of_retries(2);
        let conn = crate::open::retry_until(
            options.connect_timeout,
            || async {
                let mut conn = client.get_connection_manager_with_config(config.clone()).await?;
                redis::cmd("PING").query_async::<()>(&mut conn).await?;
                Ok::<_, RedisError>(conn)
            },
            |err| !(err.is_io_error() || err.is_connection_refusal() || err.is_timeout()),
        )
        .await?;
        let store = RedisStore { client, conn, options, signals: Arc::default() };
        tokio::spawn(listen::relay(store.clone()));
        Ok(store)
    }

    /// The connection, for embedding `apalis_redis::RedisStorage` beside
    /// Chirpy.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Runs `script` with the store's settings and `args`.
    async fn run(&self, script: &Script, args: impl FnOnce(&mut ScriptInvocation<'_>)) -> Result<Value> {
        let mut invocation = script.prepare_invoke();
        let RetrySettings { initial, max } = self.retry_settings();
        invocation.arg(format!("{},{initial},{max},{}", self.options.lease_ttl.as_millis(), rand::random::<f64>()));
        args(&mut invocation);
        let mut conn = self.conn.clone();
        invocation.invoke_async(&mut conn).await.map_err(redis_error)
    }

    fn retry_settings(&self) -> RetrySettings {
        let policy = self.options.default_retry;
        RetrySettings { initial: policy.initial_backoff.as_millis(), max: policy.max_backoff.as_millis() }
    }

    /// Decodes a `{now_ms, job...}` reply; a missing job (nil) is skipped.
    fn jobs(&self, value: Value) -> Result<Vec<Job>> {
        let (now, items) = with_clock(value)?;
        items
            .into_iter()
            .filter(|item| !matches!(item, Value::Nil))
            .map(|item| decode::reply(item)?.into_job(now, self.options.lease_ttl))
            .collect()
    }

    /// Decodes a `{now_ms, code, job}` reply of a change to one job:
    /// done, refused (the job is in a state `action` does not apply to), or
    /// not found.
    fn transition(&self, queue: &QueueName, id: JobId, value: Value, action: &str) -> Result<Job> {
        let (now, items) = with_clock(value)?;
        let code = items.first().map(required_int).transpose()?.unwrap_or(-1);
        let job = match items.into_iter().nth(1) {
            Some(job) => decode::reply(job)?.into_job(now, self.options.lease_ttl)?,
            None => return Err(Error::not_found(format!("job {}", job_name(queue.as_str(), &id)))),
        };
        match code {
            1 => Ok(job),
            _ => Err(Error::precondition(format!("{} is {}; {action}", job.name(), job.state))),
        }
    }
}

struct RetrySettings {
    initial: u128,
    max: u128,
}

/// The `chirpy.run_at` of a job due at `at`: whole Unix seconds, rounded up
/// when in the future so that the job never runs early (as on SQLite).
fn run_at_secs(at: SystemTime, now: SystemTime) -> i64 {
    let d = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    if at > now && d.subsec_nanos() > 0 { secs + 1 } else { secs }
}

/// The script argument of a state filter.
fn state_arg(state: Option<JobState>) -> &'static str {
    state.map_or("", JobState::as_str)
}

/// Maps a Redis error: connection trouble is [`Error::Unavailable`], the
/// rest [`Error::Storage`].
pub(crate) fn redis_error(err: RedisError) -> Error {
    if err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal() || err.is_timeout() {
        Error::Unavailable(Box::new(err) as BoxError)
    } else {
        Error::Storage(Box::new(err))
    }
}

#[async_trait]
impl JobStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await.map_err(redis_error)
    }

    async fn push(&self, jobs: Vec<NewJob>) -> Result<Vec<Pushed>> {
        let now = SystemTime::now();
        let reply = self
            .run(&scripts::PUSH, |inv| {
                inv.arg(jobs.len());
                for job in &jobs {
                    let metadata = serde_json::to_string(&job.metadata).unwrap_or_else(|_| "{}".into());
                    let policy = job.retry_policy.map(|p| (p.initial_backoff.as_millis(), p.max_backoff.as_millis()));
                    inv.arg(job.queue.as_str())
                        .arg(job.id.to_string())
                        .arg(job.payload.as_bytes())
                        .arg(run_at_secs(job.scheduled_at, now))
                        .arg(job.priority)
                        .arg(job.max_attempts)
                        .arg(job.idempotency_key.as_deref().unwrap_or(""))
                        .arg(metadata)
                        .arg(policy.map_or(String::new(), |p| p.0.to_string()))
                        .arg(policy.map_or(String::new(), |p| p.1.to_string()));
                }
            })
            .await?;
        let (now, items) = with_clock(reply)?;
        items
            .into_iter()
            .map(|item| {
                let mut parts = array(item)?.into_iter();
                let (Some(code), Some(job)) = (parts.next(), parts.next()) else {
                    return Err(decode::malformed("a push outcome"));
                };
                let job = decode::reply(job)?.into_job(now, self.options.lease_ttl)?;
                Ok(Pushed { job, deduplicated: required_int(&code)? == 0 })
            })
            .collect()
    }

    async fn get(&self, queue: &QueueName, id: JobId) -> Result<Job> {
        let reply = self
            .run(&scripts::GET, |inv| {
                inv.arg(queue.as_str()).arg(id.to_string());
            })
            .await?;
        self.jobs(reply)?.pop().ok_or_else(|| Error::not_found(format!("job {}", job_name(queue.as_str(), &id))))
    }

    async fn list(&self, queue: &QueueName, state: Option<JobState>, page: &PageRequest) -> Result<Page<Job>> {
        let reply = self
            .run(&scripts::LIST, |inv| {
                inv.arg(queue.as_str())
                    .arg(state_arg(state))
                    .arg(page.after.as_deref().unwrap_or(""))
                    .arg(page.fetch_limit());
            })
            .await?;
        Ok(page.page(self.jobs(reply)?, |job| job.id.to_string()))
    }

    async fn cancel(&self, queue: &QueueName, id: JobId) -> Result<Job> {
        let reply = self
            .run(&scripts::CANCEL, |inv| {
                inv.arg(queue.as_str()).arg(id.to_string());
            })
            .await?;
        self.transition(queue, id, reply, "only pending, scheduled or running jobs can be canceled")
    }

    async fn retry(&self, queue: &QueueName, id: JobId) -> Result<Job> {
        let reply = self
            .run(&scripts::RETRY, |inv| {
                inv.arg(queue.as_str()).arg("one").arg(id.to_string());
            })
            .await?;
        self.transition(queue, id, reply, "only dead jobs can be retried")
    }

    async fn queues(&self, page: &PageRequest) -> Result<Page<QueueStats>> {
        let reply = self
            .run(&scripts::QUEUES, |inv| {
                inv.arg(page.after.as_deref().unwrap_or("")).arg(page.fetch_limit());
            })
            .await?;
        let (_, items) = with_clock(reply)?;
        let queues = items
            .into_iter()
            .map(|item| {
                let fields = array(item)?;
                let count = |i: usize| fields.get(i).map(required_int).transpose().map(Option::unwrap_or_default);
                Ok(QueueStats {
                    name: fields.first().map(string).transpose()?.flatten().unwrap_or_default(),
                    pending: count(1)?.max(0),
                    scheduled: count(2)?,
                    running: count(3)?,
                    succeeded: count(4)?,
                    dead: count(5)?,
                    canceled: count(6)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(page.page(queues, |q| q.name.clone()))
    }

    async fn workers(&self, since: SystemTime) -> Result<Vec<WorkerInfo>> {
        let reply = self
            .run(&scripts::WORKERS, |inv| {
                inv.arg(millis(since));
            })
            .await?;
        let (_, items) = with_clock(reply)?;
        let mut workers = items
            .into_iter()
            .map(|item| {
                let fields = array(item)?;
                let [id, queues, kind, started, seen, running] =
                    <[Value; 6]>::try_from(fields).map_err(|_| decode::malformed("a worker"))?;
                let queues = string(&queues)?.unwrap_or_default();
                Ok(WorkerInfo {
                    id: string(&id)?.unwrap_or_default(),
                    queues: queues.split(',').filter(|q| !q.is_empty()).map(str::to_owned).collect(),
                    kind: string(&kind)?.unwrap_or_default(),
                    started_at: int(&started)?.map(from_millis),
                    last_heartbeat_at: from_millis(required_int(&seen)?),
                    running_jobs: required_int(&running)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        workers.sort_by(|a, b| b.last_heartbeat_at.cmp(&a.last_heartbeat_at).then_with(|| a.id.cmp(&b.id)));
        Ok(workers)
    }

    async fn retry_dead(&self, queue: &QueueName, ids: Option<&[JobId]>) -> Result<Vec<JobId>> {
        let reply = self
            .run(&scripts::RETRY, |inv| {
                inv.arg(queue.as_str());
                match ids {
                    Some(ids) => {
                        inv.arg("ids");
                        for id in ids {
                            inv.arg(id.to_string());
                        }
                    }
                    None => {
                        inv.arg("all");
                    }
                }
            })
            .await?;
        let (_, items) = with_clock(reply)?;
        let mut retried =
            items.iter().map(|id| JobId::parse(&string(id)?.unwrap_or_default())).collect::<Result<Vec<_>>>()?;
        retried.sort();
        Ok(retried)
    }
}

/// The key of a job's meta hash, as apalis-redis names it.
fn meta_key(queue: &str, id: &JobId) -> String {
    format!("{}:{id}", apalis_redis::Config::default().queue(queue).job_meta_hash())
}

/// The retry policy and `max_attempts` kept in a job's meta hash.
fn policy_of(fields: &[Option<String>]) -> (i64, Option<chirpy_core::job::RetryPolicy>) {
    let max_attempts = fields.first().cloned().flatten().and_then(|v| v.parse().ok()).unwrap_or(0);
    let stored = ["chirpy.retry.initial_backoff_ms", "chirpy.retry.max_backoff_ms"]
        .into_iter()
        .zip(fields.iter().skip(1))
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
        .collect();
    (max_attempts, chirpy_metadata::split(stored).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn future_schedules_round_up_to_whole_seconds() {
        let at = |secs: u64, nanos: u32| SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
        let now = at(100, 500_000_000);
        assert_eq!(run_at_secs(now, now), 100);
        assert_eq!(run_at_secs(at(150, 1), now), 151);
        assert_eq!(run_at_secs(at(150, 0), now), 150);
    }

    #[test]
    fn keys_follow_apalis_redis() {
        let id = JobId::parse("01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap();
        assert_eq!(meta_key("email", &id), "email:meta:01ARZ3NDEKTSV4RRFFQ69G5FAV");
        let config = apalis_redis::Config::default().queue("email");
        // The names common.lua builds.
        assert_eq!(config.job_data_hash(), "email:data");
        assert_eq!(config.active_jobs_list(), "email:active");
        assert_eq!(config.scheduled_jobs_set(), "email:scheduled");
        assert_eq!(config.done_jobs_set(), "email:done");
        assert_eq!(config.dead_jobs_set(), "email:dead");
        assert_eq!(config.workers_set(), "email:workers");
        assert_eq!(config.inflight_jobs_set(), "email:inflight");
        assert_eq!(config.idempotency_key_set(), "email:idempotency");
    }
}
