//! `chirpy.v1.WorkerService`: one module per RPC (a batch RPC lives with its
//! single form), this file only dispatches and holds what they share.

mod complete_job;
mod extend_lease;
mod fail_job;
mod heartbeat;
mod lease_jobs;
mod release_jobs;

use std::{sync::Arc, time::Duration};

use chirpy_core::{
    Error, JobId, Limits, QueueName, Result,
    lease::{LeaseRef, LeaseToken},
    limits::{MAX_BATCH_JOBS, MAX_WORKER_QUEUES},
};
use chirpy_proto::v1::{self as pb, worker_service_server::WorkerService};
use chirpy_storage::JobStore;
use tonic::{Request, Response, Status};

use crate::{convert::job_to_proto, shutdown::Shutdown, status::to_status};

/// What the worker protocol's handlers share.
#[derive(Clone)]
pub struct Workers {
    /// Where jobs live.
    pub store: Arc<dyn JobStore>,
    /// Operator-set limits (results share the payload limit).
    pub limits: Limits,
    /// How long a lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// Ends long polls, and turns heartbeat directives to QUIET.
    pub shutdown: Shutdown,
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl WorkerService for Workers {
    async fn lease_jobs(&self, request: Request<pb::LeaseJobsRequest>) -> Reply<pb::LeaseJobsResponse> {
        let deadline = lease_jobs::client_deadline(request.metadata());
        lease_jobs::handle(self, request.into_inner(), deadline).await.map(Response::new)
    }

    async fn heartbeat(&self, request: Request<pb::HeartbeatRequest>) -> Reply<pb::HeartbeatResponse> {
        heartbeat::handle(self, request.into_inner()).await.map(Response::new)
    }

    async fn complete_job(&self, request: Request<pb::CompleteJobRequest>) -> Reply<pb::CompleteJobResponse> {
        complete_job::handle(self, request.into_inner()).await.map(Response::new)
    }

    async fn fail_job(&self, request: Request<pb::FailJobRequest>) -> Reply<pb::FailJobResponse> {
        fail_job::handle(self, request.into_inner()).await.map(Response::new)
    }

    async fn batch_complete_jobs(
        &self,
        request: Request<pb::BatchCompleteJobsRequest>,
    ) -> Reply<pb::BatchCompleteJobsResponse> {
        complete_job::handle_batch(self, request.into_inner()).await.map(Response::new)
    }

    async fn batch_fail_jobs(&self, request: Request<pb::BatchFailJobsRequest>) -> Reply<pb::BatchFailJobsResponse> {
        fail_job::handle_batch(self, request.into_inner()).await.map(Response::new)
    }

    async fn extend_lease(&self, request: Request<pb::ExtendLeaseRequest>) -> Reply<pb::ExtendLeaseResponse> {
        extend_lease::handle(self, request.into_inner()).await.map(Response::new)
    }

    async fn release_jobs(&self, request: Request<pb::ReleaseJobsRequest>) -> Reply<pb::ReleaseJobsResponse> {
        release_jobs::handle(self, request.into_inner()).await.map(Response::new)
    }
}

/// Reads the three fields that name a lease.
fn lease_ref(queue: &str, id: &str, lease_id: &str) -> Result<LeaseRef> {
    Ok(LeaseRef {
        queue: QueueName::parse(queue)?,
        id: JobId::parse(id)?,
        lease: LeaseToken::parse("lease_id", lease_id)?,
    })
}

/// Reads a worker's queue list: 0 to 16 valid names (at least one when
/// `required`), duplicates dropped.
fn queues(names: &[String], required: bool) -> Result<Vec<QueueName>> {
    if names.len() > MAX_WORKER_QUEUES || (required && names.is_empty()) {
        let least = if required { 1 } else { 0 };
        return Err(Error::invalid(
            "queues",
            format!("must name {least} to {MAX_WORKER_QUEUES} queues, got {}", names.len()),
        ));
    }
    let mut queues = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let queue = QueueName::parse(name).map_err(|e| e.for_field(&format!("queues[{i}]")))?;
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    Ok(queues)
}

/// Checks the size of a batch field: 1 to 1000 items.
fn check_batch(field: &str, len: usize) -> Result<()> {
    if len == 0 || len > MAX_BATCH_JOBS {
        return Err(Error::invalid(field, format!("must hold 1 to {MAX_BATCH_JOBS} items, got {len}")));
    }
    Ok(())
}

/// The outcome of one batch item, as protobuf: the job, or a status.
fn outcome(result: Result<chirpy_core::Job>) -> pb::JobOutcome {
    let outcome = match result {
        Ok(job) => pb::job_outcome::Outcome::Job(job_to_proto(job)),
        Err(err) => {
            let status = to_status(err);
            pb::job_outcome::Outcome::Error(chirpy_proto::rpc::Status {
                code: status.code() as i32,
                message: status.message().to_owned(),
                details: Vec::new(),
            })
        }
    };
    pb::JobOutcome { outcome: Some(outcome) }
}
