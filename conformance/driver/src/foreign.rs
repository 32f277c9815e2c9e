//! The driver's own steps: `sleep`, and a second worker over raw gRPC (one
//! that crashes, or reports too late) for the lease cases.

use std::time::Duration;

use chirpy_conformance_runner::shape;
use chirpy_proto::v1::{self as pb, worker_service_client::WorkerServiceClient};
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::runner::Answer;

/// The kinds the driver runs itself.
pub const KINDS: [&str; 4] = ["sleep", "foreign_lease", "foreign_complete", "foreign_fail"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sleep {
    ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lease {
    queue: String,
    worker_id: String,
    #[serde(default = "one")]
    max_jobs: i32,
}

fn one() -> i32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Outcome {
    queue: String,
    id: String,
    lease_id: String,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: String,
    #[serde(default)]
    non_retryable: bool,
}

/// Runs driver step `kind` against the server on `channel`.
pub async fn run(channel: &Channel, kind: &str, args: Value) -> Result<Answer, String> {
    let mut workers = WorkerServiceClient::new(channel.clone());
    let parse_error = |e: serde_json::Error| format!("{kind} arguments: {e}");
    let answer = match kind {
        "sleep" => {
            let Sleep { ms } = serde_json::from_value(args).map_err(parse_error)?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Ok(Answer::Result(json!({})));
        }
        "foreign_lease" => {
            let a: Lease = serde_json::from_value(args).map_err(parse_error)?;
            let request = pb::LeaseJobsRequest {
                worker_id: a.worker_id,
                queues: vec![a.queue],
                max_jobs: a.max_jobs,
                wait: Some(prost_types::Duration { seconds: 2, nanos: 0 }),
            };
            workers.lease_jobs(request).await.map(|r| {
                let leases: Vec<Value> = r
                    .into_inner()
                    .leases
                    .iter()
                    .map(|l| json!({"lease_id": l.lease_id, "job": l.job.as_ref().map(shape::job)}))
                    .collect();
                json!({"leases": leases})
            })
        }
        "foreign_complete" => {
            let a: Outcome = serde_json::from_value(args).map_err(parse_error)?;
            let result = Some(chirpy_proto::json::from_json(a.result));
            let request = pb::CompleteJobRequest { queue: a.queue, id: a.id, lease_id: a.lease_id, result };
            workers.complete_job(request).await.map(|r| r.into_inner().job.as_ref().map_or(Value::Null, shape::job))
        }
        "foreign_fail" => {
            let a: Outcome = serde_json::from_value(args).map_err(parse_error)?;
            let request = pb::FailJobRequest {
                queue: a.queue,
                id: a.id,
                lease_id: a.lease_id,
                error: a.error,
                non_retryable: a.non_retryable,
                retry_after: None,
            };
            workers.fail_job(request).await.map(|r| r.into_inner().job.as_ref().map_or(Value::Null, shape::job))
        }
        other => return Err(format!("{other} is not a driver step")),
    };
    Ok(match answer {
        Ok(result) => Answer::Result(result),
        Err(status) => Answer::Error { code: shape::code(status.code()), message: status.message().to_owned() },
    })
}
