//! Requests by protocol (gRPC, gRPC-web, HTTP/JSON), RPC and gRPC code, with
//! their latency: an axum middleware around the whole listener.
//!
//! gRPC and gRPC-web name the RPC in the path; HTTP/JSON requests are named
//! by the transcoder's [`RpcOutcome`] extension. Unary tonic errors are
//! "trailers-only" responses with `grpc-status` in the headers, so a
//! response without it succeeded. Anything else (`/healthz`, `/metrics`,
//! unknown paths) counts as RPC `other`, so random paths cannot create
//! series.

use std::time::Instant;

use axum::{extract::Request, middleware::Next, response::Response};
use chirpy_transcode::RpcOutcome;
use metrics::{counter, histogram};
use tonic::Code;

pub(super) fn describe() {
    metrics::describe_counter!("chirpy_requests_total", "Requests by protocol, RPC and gRPC code");
    metrics::describe_histogram!("chirpy_request_duration_seconds", "Request latency until the response headers");
}

/// The services whose RPC names are labels.
const SERVICES: [&str; 4] =
    ["chirpy.v1.JobService/", "chirpy.v1.WorkerService/", "grpc.health.v1.Health/", "grpc.reflection."];

/// Records one request.
pub async fn track(request: Request, next: Next) -> Response {
    let protocol = match request.headers().get("content-type").and_then(|v| v.to_str().ok()) {
        Some(t) if t.starts_with("application/grpc-web") => "grpc-web",
        Some(t) if t.starts_with("application/grpc") => "grpc",
        _ => "http",
    };
    let path = request.uri().path().trim_start_matches('/').to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let (rpc, code) = match protocol {
        "http" => match response.extensions().get::<RpcOutcome>() {
            Some(outcome) => (outcome.rpc.clone(), code_name(outcome.code)),
            None => ("other".to_owned(), response.status().as_str().to_owned()),
        },
        _ => {
            let rpc =
                if SERVICES.iter().any(|s| path.starts_with(s)) { path.replace('/', ".") } else { "other".into() };
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map_or(Code::Ok, Code::from_i32);
            (rpc, code_name(code))
        }
    };
    histogram!("chirpy_request_duration_seconds", "protocol" => protocol, "rpc" => rpc.clone())
        .record(started.elapsed().as_secs_f64());
    counter!("chirpy_requests_total", "protocol" => protocol, "rpc" => rpc, "code" => code).increment(1);
    response
}

/// A gRPC code as its canonical upper-case name (`NOT_FOUND`).
fn code_name(code: Code) -> String {
    let name = format!("{code:?}");
    let mut upper = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            upper.push('_');
        }
        upper.push(c.to_ascii_uppercase());
    }
    upper
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_their_canonical_names() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
        assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
    }
}
