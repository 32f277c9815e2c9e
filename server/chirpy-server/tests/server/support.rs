//! Helpers shared by the tests: clients and request builders.

use chirpy_proto::v1::{self as pb, job_service_client::JobServiceClient};
use chirpy_testing::{Storage, TestServer};
use serde_json::json;
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

/// A protobuf Value from JSON.
pub fn value(json: serde_json::Value) -> prost_types::Value {
    to_proto(json)
}

fn to_proto(json: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(a) => {
            Kind::ListValue(prost_types::ListValue { values: a.into_iter().map(to_proto).collect() })
        }
        serde_json::Value::Object(o) => {
            Kind::StructValue(prost_types::Struct { fields: o.into_iter().map(|(k, v)| (k, to_proto(v))).collect() })
        }
    };
    prost_types::Value { kind: Some(kind) }
}

/// A protobuf Value as JSON.
pub fn json_of(value: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::ListValue(l)) => serde_json::Value::Array(l.values.iter().map(json_of).collect()),
        Some(Kind::StructValue(s)) => {
            serde_json::Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
    }
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
