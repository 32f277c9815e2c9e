//! [PushJob][chirpy.v1.JobService.PushJob]: store one job.

use chirpy_core::{Result, job::JobSpec};
use chirpy_proto::v1 as pb;
use tonic::Status;

use super::Jobs;
use crate::{
    convert::{duration_from_proto, job_to_proto, json_from_proto, time_from_proto},
    metrics,
    status::to_status,
};

#[tracing::instrument(name = "push_job", skip_all, fields(queue = %request.queue))]
pub async fn handle(jobs: &Jobs, request: pb::PushJobRequest) -> Result<pb::PushJobResponse, Status> {
    let new = spec(request).and_then(|spec| spec.validate(&jobs.limits, jobs.default_retry)).map_err(to_status)?;
    let mut pushed = jobs.store.push(vec![new]).await.map_err(to_status)?;
    let pushed = pushed.pop().ok_or_else(|| Status::internal("the store returned no job"))?;
    tracing::debug!(job = %pushed.job.id, deduplicated = pushed.deduplicated, "pushed");
    if !pushed.deduplicated {
        metrics::pushed(&pushed.job.queue, 1);
    }
    Ok(pb::PushJobResponse { job: Some(job_to_proto(pushed.job)), deduplicated: pushed.deduplicated })
}

/// Reads a push request into a [`JobSpec`], converting protobuf types; the
/// spec's own validation comes after. Shared with batch pushes.
pub fn spec(request: pb::PushJobRequest) -> Result<JobSpec> {
    Ok(JobSpec {
        queue: request.queue,
        payload: request.payload.map(|p| json_from_proto("payload", p)).transpose()?,
        scheduled_at: request.scheduled_at.map(|t| time_from_proto("scheduled_at", &t)).transpose()?,
        priority: request.priority,
        max_attempts: request.max_attempts,
        idempotency_key: request.idempotency_key,
        metadata: request.metadata.into_iter().collect(),
        retry_policy: request
            .retry_policy
            .map(|policy| -> Result<_> {
                Ok((
                    policy
                        .initial_backoff
                        .map(|d| duration_from_proto("retry_policy.initial_backoff", &d))
                        .transpose()?,
                    policy.max_backoff.map(|d| duration_from_proto("retry_policy.max_backoff", &d)).transpose()?,
                ))
            })
            .transpose()?,
    })
}
