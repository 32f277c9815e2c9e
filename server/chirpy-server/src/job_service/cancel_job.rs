//! [CancelJob][chirpy.v1.JobService.CancelJob]: stop a job that has not
//! finished. A running job's worker learns it at its next heartbeat.

use chirpy_core::{JobId, QueueName};
use chirpy_proto::v1 as pb;
use tonic::Status;

use super::Jobs;
use crate::{convert::job_to_proto, metrics, status::to_status};

#[tracing::instrument(name = "cancel_job", skip_all, fields(queue = %request.queue, job = %request.id))]
pub async fn handle(jobs: &Jobs, request: pb::CancelJobRequest) -> Result<pb::CancelJobResponse, Status> {
    let queue = QueueName::parse(&request.queue).map_err(to_status)?;
    let id = JobId::parse(&request.id).map_err(to_status)?;
    let job = jobs.store.cancel(&queue, id).await.map_err(to_status)?;
    tracing::info!(job = %job.id, "canceled");
    metrics::canceled(&job.queue);
    Ok(pb::CancelJobResponse { job: Some(job_to_proto(job)) })
}
