//! gRPC status codes as HTTP statuses, and the one error writer.
//!
//! Every error the transcoder answers — from the service, or from routing
//! and decoding before the service is called — is a `google.rpc.Status` JSON
//! body, `{"code": 5, "message": "...", "details": [...]}`, written by
//! [`ErrorReply::into_response`]. The HTTP status comes from
//! [`http_status`], grpc-gateway's `HTTPStatusFromCode` (runtime/errors.go),
//! except where a routing error needs a more precise one (404, 405, 413, 415).

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use prost_reflect::DescriptorPool;
use serde_json::{Value as Json, json};
use tonic::Code;

use crate::json::any_to_json;

/// The HTTP status grpc-gateway answers for a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        // 499 "Client Closed Request" (nginx); not a registered status, but
        // it is what grpc-gateway answers, so clients may rely on it.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        // A quota or rate limit: "try again later", hence 429 and not 413
        // or 507.
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // Not 412 Precondition Failed: that one is about HTTP conditional
        // headers (If-Match), which the client did not send.
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        // A concurrency conflict (a lost race), like ALREADY_EXISTS.
        Code::Aborted => StatusCode::CONFLICT,
        // Not 416 Range Not Satisfiable: that one is about the Range header.
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        // The method exists in the proto but the server does not implement
        // it; 501 is "not implemented", not a client mistake.
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error answer: a `google.rpc.Status` body with an HTTP status.
#[derive(Debug, Clone)]
pub(crate) struct ErrorReply {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    /// Each detail, already rendered as proto3 JSON (an `Any`).
    pub details: Vec<Json>,
    /// The `Allow` header of a 405.
    pub allow: Option<String>,
}

impl ErrorReply {
    /// An error whose HTTP status follows the table.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { status: http_status(code), code, message: message.into(), details: Vec::new(), allow: None }
    }

    /// `INVALID_ARGUMENT` (400): the request could not be mapped.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// 404 with `NOT_FOUND`: no route has this path.
    pub fn not_found(method: &http::Method, path: &str) -> Self {
        Self::new(Code::NotFound, format!("no route for {method} {path}"))
    }

    /// 405 with `UNIMPLEMENTED`, as grpc-gateway answers, and `Allow`.
    pub fn method_not_allowed(method: &http::Method, allowed: &[http::Method]) -> Self {
        let allow: Vec<&str> = allowed.iter().map(http::Method::as_str).collect();
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            allow: Some(allow.join(", ")),
            ..Self::new(Code::Unimplemented, format!("method {method} is not allowed here; use {}", allow.join(" or ")))
        }
    }

    /// 413 with `RESOURCE_EXHAUSTED`: the body is over the limit. The code
    /// is the one a gRPC client gets for an over-size message; the HTTP
    /// status is 413 and not the table's 429, because retrying will not help.
    pub fn too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..Self::new(Code::ResourceExhausted, format!("the request body is larger than {limit} bytes"))
        }
    }

    /// 415 with `INVALID_ARGUMENT`: the body is not JSON.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ..Self::invalid(format!("unsupported content type {content_type:?}; send Content-Type: application/json"))
        }
    }

    /// The error a service answered, with `grpc-status-details-bin` decoded
    /// when present (its details rendered with the types in `pool`).
    pub fn from_grpc(status: &tonic::Status, pool: &DescriptorPool) -> Self {
        let mut reply = Self::new(status.code(), status.message());
        if !status.details().is_empty() {
            match <RpcStatus as prost::Message>::decode(status.details()) {
                Ok(decoded) => {
                    reply.details =
                        decoded.details.iter().map(|any| any_to_json(pool, &any.type_url, &any.value)).collect();
                }
                Err(err) => {
                    tracing::warn!(cause = %err, "grpc-status-details-bin is not a google.rpc.Status");
                }
            }
        }
        reply
    }

    /// The HTTP response: the Status JSON with `content-type: application/json`.
    pub fn into_response(self) -> http::Response<Body> {
        let body = json!({
            "code": self.code as i32,
            "message": self.message,
            "details": self.details,
        });
        let mut response = json_response(self.status, &body);
        if let Some(allow) = self.allow
            && let Ok(value) = HeaderValue::from_str(&allow)
        {
            response.headers_mut().insert(header::ALLOW, value);
        }
        response
    }
}

/// A JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, body: &Json) -> http::Response<Body> {
    // Serializing a `serde_json::Value` to a Vec cannot fail: its map keys
    // are strings and it holds no non-finite floats.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = http::Response::new(Body::from(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `google.rpc.Status` as prost sees it, to read `grpc-status-details-bin`
/// whether or not google/rpc/status.proto is in the pool.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_like_grpc_gateway() {
        let table = [
            (Code::Ok, 200),
            (Code::Cancelled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, http) in table {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[tokio::test]
    async fn writes_a_status_body_and_allow() {
        use http_body_util::BodyExt as _;
        let reply = ErrorReply::method_not_allowed(&http::Method::PUT, &[http::Method::GET, http::Method::POST]);
        let response = reply.into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, POST");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.expect("body").to_bytes();
        let json: Json = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["code"], 12);
        assert_eq!(json["details"], json!([]));
        assert!(json["message"].as_str().expect("message").contains("GET or POST"));
    }

    #[test]
    fn too_large_and_unsupported_media_type_keep_their_http_status() {
        assert_eq!(ErrorReply::too_large(1).status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(ErrorReply::too_large(1).code, Code::ResourceExhausted);
        let reply = ErrorReply::unsupported_media_type("text/plain");
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(reply.code, Code::InvalidArgument);
    }
}
