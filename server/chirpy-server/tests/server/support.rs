//! Helpers shared by the tests: clients and request builders.

use chirpy_proto::v1::{self as pb, job_service_client::JobServiceClient, worker_service_client::WorkerServiceClient};
use chirpy_testing::{Storage, TestServer};
use tonic::transport::Channel;

/// The JobService client type.
pub type Client = JobServiceClient<Channel>;

/// The server under test, built by cargo for this test run.
pub const CHIRPY: &str = env!("CARGO_BIN_EXE_chirpy");

/// Starts a server on `storage` with default settings.
pub async fn server(storage: Storage) -> TestServer {
    TestServer::builder(storage).binary(CHIRPY).start().await
}

/// A JobService client on `server`.
pub async fn jobs(server: &TestServer) -> JobServiceClient<Channel> {
    JobServiceClient::new(server.channel().await)
}

/// A WorkerService client on `server`.
pub async fn workers(server: &TestServer) -> WorkerServiceClient<Channel> {
    WorkerServiceClient::new(server.channel().await)
}

/// A protobuf Value from JSON.
pub fn value(json: serde_json::Value) -> prost_types::Value {
    chirpy_proto::json::from_json(json)
}

/// A protobuf Value as JSON.
pub fn json_of(value: &prost_types::Value) -> serde_json::Value {
    chirpy_proto::json::to_json(value.clone()).expect("JSON")
}

/// A push of `payload` to `queue` with nothing else set.
pub fn push(queue: &str, payload: serde_json::Value) -> pb::PushJobRequest {
    pb::PushJobRequest { queue: queue.into(), payload: Some(value(payload)), ..Default::default() }
}

/// Pushes and returns the stored job.
pub async fn push_job(client: &mut JobServiceClient<Channel>, request: pb::PushJobRequest) -> pb::Job {
    client.push_job(request).await.expect("push").into_inner().job.expect("a job")
}

/// Gets a job.
pub async fn get_job(client: &mut JobServiceClient<Channel>, queue: &str, id: &str) -> pb::Job {
    let request = pb::GetJobRequest { queue: queue.into(), id: id.into() };
    client.get_job(request).await.expect("get").into_inner().job.expect("a job")
}

/// Lists every job of `queue` in `state` (one page of up to 1000).
pub async fn list(client: &mut JobServiceClient<Channel>, queue: &str, state: pb::JobState) -> Vec<pb::Job> {
    let request =
        pb::ListJobsRequest { queue: queue.into(), state: state.into(), page_size: 1000, ..Default::default() };
    client.list_jobs(request).await.expect("list").into_inner().jobs
}

/// The field named by an INVALID_ARGUMENT's `google.rpc.BadRequest` detail.
pub fn violated_field(status: &tonic::Status) -> String {
    use prost::Message;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let details = chirpy_proto::rpc::Status::decode(status.details()).expect("status details");
    let detail = details.details.first().expect("one detail");
    assert_eq!(detail.type_url, "type.googleapis.com/google.rpc.BadRequest");
    let bad = chirpy_proto::rpc::BadRequest::decode(detail.value.as_slice()).expect("a BadRequest");
    bad.field_violations[0].field.clone()
}

/// The Python with the test tools (httpx, openapi-spec-validator,
/// schemathesis): `CHIRPY_PYTHON`, else the project's `.venv` that
/// `make setup` creates.
pub fn python() -> std::path::PathBuf {
    if let Some(python) = std::env::var_os("CHIRPY_PYTHON") {
        return python.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(venv.exists(), "{} is missing: run `make setup` (or set CHIRPY_PYTHON)", venv.display());
    venv
}
