//! [ListWorkers][chirpy.v1.JobService.ListWorkers]: workers heard from lately.

use std::time::{Duration, SystemTime};

use chirpy_proto::v1 as pb;
use tonic::Status;

use super::Jobs;
use crate::{convert::worker_to_proto, status::to_status};

/// Workers silent for longer are left out: Apalis never deletes worker rows,
/// so the table also remembers every worker that ever ran.
const RECENT: Duration = Duration::from_secs(5 * 60);

#[tracing::instrument(name = "list_workers", skip_all)]
pub async fn handle(jobs: &Jobs, _request: pb::ListWorkersRequest) -> Result<pb::ListWorkersResponse, Status> {
    let since = SystemTime::now() - RECENT;
    let workers = jobs.store.workers(since).await.map_err(to_status)?;
    Ok(pb::ListWorkersResponse { workers: workers.into_iter().map(worker_to_proto).collect() })
}
