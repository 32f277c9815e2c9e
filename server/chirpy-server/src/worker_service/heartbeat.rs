//! [Heartbeat][chirpy.v1.WorkerService.Heartbeat]: a worker says it is alive
//! and what it runs; it learns what was canceled or lost meanwhile.

use std::time::SystemTime;

use chirpy_core::{Error, JobId, Result, WorkerId, limits::MAX_HEARTBEAT_JOBS};
use chirpy_proto::v1 as pb;
use tonic::Status;

use super::{Workers, queues};
use crate::{
    convert::{duration_to_proto, time_to_proto},
    metrics,
    status::to_status,
};

#[tracing::instrument(name = "heartbeat", skip_all, fields(worker = %request.worker_id, running = request.running_job_ids.len()))]
pub async fn handle(workers: &Workers, request: pb::HeartbeatRequest) -> Result<pb::HeartbeatResponse, Status> {
    let worker = WorkerId::parse(&request.worker_id).map_err(to_status)?;
    let queues = queues(&request.queues, false).map_err(to_status)?;
    let running = running(&request.running_job_ids).map_err(to_status)?;
    let report = workers.store.heartbeat(&worker, &queues, &running).await.map_err(to_status)?;
    metrics::heartbeat();
    if !report.canceled.is_empty() || !report.lost.is_empty() {
        tracing::info!(canceled = report.canceled.len(), lost = report.lost.len(), "worker told to stop jobs");
    }
    let directive = if workers.shutdown.is_fired() { pb::WorkerDirective::Quiet } else { pb::WorkerDirective::Run };
    Ok(pb::HeartbeatResponse {
        canceled_job_ids: report.canceled.iter().map(JobId::to_string).collect(),
        lost_job_ids: report.lost.iter().map(JobId::to_string).collect(),
        lease_expires_at: Some(time_to_proto(SystemTime::now() + workers.lease_ttl)),
        heartbeat_interval: Some(duration_to_proto(workers.lease_ttl / 3)),
        directive: directive.into(),
    })
}

fn running(ids: &[String]) -> Result<Vec<JobId>> {
    if ids.len() > MAX_HEARTBEAT_JOBS {
        return Err(Error::invalid(
            "running_job_ids",
            format!("must hold at most {MAX_HEARTBEAT_JOBS} ids, got {}", ids.len()),
        ));
    }
    ids.iter()
        .enumerate()
        .map(|(i, id)| JobId::parse(id).map_err(|e| e.for_field(&format!("running_job_ids[{i}]"))))
        .collect()
}
