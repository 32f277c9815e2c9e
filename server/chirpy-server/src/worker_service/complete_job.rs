//! [CompleteJob][chirpy.v1.WorkerService.CompleteJob] and
//! [BatchCompleteJobs][chirpy.v1.WorkerService.BatchCompleteJobs]: record
//! successes, each fenced by its lease.

use chirpy_core::{Result, job::Payload, lease::Completion};
use chirpy_proto::v1 as pb;
use tonic::Status;

use super::{Workers, check_batch, lease_ref, outcome};
use crate::{
    convert::{job_to_proto, json_from_proto},
    metrics,
    status::to_status,
};

#[tracing::instrument(name = "complete_job", skip_all, fields(queue = %request.queue, job = %request.id))]
pub async fn handle(workers: &Workers, request: pb::CompleteJobRequest) -> Result<pb::CompleteJobResponse, Status> {
    let completion = completion(workers, request).map_err(to_status)?;
    let mut outcomes = workers.store.complete(vec![completion]).await.map_err(to_status)?;
    let job = outcomes.pop().ok_or_else(|| Status::internal("no outcome"))?.map_err(to_status)?;
    metrics::outcome(&job);
    Ok(pb::CompleteJobResponse { job: Some(job_to_proto(job)) })
}

#[tracing::instrument(name = "batch_complete_jobs", skip_all, fields(jobs = request.jobs.len()))]
pub async fn handle_batch(
    workers: &Workers,
    request: pb::BatchCompleteJobsRequest,
) -> Result<pb::BatchCompleteJobsResponse, Status> {
    check_batch("jobs", request.jobs.len()).map_err(to_status)?;
    let completions = request
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| completion(workers, job).map_err(|e| e.within(&format!("jobs[{i}]"))))
        .collect::<Result<Vec<_>>>()
        .map_err(to_status)?;
    let outcomes = workers.store.complete(completions).await.map_err(to_status)?;
    outcomes.iter().flatten().for_each(metrics::outcome);
    Ok(pb::BatchCompleteJobsResponse { results: outcomes.into_iter().map(outcome).collect() })
}

fn completion(workers: &Workers, request: pb::CompleteJobRequest) -> Result<Completion> {
    let job = lease_ref(&request.queue, &request.id, &request.lease_id)?;
    let result = request
        .result
        .map(|value| -> Result<Vec<u8>> {
            let json = json_from_proto("result", value)?;
            Ok(Payload::encode("result", &json, &workers.limits)?.as_bytes().to_vec())
        })
        .transpose()?;
    Ok(Completion { job, result })
}
