//! [LeaseJobs][chirpy.v1.WorkerService.LeaseJobs]: hand ready jobs to a
//! worker, waiting for one when none is ready (a long poll).
//!
//! The wait costs the storage nothing while nothing happens: the call
//! sleeps until a push to one of its queues wakes it (see
//! `chirpy_storage::Signals`), until the next scheduled job becomes due,
//! or until its time is up. A slow re-check covers changes made behind
//! Chirpy's back (an Apalis producer writing to the same SQLite file).

use std::time::{Duration, SystemTime};

use chirpy_core::{
    Error, Result, WorkerId,
    limits::{DEFAULT_LEASE_WAIT, MAX_LEASE_JOBS, MAX_LEASE_WAIT},
};
use chirpy_proto::v1 as pb;
use tokio::time::Instant;
use tonic::{Status, metadata::MetadataMap};

use super::{Workers, queues};
use crate::{
    convert::{duration_from_proto, job_to_proto},
    metrics,
    status::to_status,
};

/// How often a waiting call looks again without being woken.
const RECHECK: Duration = Duration::from_secs(5);

/// How much earlier than the client's deadline an empty answer is sent, so
/// that it arrives in time.
const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

#[tracing::instrument(name = "lease_jobs", skip_all, fields(worker = %request.worker_id))]
pub async fn handle(
    workers: &Workers,
    request: pb::LeaseJobsRequest,
    client_deadline: Option<Duration>,
) -> Result<pb::LeaseJobsResponse, Status> {
    let worker = WorkerId::parse(&request.worker_id).map_err(to_status)?;
    let queues = queues(&request.queues, true).map_err(to_status)?;
    let max = max_jobs(request.max_jobs).map_err(to_status)?;
    let mut wait = wait(request.wait.as_ref()).map_err(to_status)?;
    if let Some(deadline) = client_deadline {
        wait = wait.min(deadline.saturating_sub(DEADLINE_MARGIN));
    }
    if workers.shutdown.is_fired() {
        return Ok(pb::LeaseJobsResponse::default());
    }

    let store = workers.store.as_ref();
    store.register_worker(&worker, &queues).await.map_err(to_status)?;
    let subscription = store.signals().subscribe(&queues);
    let until = Instant::now() + wait;
    let mut shutdown = workers.shutdown.clone();
    let _waiting = metrics::waiting();
    loop {
        // Armed before looking, so a push in between is not missed.
        let changed = subscription.changed();
        let leased = store.lease(&worker, &queues, max).await.map_err(to_status)?;
        if !leased.is_empty() || Instant::now() >= until {
            tracing::debug!(jobs = leased.len(), "leased");
            metrics::leased(&leased.iter().map(|l| &l.job).collect::<Vec<_>>());
            let leases = leased
                .into_iter()
                .map(|l| pb::LeasedJob { lease_id: l.lease.to_string(), job: Some(job_to_proto(l.job)) })
                .collect();
            return Ok(pb::LeaseJobsResponse { leases });
        }
        let next_due = store.next_due(&queues).await.map_err(to_status)?;
        let wake = next_due.map_or(until, |due| until.min(instant_of(due))).min(Instant::now() + RECHECK);
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep_until(wake) => {}
            () = shutdown.wait() => return Ok(pb::LeaseJobsResponse::default()),
        }
    }
}

fn max_jobs(requested: i32) -> Result<usize> {
    match requested {
        0 => Ok(1),
        n if n > 0 && n as usize <= MAX_LEASE_JOBS => Ok(n as usize),
        n => Err(Error::invalid("max_jobs", format!("must be between 1 and {MAX_LEASE_JOBS} (or 0 for 1), got {n}"))),
    }
}

fn wait(requested: Option<&prost_types::Duration>) -> Result<Duration> {
    let Some(requested) = requested else {
        return Ok(DEFAULT_LEASE_WAIT);
    };
    let wait = duration_from_proto("wait", requested)?;
    if wait > MAX_LEASE_WAIT {
        return Err(Error::invalid("wait", format!("must be at most {}s", MAX_LEASE_WAIT.as_secs())));
    }
    Ok(wait)
}

/// The tokio instant of a wall-clock time (now, if it is already past).
fn instant_of(at: SystemTime) -> Instant {
    Instant::now() + at.duration_since(SystemTime::now()).unwrap_or_default()
}

/// The time left before the client gives up, from its `grpc-timeout`
/// header (`<digits><unit>`, unit one of `H M S m u n`).
pub fn client_deadline(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        let deadline = |text: &str| {
            let mut metadata = MetadataMap::new();
            metadata.insert("grpc-timeout", text.parse().unwrap());
            client_deadline(&metadata)
        };
        assert_eq!(deadline("2S"), Some(Duration::from_secs(2)));
        assert_eq!(deadline("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(deadline("1M"), Some(Duration::from_secs(60)));
        assert_eq!(deadline("7x"), None);
        assert_eq!(deadline("S"), None);
    }

    #[test]
    fn lease_limits() {
        assert_eq!(max_jobs(0).unwrap(), 1);
        assert_eq!(max_jobs(1000).unwrap(), 1000);
        assert!(max_jobs(1001).is_err() && max_jobs(-1).is_err());
        assert_eq!(wait(None).unwrap(), DEFAULT_LEASE_WAIT);
        assert!(wait(Some(&prost_types::Duration { seconds: 31, nanos: 0 })).is_err());
        assert!(wait(Some(&prost_types::Duration { seconds: -1, nanos: 0 })).is_err());
    }
}
