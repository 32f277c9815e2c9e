//! [ReleaseJobs][chirpy.v1.WorkerService.ReleaseJobs]: a stopping worker
//! hands back jobs it leased but did not start.

use chirpy_core::Result;
use chirpy_proto::v1 as pb;
use tonic::Status;

use super::{Workers, check_batch, lease_ref, outcome};
use crate::status::to_status;

#[tracing::instrument(name = "release_jobs", skip_all, fields(jobs = request.jobs.len()))]
pub async fn handle(workers: &Workers, request: pb::ReleaseJobsRequest) -> Result<pb::ReleaseJobsResponse, Status> {
    check_batch("jobs", request.jobs.len()).map_err(to_status)?;
    let leases = request
        .jobs
        .iter()
        .enumerate()
        .map(|(i, job)| lease_ref(&job.queue, &job.id, &job.lease_id).map_err(|e| e.within(&format!("jobs[{i}]"))))
        .collect::<Result<Vec<_>>>()
        .map_err(to_status)?;
    let outcomes = workers.store.release(leases).await.map_err(to_status)?;
    Ok(pb::ReleaseJobsResponse { results: outcomes.into_iter().map(outcome).collect() })
}
