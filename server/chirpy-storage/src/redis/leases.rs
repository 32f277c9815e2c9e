//! The worker protocol on Redis: leases, outcomes, heartbeats and the
//! reaping of expired leases, each one Lua script. Outcomes are fenced in
//! the script by the job's `locked_by` and `attempts` (the lease token), the
//! same fence the SQL stores put in their `WHERE` clauses.

use std::time::SystemTime;

use async_trait::async_trait;
use chirpy_core::{
    Error, Job, JobId, QueueName, Result, WorkerId,
    job::job_name,
    lease::{Completion, Failure, LeaseRef, LeaseToken},
    worker::HeartbeatReport,
};
use redis::Value;

use super::{
    RedisStore,
    decode::{self, array, from_millis, int, required_int, string, with_clock},
    meta_key, policy_of, redis_error, run_at_secs, scripts,
};
use crate::{
    LeaseStore, Leased, Signals,
    apalis_sql::{expired_lease_error, lease_conflict, plan_failure},
};

/// Joins queue names for a script argument.
fn joined(queues: &[QueueName]) -> String {
    queues.iter().map(QueueName::as_str).collect::<Vec<_>>().join(",")
}

#[async_trait]
impl LeaseStore for RedisStore {
    fn signals(&self) -> &Signals {
        &self.signals
    }

    async fn register_worker(&self, worker: &WorkerId, queues: &[QueueName]) -> Result<()> {
        self.run(&scripts::REGISTER, |inv| {
            inv.arg(worker.as_str()).arg(joined(queues));
        })
        .await?;
        Ok(())
    }

    async fn lease(&self, worker: &WorkerId, queues: &[QueueName], max: usize) -> Result<Vec<Leased>> {
        let reply = self
            .run(&scripts::LEASE, |inv| {
                inv.arg(worker.as_str()).arg(max);
                for queue in queues {
                    inv.arg(queue.as_str());
                }
            })
            .await?;
        Ok(self
            .jobs(reply)?
            .into_iter()
            .map(|job| Leased { lease: LeaseToken { attempt: job.attempts, worker: worker.clone() }, job })
            .collect())
    }

    async fn next_due(&self, queues: &[QueueName]) -> Result<Option<SystemTime>> {
        let reply = self
            .run(&scripts::NEXT_DUE, |inv| {
                for queue in queues {
                    inv.arg(queue.as_str());
                }
            })
            .await?;
        let (_, items) = with_clock(reply)?;
        let due = items.first().map(int).transpose()?.flatten();
        Ok(due.map(|secs| from_millis(secs.saturating_mul(1000))))
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<Result<Job>>> {
        let leases: Vec<&LeaseRef> = completions.iter().map(|c| &c.job).collect();
        let reply = self
            .run(&scripts::COMPLETE, |inv| {
                inv.arg(completions.len());
                for completion in &completions {
                    let result = completion.result.as_deref().unwrap_or(b"null");
                    lease_args(inv, &completion.job).arg(result);
                }
            })
            .await?;
        self.outcomes(&leases, reply, true)
    }

    async fn fail(&self, failures: Vec<Failure>) -> Result<Vec<Result<Job>>> {
        // What the plan needs (max_attempts, the job's retry policy) does not
        // change while a job runs: read first, then the fenced script.
        let mut read = redis::pipe();
        for failure in &failures {
            read.cmd("HMGET")
                .arg(meta_key(failure.job.queue.as_str(), &failure.job.id))
                .arg(&["max_attempts", "chirpy.retry.initial_backoff_ms", "chirpy.retry.max_backoff_ms"][..]);
        }
        let mut conn = self.conn.clone();
        let current: Vec<Vec<Option<String>>> = read.query_async(&mut conn).await.map_err(redis_error)?;
        let now = SystemTime::now();
        let plans: Vec<_> = failures
            .iter()
            .zip(&current)
            .map(|(failure, fields)| {
                let (max_attempts, policy) = policy_of(fields);
                plan_failure(failure, max_attempts, policy.unwrap_or(self.options.default_retry), now)
            })
            .collect();
        let leases: Vec<&LeaseRef> = failures.iter().map(|f| &f.job).collect();
        let reply = self
            .run(&scripts::FAIL, |inv| {
                inv.arg(failures.len());
                for (failure, plan) in failures.iter().zip(&plans) {
                    lease_args(inv, &failure.job)
                        .arg(if plan.dead { "1" } else { "0" })
                        .arg(run_at_secs(plan.run_at, now))
                        .arg(failure.error.as_str());
                }
            })
            .await?;
        self.outcomes(&leases, reply, false)
    }

    async fn release(&self, leases: Vec<LeaseRef>) -> Result<Vec<Result<Job>>> {
        let reply = self
            .run(&scripts::RELEASE, |inv| {
                inv.arg(leases.len());
                for lease in &leases {
                    lease_args(inv, lease);
                }
            })
            .await?;
        self.outcomes(&leases.iter().collect::<Vec<_>>(), reply, false)
    }

    async fn extend(&self, lease: &LeaseRef) -> Result<SystemTime> {
        let reply = self
            .run(&scripts::EXTEND, |inv| {
                inv.arg(lease.queue.as_str())
                    .arg(lease.id.to_string())
                    .arg(lease.lease.attempt)
                    .arg(lease.lease.worker.as_str());
            })
            .await?;
        let mut outcome = self.outcomes(&[lease], reply, false)?;
        let job = outcome.pop().unwrap_or_else(|| Err(Error::Storage("no outcome for one lease".into())))?;
        Ok(job.lease.and_then(|l| l.expires_at).unwrap_or_else(|| SystemTime::now() + self.options.lease_ttl))
    }

    async fn heartbeat(&self, worker: &WorkerId, queues: &[QueueName], running: &[JobId]) -> Result<HeartbeatReport> {
        let reply = self
            .run(&scripts::HEARTBEAT, |inv| {
                inv.arg(worker.as_str()).arg(joined(queues));
                for id in running {
                    inv.arg(id.to_string());
                }
            })
            .await?;
        let (_, items) = with_clock(reply)?;
        let ids = |value: Option<&Value>| -> Result<Vec<JobId>> {
            let items = value.cloned().map(array).transpose()?.unwrap_or_default();
            items.iter().map(|id| JobId::parse(&string(id)?.unwrap_or_default())).collect()
        };
        Ok(HeartbeatReport { canceled: ids(items.first())?, lost: ids(items.get(1))? })
    }

    async fn reap_expired_leases(&self) -> Result<Vec<String>> {
        let reply = self
            .run(&scripts::REAP, |inv| {
                inv.arg(expired_lease_error());
            })
            .await?;
        let (_, items) = with_clock(reply)?;
        items.iter().map(|q| Ok(string(q)?.unwrap_or_default())).collect()
    }
}

/// Adds a lease's script arguments: queue, id, attempt, worker.
fn lease_args<'a, 'b>(
    inv: &'b mut redis::ScriptInvocation<'a>,
    lease: &LeaseRef,
) -> &'b mut redis::ScriptInvocation<'a> {
    inv.arg(lease.queue.as_str()).arg(lease.id.to_string()).arg(lease.lease.attempt).arg(lease.lease.worker.as_str())
}

impl RedisStore {
    /// Pairs each lease with its outcome from a `{now_ms, {code, job}...}`
    /// reply: the job as changed, or why the fence did not let it change
    /// (see [`lease_conflict`]).
    fn outcomes(&self, leases: &[&LeaseRef], reply: Value, repeat_ok: bool) -> Result<Vec<Result<Job>>> {
        let (now, items) = with_clock(reply)?;
        if items.len() != leases.len() {
            return Err(decode::malformed("one outcome per lease"));
        }
        leases
            .iter()
            .zip(items)
            .map(|(lease, item)| {
                let mut parts = array(item)?.into_iter();
                let code = parts.next().as_ref().map(required_int).transpose()?.unwrap_or(-1);
                let not_found = || Error::not_found(format!("job {}", job_name(lease.queue.as_str(), &lease.id)));
                Ok(match (code, parts.next()) {
                    (1, Some(job)) => decode::reply(job)?.into_job(now, self.options.lease_ttl),
                    (0, Some(job)) => {
                        let row = decode::reply(job)?.row;
                        lease_conflict(row, &lease.lease, repeat_ok, now, self.options.lease_ttl)
                    }
                    _ => Err(not_found()),
                })
            })
            .collect()
    }
}
