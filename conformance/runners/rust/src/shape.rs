//! The conformance suite's Job object, from the generated `Job`.

use chirpy_client::proto as pb;
use serde_json::{Value, json};

/// `job` in the suite's shape: states without their `JOB_STATE_` prefix,
/// timestamps in RFC 3339, unset values as `null`.
pub fn job(job: &pb::Job) -> Value {
    json!({
        "id": job.id,
        "queue": job.queue,
        "state": state(job.state),
        "payload": value(job.payload.clone()),
        "result": value(job.result.clone()),
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "metadata": job.metadata,
        "idempotency_key": job.idempotency_key,
        "last_error": job.last_error,
        "scheduled_at": timestamp(job.scheduled_at),
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
        "worker_id": job.lease.as_ref().map(|lease| lease.worker_id.clone()),
    })
}

/// A `JobState` number as the suite names it (`PENDING`).
pub fn state(state: i32) -> String {
    let name = pb::JobState::try_from(state).map_or("UNKNOWN", |s| s.as_str_name());
    name.trim_start_matches("JOB_STATE_").to_owned()
}

/// The `JobState` the suite calls `name`.
pub fn parse_state(name: &str) -> Option<pb::JobState> {
    pb::JobState::from_str_name(&format!("JOB_STATE_{name}"))
}

fn value(value: Option<prost_types::Value>) -> Value {
    value.and_then(|v| chirpy_proto::json::to_json(v).ok()).unwrap_or(Value::Null)
}

fn timestamp(timestamp: Option<prost_types::Timestamp>) -> Value {
    timestamp.map_or(Value::Null, |t| Value::String(t.to_string()))
}

/// A gRPC code as the suite names it (`INVALID_ARGUMENT`).
pub fn code(code: tonic::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}
