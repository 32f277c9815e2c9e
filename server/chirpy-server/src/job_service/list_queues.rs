//! [ListQueues][chirpy.v1.JobService.ListQueues]: queues with per-state counts.

use chirpy_core::PageRequest;
use chirpy_proto::v1 as pb;
use tonic::Status;

use super::Jobs;
use crate::{convert::queue_to_proto, status::to_status};

#[tracing::instrument(name = "list_queues", skip_all)]
pub async fn handle(jobs: &Jobs, request: pb::ListQueuesRequest) -> Result<pb::ListQueuesResponse, Status> {
    let page = PageRequest::parse(request.page_size, &request.page_token, "queues".into()).map_err(to_status)?;
    let found = jobs.store.queues(&page).await.map_err(to_status)?;
    Ok(pb::ListQueuesResponse {
        queues: found.items.into_iter().map(queue_to_proto).collect(),
        next_page_token: found.next_page_token.unwrap_or_default(),
    })
}
