//! HTTP/JSON to gRPC transcoding, driven by `google.api.http` annotations.
//!
//! A [`Transcoder`] reads an encoded `FileDescriptorSet`, turns every
//! `google.api.http` rule into a route, and answers HTTP requests by building
//! the request message from the path, the query string and the JSON body,
//! calling the RPC in process through the server's own gRPC service, and
//! writing the answer as proto3 JSON — grpc-gateway's behaviour, with no
//! handler written by hand: a new annotation is a new route.
//!
//! # Layout
//!
//! - `template.rs`: the path template grammar of `google/api/http.proto`.
//! - `rule.rs`: `HttpRule` annotations compiled into routes, checked once.
//! - `route.rs`: the route table and path matching.
//! - `request.rs`: path variables and query parameters into the request.
//! - `json.rs`: proto3 JSON in (lenient on unknown fields) and out (every
//!   field emitted).
//! - `call.rs`: the in-process gRPC call with a pass-through codec.
//! - `status.rs`: gRPC code to HTTP status, and the one error writer.
//! - `openapi.rs`: an OpenAPI 3.0.3 document for the routes.
//!
//! # What it leaves out
//!
//! Streaming methods are not routed. Response metadata is not copied to
//! `Grpc-Metadata-*` headers, and `grpc-timeout` is not derived from the
//! request. Map fields cannot be set from the query string. The listener,
//! CORS and gRPC-web belong to the server.
#![forbid(unsafe_code)]

mod call;
mod json;
mod openapi;
mod request;
mod route;
mod rule;
mod status;
mod template;

use std::{fmt, sync::Arc};

use axum::body::{Body, HttpBody};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tonic::Code;
use tower::{Service, ServiceExt as _};

use crate::{
    call::GrpcService,
    route::{BodyRule, Match, RouteTable},
    status::{ErrorReply, json_response},
};
pub use crate::{route::Route, status::http_status};

/// Settings of a [`Transcoder`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The largest request body accepted; a larger one is answered with 413.
    /// The default is 4 MiB.
    pub max_body_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { max_body_bytes: 4 * 1024 * 1024 }
    }
}

/// Why a [`Transcoder`] could not be built: the descriptors or an annotation
/// are wrong. Each names the RPC at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The bytes are not a valid encoded `FileDescriptorSet`.
    #[error("invalid file descriptor set: {0}")]
    Descriptor(#[from] prost_reflect::DescriptorError),
    /// A path template does not follow the `google/api/http.proto` grammar.
    #[error("{rpc}: invalid path template {template:?}: {reason}")]
    Template {
        /// The RPC's full name.
        rpc: String,
        /// The template as written.
        template: String,
        /// What is wrong, and where.
        reason: String,
    },
    /// A rule names a field that does not exist or cannot be used there.
    #[error("{rpc}: {reason}")]
    Rule {
        /// The RPC's full name.
        rpc: String,
        /// What is wrong.
        reason: String,
    },
    /// Two bindings have the same method and path.
    #[error("{method} {template} is bound twice, to {first} and to {second}")]
    Duplicate {
        /// The HTTP method.
        method: String,
        /// The second template as written.
        template: String,
        /// The RPC bound first.
        first: String,
        /// The RPC bound second.
        second: String,
    },
}

/// Which RPC an HTTP/JSON request was transcoded to, and how it ended: a
/// response extension set by [`Transcoder::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcOutcome {
    /// The RPC's full name, `chirpy.v1.JobService.PushJob`.
    pub rpc: String,
    /// Its gRPC code (`Ok` for a 200).
    pub code: Code,
}

/// Answers HTTP/JSON requests by calling the annotated RPCs in process.
///
/// Cheap to clone: everything is behind an [`Arc`].
///
/// # Examples
///
/// ```no_run
/// # async fn example(grpc: tonic::service::Routes, descriptors: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
/// use chirpy_transcode::{Options, Transcoder};
///
/// let rest = Transcoder::new(descriptors, grpc.clone(), Options::default())?;
/// for route in rest.routes() {
///     println!("{route}");
/// }
/// let app = grpc
///     .into_axum_router()
///     .fallback(move |req| async move { rest.handle(req).await });
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Transcoder {
    inner: Arc<Inner>,
}

struct Inner {
    pool: DescriptorPool,
    table: RouteTable,
    grpc: GrpcService,
    options: Options,
}

impl fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transcoder")
            .field("routes", &self.inner.table.iter().count())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Transcoder {
    /// Builds the routes of every `google.api.http` rule in
    /// `file_descriptor_set`, to be answered by calling `grpc` (usually the
    /// server's [`tonic::service::Routes`]).
    ///
    /// The set should include `google/rpc/status.proto` and
    /// `google/rpc/error_details.proto` so that error details are rendered.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when the set does not decode or an annotation is wrong.
    pub fn new<S, B>(file_descriptor_set: &[u8], grpc: S, options: Options) -> Result<Self, BuildError>
    where
        S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<tonic::codegen::StdError>,
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<tonic::codegen::StdError>,
    {
        let pool = DescriptorPool::decode(file_descriptor_set)?;
        let table = RouteTable::new(rule::compile(&pool)?);
        let grpc = GrpcService::new(
            grpc.map_response(|response| response.map(tonic::body::Body::new))
                .map_err(|err| tonic::Status::from_error(err.into())),
        );
        Ok(Self { inner: Arc::new(Inner { pool, table, grpc, options }) })
    }

    /// Answers one HTTP request. Use it as the axum router's fallback, after
    /// the gRPC routes.
    ///
    /// Every answer that is not a 200 is a `google.rpc.Status` JSON body; a
    /// gRPC request for a service the server does not have is answered in
    /// gRPC form with `UNIMPLEMENTED`.
    ///
    /// When a route matched, the response carries an [`RpcOutcome`]
    /// extension naming the RPC and its gRPC code, for metrics and logs.
    pub async fn handle(&self, request: http::Request<Body>) -> http::Response<Body> {
        let mut rpc = None;
        let (mut response, code) = match self.try_handle(request, &mut rpc).await {
            Ok(response) => (response, Code::Ok),
            Err(reply) => {
                if reply.status.is_server_error() {
                    tracing::warn!(code = ?reply.code, message = %reply.message, "http/json call failed");
                }
                let code = reply.code;
                (reply.into_response(), code)
            }
        };
        if let Some(rpc) = rpc {
            response.extensions_mut().insert(RpcOutcome { rpc, code });
        }
        response
    }

    /// Every route, in matching order, for logs and tests.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.inner.table.iter()
    }

    /// An OpenAPI 3.0.3 document describing every route.
    pub fn openapi(&self, title: &str, version: &str) -> serde_json::Value {
        openapi::document(&self.inner.pool, self.inner.table.iter(), title, version)
    }

    async fn try_handle(
        &self,
        request: http::Request<Body>,
        rpc: &mut Option<String>,
    ) -> Result<http::Response<Body>, ErrorReply> {
        let (parts, body) = request.into_parts();
        if is_grpc(&parts.headers) {
            let status = tonic::Status::unimplemented(format!("unknown method {}", parts.uri.path()));
            return Ok(status.into_http());
        }
        let path = parts.uri.path();
        let (route, captures) = match self.inner.table.find(&parts.method, path) {
            Match::Found(route, captures) => (route, captures),
            Match::MethodNotAllowed(allowed) => {
                return Err(ErrorReply::method_not_allowed(&parts.method, &allowed));
            }
            Match::BadPath(reason) => return Err(ErrorReply::invalid(reason)),
            Match::NotFound => return Err(ErrorReply::not_found(&parts.method, path)),
        };
        *rpc = Some(route.rpc().to_owned());
        let body = match route.body {
            // A body on a method that takes none is ignored, unread.
            BodyRule::None => Bytes::new(),
            BodyRule::Whole | BodyRule::Field(_) => {
                check_content_type(&parts.headers)?;
                read_body(body, &parts.headers, self.inner.options.max_body_bytes).await?
            }
        };
        let message = request::build(route, &captures, parts.uri.query(), &body)?;
        let metadata = call::forwarded_metadata(&parts.headers);
        let answer =
            call::unary(self.inner.grpc.clone(), route.grpc_path.clone(), message.encode_to_vec().into(), metadata)
                .await
                .map_err(|status| ErrorReply::from_grpc(&status, &self.inner.pool))?;
        respond(route, &answer)
    }
}

/// The 200 answer: the response message (or its `response_body` field).
fn respond(route: &Route, answer: &[u8]) -> Result<http::Response<Body>, ErrorReply> {
    let output = route.rpc.output();
    let message = DynamicMessage::decode(output.clone(), answer)
        .map_err(|e| ErrorReply::new(Code::Internal, format!("the answer is not a {}: {e}", output.full_name())))?;
    let mut json = json::encode(&message)
        .map_err(|e| ErrorReply::new(Code::Internal, format!("the answer cannot be written as JSON: {e}")))?;
    if let Some(field) = &route.response_body {
        json = json.get_mut(field.json_name()).map(serde_json::Value::take).unwrap_or_default();
    }
    Ok(json_response(StatusCode::OK, &json))
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/grpc"))
}

/// Accepts `application/json` and `application/*+json`, with or without a
/// UTF-8 charset, and a missing content type.
fn check_content_type(headers: &HeaderMap) -> Result<(), ErrorReply> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let Ok(text) = value.to_str() else {
        return Err(ErrorReply::unsupported_media_type("(not ASCII)"));
    };
    if text.trim().is_empty() {
        return Ok(());
    }
    let mut parts = text.split(';');
    let mime = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let is_json = mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"));
    let utf8 = parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let value = value.trim().trim_matches('"');
            value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    if is_json && utf8 { Ok(()) } else { Err(ErrorReply::unsupported_media_type(text)) }
}

/// Reads the body, at most `limit` bytes of it.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ErrorReply> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ErrorReply::too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(ErrorReply::too_large(limit)),
        Err(err) => Err(ErrorReply::invalid(format!("the request body could not be read: {err}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, value.parse().expect("header value"));
        headers
    }

    #[test]
    fn json_content_types_are_accepted() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/merge-patch+json",
            "",
        ] {
            assert!(check_content_type(&content_type(ok)).is_ok(), "{ok:?}");
        }
        assert!(check_content_type(&HeaderMap::new()).is_ok());
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin1",
            "text/json",
        ] {
            let reply = check_content_type(&content_type(bad)).expect_err(bad);
            assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad:?}");
            assert!(reply.message.contains("Content-Type: application/json"));
        }
    }
}
