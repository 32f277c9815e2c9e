//! Shared by the crate's tests: compiles the test proto with protox, serves
//! `transcode.test.v1.EchoService` in process with tonic's server machinery
//! and a pass-through codec, and sends HTTP requests to a `Transcoder`.
#![allow(dead_code)]

use std::{
    convert::Infallible,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf as _, BufMut as _, Bytes};
use chirpy_transcode::{Options, Transcoder};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, Value};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver};
use serde_json::json;
use tonic::{
    Code, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    server::NamedService,
    service::Routes,
};

/// The test proto's name under `tests/proto`.
pub const ECHO_PROTO: &str = "transcode/test/v1/echo.proto";

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn googleapis() -> PathBuf {
    crate_dir().join("../../third_party/googleapis")
}

/// The test proto's source, to be edited by tests that add annotations.
pub fn echo_source() -> String {
    std::fs::read_to_string(crate_dir().join("tests/proto").join(ECHO_PROTO)).expect("read echo.proto")
}

/// Serves one file from memory, ahead of the include paths.
struct Overlay {
    name: String,
    source: String,
}

impl FileResolver for Overlay {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == self.name { File::from_source(name, &self.source) } else { Err(protox::Error::file_not_found(name)) }
    }
}

/// Compiles `file` (found under `includes`, or given as `overlay` source)
/// with the google/rpc error protos, keeping options and comments.
pub fn compile(includes: &[&Path], file: &str, overlay: Option<&str>) -> Result<Vec<u8>, protox::Error> {
    let mut resolver = ChainFileResolver::new();
    if let Some(source) = overlay {
        resolver.add(Overlay { name: file.to_owned(), source: source.to_owned() });
    }
    for include in includes {
        resolver.add(IncludeFileResolver::new(include.to_path_buf()));
    }
    resolver.add(IncludeFileResolver::new(googleapis()));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files([file, "google/rpc/status.proto", "google/rpc/error_details.proto"])?;
    Ok(compiler.encode_file_descriptor_set())
}

/// The echo proto's descriptor set, from `source` (the file as it is when
/// `None`).
pub fn echo_descriptors(source: Option<&str>) -> Vec<u8> {
    let proto = crate_dir().join("tests/proto");
    compile(&[proto.as_path()], ECHO_PROTO, source).expect("compile echo.proto")
}

/// A transcoder over the echo service, with a 1 KiB body limit.
pub fn echo_transcoder(source: Option<&str>) -> Transcoder {
    let descriptors = echo_descriptors(source);
    let pool = DescriptorPool::decode(descriptors.as_slice()).expect("pool");
    let routes = Routes::new(EchoServer { pool });
    Transcoder::new(&descriptors, routes, Options { max_body_bytes: 1024 }).expect("transcoder")
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
}

/// Sends one request through `transcoder.handle`.
pub async fn send(transcoder: &Transcoder, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(axum::body::Body::from(body.to_owned())).expect("request");
    let response = transcoder.handle(request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method} {uri}: not JSON ({e}): {bytes:?}"))
    };
    Reply { status, headers, json }
}

/// `transcode.test.v1.EchoService`, dynamic: `Fail` answers the status its
/// request names; every other method answers an `EchoResponse` holding the
/// request and the forwarded metadata.
#[derive(Clone)]
pub struct EchoServer {
    pub pool: DescriptorPool,
}

impl NamedService for EchoServer {
    const NAME: &'static str = "transcode.test.v1.EchoService";
}

impl tower::Service<Request<tonic::body::Body>> for EchoServer {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let pool = self.pool.clone();
        let method = request.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
        Box::pin(async move {
            let handler = tower::service_fn(move |request: tonic::Request<Bytes>| {
                let answer = answer(&pool, &method, request);
                async move { answer }
            });
            Ok(tonic::server::Grpc::new(RawCodec).unary(handler, request).await)
        })
    }
}

fn answer(
    pool: &DescriptorPool,
    method: &str,
    request: tonic::Request<Bytes>,
) -> Result<tonic::Response<Bytes>, Status> {
    let message = |name: &str| pool.get_message_by_name(name).expect(name);
    if method == "Fail" {
        let fail = DynamicMessage::decode(message("transcode.test.v1.FailRequest"), request.into_inner())
            .expect("FailRequest");
        let code = fail.get_field_by_name("code").and_then(|v| v.as_i32()).unwrap_or(2);
        return Err(failure(pool, Code::from_i32(code)));
    }
    let mut metadata = std::collections::HashMap::new();
    for (name, value) in request.metadata().clone().into_headers().iter() {
        if name == "authorization" || name.as_str().starts_with("x-") {
            let value = value.to_str().unwrap_or_default().to_owned();
            metadata.insert(MapKey::String(name.as_str().to_owned()), Value::String(value));
        }
    }
    let thing = DynamicMessage::decode(message("transcode.test.v1.Thing"), request.into_inner()).expect("Thing");
    let mut response = DynamicMessage::new(message("transcode.test.v1.EchoResponse"));
    response.set_field_by_name("rpc", Value::String(method.to_owned()));
    response.set_field_by_name("thing", Value::Message(thing));
    response.set_field_by_name("metadata", Value::Map(metadata));
    Ok(tonic::Response::new(response.encode_to_vec().into()))
}

/// A status with a `google.rpc.ResourceInfo` detail, as a real service sends.
fn failure(pool: &DescriptorPool, code: Code) -> Status {
    let message = |name: &str| pool.get_message_by_name(name).expect(name);
    let mut info = DynamicMessage::new(message("google.rpc.ResourceInfo"));
    info.set_field_by_name("resource_type", Value::String("thing".into()));
    info.set_field_by_name("resource_name", Value::String("queues/q/things/x".into()));
    let any = prost_types::Any {
        type_url: "type.googleapis.com/google.rpc.ResourceInfo".into(),
        value: info.encode_to_vec(),
    };
    let mut status = DynamicMessage::new(message("google.rpc.Status"));
    status.set_field_by_name("code", Value::I32(code as i32));
    status.set_field_by_name("message", Value::String("thing x was not found".into()));
    let mut detail = DynamicMessage::new(message("google.protobuf.Any"));
    detail.transcode_from(&any).expect("Any");
    status.set_field_by_name("details", Value::List(vec![Value::Message(detail)]));
    Status::with_details(code, "thing x was not found", status.encode_to_vec().into())
}

/// Passes encoded messages through unchanged.
#[derive(Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Asserts a 400 INVALID_ARGUMENT whose message starts with `field:`.
pub fn assert_invalid(r: &Reply, field: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.json["code"], 3, "{}", r.json);
    assert_eq!(r.json["details"], json!([]));
    let message = r.json["message"].as_str().expect("message");
    assert!(message.starts_with(&format!("{field}:")), "{message:?} should name {field}");
}
