//! [BatchPushJobs][chirpy.v1.JobService.BatchPushJobs]: store many jobs in
//! one transaction, or none.

use chirpy_core::{Error, QueueName, Result, limits::MAX_BATCH_JOBS};
use chirpy_proto::v1 as pb;
use tonic::Status;

use super::{Jobs, push_job};
use crate::{convert::job_to_proto, metrics, status::to_status};

#[tracing::instrument(name = "batch_push_jobs", skip_all, fields(queue = %request.queue, jobs = request.jobs.len()))]
pub async fn handle(jobs: &Jobs, request: pb::BatchPushJobsRequest) -> Result<pb::BatchPushJobsResponse, Status> {
    let request_queue = request.queue.clone();
    let new = validate(jobs, request).map_err(to_status)?;
    let pushed = jobs.store.push(new).await.map_err(to_status)?;
    metrics::pushed(&request_queue, pushed.iter().filter(|p| !p.deduplicated).count());
    Ok(pb::BatchPushJobsResponse {
        results: pushed
            .into_iter()
            .map(|p| pb::PushJobResponse { job: Some(job_to_proto(p.job)), deduplicated: p.deduplicated })
            .collect(),
    })
}

/// Validates every job before anything is stored, so that one bad job
/// rejects the whole batch.
fn validate(jobs: &Jobs, request: pb::BatchPushJobsRequest) -> Result<Vec<chirpy_core::NewJob>> {
    let queue = QueueName::parse(&request.queue)?;
    if request.jobs.is_empty() || request.jobs.len() > MAX_BATCH_JOBS {
        return Err(Error::invalid(
            "jobs",
            format!("must hold 1 to {MAX_BATCH_JOBS} jobs, got {}", request.jobs.len()),
        ));
    }
    request
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, mut job)| {
            let field = format!("jobs[{i}]");
            if job.queue.is_empty() {
                job.queue = queue.to_string();
            } else if job.queue != queue.as_str() {
                return Err(Error::invalid(
                    format!("{field}.queue"),
                    format!("is {:?} but the batch is for queue {:?}", job.queue, queue.as_str()),
                ));
            }
            push_job::spec(job)
                .and_then(|spec| spec.validate(&jobs.limits, jobs.default_retry))
                .map_err(|e| e.within(&field))
        })
        .collect()
}
