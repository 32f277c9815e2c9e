//! Conversions between the protobuf messages and Chirpy's domain types.
//!
//! Conversions of client input validate as they go and name the field they
//! came from, so a client learns which part of its request was wrong.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chirpy_core::{Error, Job, JobState, QueueStats, Result, WorkerInfo, job::check_timestamp};
use chirpy_proto::v1 as pb;

/// A protobuf `Value` from a client as JSON.
///
/// # Errors
///
/// [`Error::InvalidArgument`] naming `field` for NaN or infinite numbers,
/// which JSON cannot represent.
pub fn json_from_proto(field: &str, value: prost_types::Value) -> Result<serde_json::Value> {
    chirpy_proto::json::to_json(value).map_err(|e| Error::invalid(field, e.to_string()))
}

/// JSON as a protobuf `Value`.
pub fn json_to_proto(value: serde_json::Value) -> prost_types::Value {
    chirpy_proto::json::from_json(value)
}

/// A protobuf `Timestamp` from a client as a `SystemTime`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] naming `field` unless it lies between 1970 and
/// the end of year 9999 with valid nanoseconds.
pub fn time_from_proto(field: &str, t: &prost_types::Timestamp) -> Result<SystemTime> {
    if t.seconds < 0 || !(0..1_000_000_000).contains(&t.nanos) {
        return Err(Error::invalid(field, "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z"));
    }
    let at = UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos as u32);
    check_timestamp(field, at)?;
    Ok(at)
}

/// A `SystemTime` as a protobuf `Timestamp`.
pub fn time_to_proto(t: SystemTime) -> prost_types::Timestamp {
    t.into()
}

/// A protobuf `Duration` from a client as a `Duration`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] naming `field` for negative or malformed
/// durations.
pub fn duration_from_proto(field: &str, d: &prost_types::Duration) -> Result<Duration> {
    Duration::try_from(*d).map_err(|_| Error::invalid(field, "must be a non-negative duration"))
}

/// A `Duration` as a protobuf `Duration`.
pub fn duration_to_proto(d: Duration) -> prost_types::Duration {
    // Durations here are at most 30 days, far inside the protobuf range.
    prost_types::Duration::try_from(d).unwrap_or_default()
}

/// A state filter from a client: `UNSPECIFIED` means none.
///
/// # Errors
///
/// [`Error::InvalidArgument`] naming `field` for a number outside the enum.
pub fn state_filter(field: &str, value: i32) -> Result<Option<JobState>> {
    match pb::JobState::try_from(value) {
        Ok(pb::JobState::Unspecified) => Ok(None),
        Ok(state) => Ok(Some(state_from_proto(state))),
        Err(_) => Err(Error::invalid(field, format!("{value} is not a JobState"))),
    }
}

fn state_from_proto(state: pb::JobState) -> JobState {
    match state {
        pb::JobState::Pending | pb::JobState::Unspecified => JobState::Pending,
        pb::JobState::Scheduled => JobState::Scheduled,
        pb::JobState::Running => JobState::Running,
        pb::JobState::Succeeded => JobState::Succeeded,
        pb::JobState::Dead => JobState::Dead,
        pb::JobState::Canceled => JobState::Canceled,
    }
}

/// A domain state as its protobuf enum.
pub fn state_to_proto(state: JobState) -> pb::JobState {
    match state {
        JobState::Pending => pb::JobState::Pending,
        JobState::Scheduled => pb::JobState::Scheduled,
        JobState::Running => pb::JobState::Running,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Dead => pb::JobState::Dead,
        JobState::Canceled => pb::JobState::Canceled,
    }
}

/// A job as its protobuf message.
pub fn job_to_proto(job: Job) -> pb::Job {
    pb::Job {
        id: job.id.to_string(),
        queue: job.queue,
        payload: Some(json_to_proto(job.payload)),
        state: state_to_proto(job.state).into(),
        priority: job.priority,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        scheduled_at: Some(time_to_proto(job.scheduled_at)),
        created_at: Some(time_to_proto(job.id.created_at())),
        started_at: job.started_at.map(time_to_proto),
        finished_at: job.finished_at.map(time_to_proto),
        last_error: job.last_error.unwrap_or_default(),
        result: job.result.map(json_to_proto),
        metadata: job.metadata.into_iter().collect(),
        idempotency_key: job.idempotency_key.unwrap_or_default(),
        lease: job
            .lease
            .map(|lease| pb::Lease { worker_id: lease.worker_id, expires_at: lease.expires_at.map(time_to_proto) }),
        retry_policy: job.retry_policy.map(|policy| pb::RetryPolicy {
            initial_backoff: Some(duration_to_proto(policy.initial_backoff)),
            max_backoff: Some(duration_to_proto(policy.max_backoff)),
        }),
    }
}

/// Queue statistics as the protobuf `Queue`.
pub fn queue_to_proto(q: QueueStats) -> pb::Queue {
    pb::Queue {
        name: q.name,
        pending: q.pending,
        scheduled: q.scheduled,
        running: q.running,
        succeeded: q.succeeded,
        dead: q.dead,
        canceled: q.canceled,
    }
}

/// A worker as the protobuf `Worker`.
pub fn worker_to_proto(w: WorkerInfo) -> pb::Worker {
    pb::Worker {
        id: w.id,
        queues: w.queues,
        kind: w.kind,
        started_at: w.started_at.map(time_to_proto),
        last_heartbeat_at: Some(time_to_proto(w.last_heartbeat_at)),
        running_jobs: w.running_jobs,
    }
}

#[cfg(test)]
mod tests {
    use prost_types::value::Kind;

    use super::*;

    #[test]
    fn nan_is_rejected_naming_the_field() {
        let nan = prost_types::Value { kind: Some(Kind::NumberValue(f64::NAN)) };
        let err = json_from_proto("payload", nan).unwrap_err();
        assert!(err.to_string().starts_with("payload: "));
    }

    #[test]
    fn timestamps_outside_rfc3339_are_rejected() {
        let bad = [
            prost_types::Timestamp { seconds: -1, nanos: 0 },
            prost_types::Timestamp { seconds: 0, nanos: 1_000_000_000 },
            prost_types::Timestamp { seconds: 253_402_300_800, nanos: 0 },
        ];
        for t in bad {
            assert!(time_from_proto("scheduled_at", &t).is_err(), "{t:?}");
        }
        assert!(time_from_proto("scheduled_at", &prost_types::Timestamp { seconds: 1, nanos: 5 }).is_ok());
    }

    #[test]
    fn unknown_states_are_rejected() {
        assert_eq!(state_filter("state", 0).unwrap(), None);
        assert_eq!(state_filter("state", 5).unwrap(), Some(JobState::Dead));
        assert!(state_filter("state", 42).is_err());
    }
}
