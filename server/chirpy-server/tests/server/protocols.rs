//! The one port's other protocols: reflection (so grpcurl needs no proto
//! files), health, and gRPC-web with CORS for browsers on other origins.

use chirpy_proto::v1::{self as pb, JobState, job_service_client::JobServiceClient};
use chirpy_testing::each_storage;
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::json;
use tokio_stream::StreamExt;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tonic_reflection::pb::{v1, v1alpha};

use crate::support::{json_of, push, server};

each_storage!(reflection_v1_and_v1alpha_list_the_services, |storage| async move {
    let server = server(storage).await;
    let channel = server.channel().await;

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1::ServerReflectionRequest {
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
        ..Default::default()
    };
    let mut stream = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["chirpy.v1.JobService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }

    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            "chirpy.v1.JobService".into(),
        )),
        ..Default::default()
    };
    let mut stream = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = stream.next().await.unwrap().unwrap();
    assert!(
        matches!(
            response.message_response,
            Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()
        ),
        "{response:?}"
    );
});

each_storage!(health_is_serving_while_the_storage_answers, |storage| async move {
    let server = server(storage).await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "chirpy.v1.JobService"] {
        let response = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    let response = reqwest_get(&format!("{}/healthz", server.url())).await;
    assert_eq!(response.0, 200);
});

each_storage!(grpc_web_over_http1_pushes_gets_and_lists, |storage| async move {
    let server = server(storage).await;
    let http1 = Client::builder(TokioExecutor::new()).build_http();
    let grpc_web = tower::ServiceBuilder::new().layer(tonic_web::GrpcWebClientLayer::new()).service(http1);
    let mut client = JobServiceClient::with_origin(grpc_web, server.url().parse().unwrap());

    let pushed = client.push_job(push("web", json!({"from": "browser"}))).await.unwrap().into_inner().job.unwrap();
    let got = client
        .get_job(pb::GetJobRequest { queue: "web".into(), id: pushed.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(json_of(got.payload.as_ref().unwrap()), json!({"from": "browser"}));
    let listed =
        client.list_jobs(pb::ListJobsRequest { queue: "web".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(listed.jobs.len(), 1);
    let canceled = client
        .cancel_job(pb::CancelJobRequest { queue: "web".into(), id: pushed.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(canceled.state(), JobState::Canceled);
    // Errors keep their code and message through gRPC-web's trailers.
    let err = client.retry_job(pb::RetryJobRequest { queue: "web".into(), id: pushed.id }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
});

each_storage!(cors_preflight_allows_other_origins_and_exposes_grpc_trailers, |storage| async move {
    let server = server(storage).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let request = http::Request::builder()
        .method("OPTIONS")
        .uri(format!("{}/chirpy.v1.JobService/PushJob", server.url()))
        .header("origin", "http://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web,x-user-agent")
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "http://app.example.com");
    let request = http::Request::builder()
        .method("GET")
        .uri(format!("{}/healthz", server.url()))
        .header("origin", "http://app.example.com")
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let exposed = response.headers()["access-control-expose-headers"].to_str().unwrap().to_owned();
    for header in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(header), "{exposed}");
    }
});

/// A plain HTTP/1.1 GET: status and body.
async fn reqwest_get(url: &str) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
