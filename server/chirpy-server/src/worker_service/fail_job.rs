//! [FailJob][chirpy.v1.WorkerService.FailJob] and
//! [BatchFailJobs][chirpy.v1.WorkerService.BatchFailJobs]: record failures;
//! the storage decides between a retry after a backoff and the failure queue.

use chirpy_core::{
    Error, Result,
    job::RetryPolicy,
    lease::{Failure, truncate_error},
};
use chirpy_proto::v1 as pb;
use tonic::Status;

use super::{Workers, check_batch, lease_ref, outcome};
use crate::{
    convert::{duration_from_proto, job_to_proto},
    metrics,
    status::to_status,
};

#[tracing::instrument(name = "fail_job", skip_all, fields(queue = %request.queue, job = %request.id))]
pub async fn handle(workers: &Workers, request: pb::FailJobRequest) -> Result<pb::FailJobResponse, Status> {
    let failure = failure(request).map_err(to_status)?;
    let mut outcomes = workers.store.fail(vec![failure]).await.map_err(to_status)?;
    let job = outcomes.pop().ok_or_else(|| Status::internal("no outcome"))?.map_err(to_status)?;
    metrics::outcome(&job);
    tracing::debug!(state = %job.state, attempts = job.attempts, "failed");
    Ok(pb::FailJobResponse { job: Some(job_to_proto(job)) })
}

#[tracing::instrument(name = "batch_fail_jobs", skip_all, fields(jobs = request.jobs.len()))]
pub async fn handle_batch(
    workers: &Workers,
    request: pb::BatchFailJobsRequest,
) -> Result<pb::BatchFailJobsResponse, Status> {
    check_batch("jobs", request.jobs.len()).map_err(to_status)?;
    let failures = request
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| failure(job).map_err(|e| e.within(&format!("jobs[{i}]"))))
        .collect::<Result<Vec<_>>>()
        .map_err(to_status)?;
    let outcomes = workers.store.fail(failures).await.map_err(to_status)?;
    outcomes.iter().flatten().for_each(metrics::outcome);
    Ok(pb::BatchFailJobsResponse { results: outcomes.into_iter().map(outcome).collect() })
}

fn failure(request: pb::FailJobRequest) -> Result<Failure> {
    let job = lease_ref(&request.queue, &request.id, &request.lease_id)?;
    let retry_after = request.retry_after.map(|d| duration_from_proto("retry_after", &d)).transpose()?;
    if retry_after.is_some_and(|d| d > RetryPolicy::MAX_BACKOFF) {
        return Err(Error::invalid("retry_after", "must be at most 30 days"));
    }
    Ok(Failure { job, error: truncate_error(request.error), non_retryable: request.non_retryable, retry_after })
}
