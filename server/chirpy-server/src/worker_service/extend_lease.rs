//! [ExtendLease][chirpy.v1.WorkerService.ExtendLease]: renew one lease.

use chirpy_proto::v1 as pb;
use tonic::Status;

use super::{Workers, lease_ref};
use crate::{convert::time_to_proto, status::to_status};

#[tracing::instrument(name = "extend_lease", skip_all, fields(queue = %request.queue, job = %request.id))]
pub async fn handle(workers: &Workers, request: pb::ExtendLeaseRequest) -> Result<pb::ExtendLeaseResponse, Status> {
    let lease = lease_ref(&request.queue, &request.id, &request.lease_id).map_err(to_status)?;
    let expires_at = workers.store.extend(&lease).await.map_err(to_status)?;
    Ok(pb::ExtendLeaseResponse { expires_at: Some(time_to_proto(expires_at)) })
}
