//! [GetJob][chirpy.v1.JobService.GetJob]: one job.

use chirpy_core::{JobId, QueueName};
use chirpy_proto::v1 as pb;
use tonic::Status;

use super::Jobs;
use crate::{convert::job_to_proto, status::to_status};

#[tracing::instrument(name = "get_job", skip_all, fields(queue = %request.queue, job = %request.id))]
pub async fn handle(jobs: &Jobs, request: pb::GetJobRequest) -> Result<pb::GetJobResponse, Status> {
    let queue = QueueName::parse(&request.queue).map_err(to_status)?;
    let id = JobId::parse(&request.id).map_err(to_status)?;
    let job = jobs.store.get(&queue, id).await.map_err(to_status)?;
    Ok(pb::GetJobResponse { job: Some(job_to_proto(job)) })
}
