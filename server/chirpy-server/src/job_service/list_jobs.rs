//! [ListJobs][chirpy.v1.JobService.ListJobs]: a queue's jobs, a page at a time.

use chirpy_core::{PageRequest, QueueName};
use chirpy_proto::v1 as pb;
use tonic::Status;

use super::Jobs;
use crate::{
    convert::{job_to_proto, state_filter},
    status::to_status,
};

#[tracing::instrument(name = "list_jobs", skip_all, fields(queue = %request.queue))]
pub async fn handle(jobs: &Jobs, request: pb::ListJobsRequest) -> Result<pb::ListJobsResponse, Status> {
    let queue = QueueName::parse(&request.queue).map_err(to_status)?;
    let state = state_filter("state", request.state).map_err(to_status)?;
    let filter = format!("jobs/{queue}/{}", state.map_or("any", |s| s.as_str()));
    let page = PageRequest::parse(request.page_size, &request.page_token, filter).map_err(to_status)?;
    let found = jobs.store.list(&queue, state, &page).await.map_err(to_status)?;
    Ok(pb::ListJobsResponse {
        jobs: found.items.into_iter().map(job_to_proto).collect(),
        next_page_token: found.next_page_token.unwrap_or_default(),
    })
}
