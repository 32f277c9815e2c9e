//! `chirpy.v1.JobService`: one module per RPC, this file only dispatches.

mod batch_push_jobs;
mod batch_retry_jobs;
mod cancel_job;
mod get_job;
mod list_jobs;
mod list_queues;
mod list_workers;
mod push_job;
mod retry_job;

use std::sync::Arc;

use chirpy_core::{Limits, job::RetryPolicy};
use chirpy_proto::v1::{self as pb, job_service_server::JobService};
use chirpy_storage::JobStore;
use tonic::{Request, Response, Status};

/// What every handler needs: the store and the limits requests are checked
/// against.
#[derive(Clone)]
pub struct Jobs {
    /// Where jobs live.
    pub store: Arc<dyn JobStore>,
    /// Operator-set limits.
    pub limits: Limits,
    /// The retry policy of jobs pushed without one.
    pub default_retry: RetryPolicy,
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl JobService for Jobs {
    async fn push_job(&self, request: Request<pb::PushJobRequest>) -> Reply<pb::PushJobResponse> {
        push_job::handle(self, request.into_inner()).await.map(Response::new)
    }

    async fn batch_push_jobs(&self, request: Request<pb::BatchPushJobsRequest>) -> Reply<pb::BatchPushJobsResponse> {
        batch_push_jobs::handle(self, request.into_inner()).await.map(Response::new)
    }

    async fn get_job(&self, request: Request<pb::GetJobRequest>) -> Reply<pb::GetJobResponse> {
        get_job::handle(self, request.into_inner()).await.map(Response::new)
    }

    async fn list_jobs(&self, request: Request<pb::ListJobsRequest>) -> Reply<pb::ListJobsResponse> {
        list_jobs::handle(self, request.into_inner()).await.map(Response::new)
    }

    async fn cancel_job(&self, request: Request<pb::CancelJobRequest>) -> Reply<pb::CancelJobResponse> {
        cancel_job::handle(self, request.into_inner()).await.map(Response::new)
    }

    async fn retry_job(&self, request: Request<pb::RetryJobRequest>) -> Reply<pb::RetryJobResponse> {
        retry_job::handle(self, request.into_inner()).await.map(Response::new)
    }

    async fn batch_retry_jobs(&self, request: Request<pb::BatchRetryJobsRequest>) -> Reply<pb::BatchRetryJobsResponse> {
        batch_retry_jobs::handle(self, request.into_inner()).await.map(Response::new)
    }

    async fn list_queues(&self, request: Request<pb::ListQueuesRequest>) -> Reply<pb::ListQueuesResponse> {
        list_queues::handle(self, request.into_inner()).await.map(Response::new)
    }

    async fn list_workers(&self, request: Request<pb::ListWorkersRequest>) -> Reply<pb::ListWorkersResponse> {
        list_workers::handle(self, request.into_inner()).await.map(Response::new)
    }
}
