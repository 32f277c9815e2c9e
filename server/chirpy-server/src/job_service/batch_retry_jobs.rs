//! [BatchRetryJobs][chirpy.v1.JobService.BatchRetryJobs]: empty the failure
//! queue, or retry some of its jobs.

use chirpy_core::{Error, JobId, QueueName, Result, limits::MAX_BATCH_JOBS};
use chirpy_proto::v1 as pb;
use tonic::Status;

use super::Jobs;
use crate::status::to_status;

#[tracing::instrument(name = "batch_retry_jobs", skip_all, fields(queue = %request.queue, ids = request.ids.len()))]
pub async fn handle(jobs: &Jobs, request: pb::BatchRetryJobsRequest) -> Result<pb::BatchRetryJobsResponse, Status> {
    let queue = QueueName::parse(&request.queue).map_err(to_status)?;
    let ids = parse_ids(&request.ids).map_err(to_status)?;
    let retried =
        jobs.store.retry_dead(&queue, (!ids.is_empty()).then_some(ids.as_slice())).await.map_err(to_status)?;
    tracing::info!(retried = retried.len(), "retried dead jobs");
    Ok(pb::BatchRetryJobsResponse { retried_ids: retried.iter().map(JobId::to_string).collect() })
}

fn parse_ids(ids: &[String]) -> Result<Vec<JobId>> {
    if ids.len() > MAX_BATCH_JOBS {
        return Err(Error::invalid("ids", format!("must hold at most {MAX_BATCH_JOBS} ids, got {}", ids.len())));
    }
    ids.iter().enumerate().map(|(i, id)| JobId::parse(id).map_err(|e| e.for_field(&format!("ids[{i}]")))).collect()
}
