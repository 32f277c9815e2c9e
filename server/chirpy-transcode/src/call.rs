//! Calls an RPC in process, through the server's own gRPC service.
//!
//! The request message is already encoded; tonic's client frames it, runs it
//! through the service given to [`Transcoder::new`](crate::Transcoder::new)
//! (the same layers, interceptors and status handling as a gRPC call from
//! the network, without a socket) and unframes the answer. The bytes pass
//! through [`RawCodec`] untouched; JSON is `json.rs`'s job.

use bytes::{Buf as _, BufMut as _, Bytes};
use http::{HeaderMap, Uri, uri::PathAndQuery};
use tonic::{
    Status,
    body::Body,
    client::Grpc,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    metadata::MetadataMap,
};
use tower::util::BoxCloneSyncService;

/// The gRPC service the transcoder calls, type-erased.
///
/// Its error is a [`Status`] rather than a boxed `dyn Error`: with a boxed
/// error the `handle` future fails rustc's `Send` check ("implementation of
/// `From` is not general enough"), and axum needs it `Send`.
pub(crate) type GrpcService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Status>;

/// Sends `message` (an encoded request) to `path` and returns the encoded
/// response, or the status the service answered.
pub(crate) async fn unary(
    service: GrpcService,
    path: PathAndQuery,
    message: Bytes,
    metadata: MetadataMap,
) -> Result<Bytes, Status> {
    // Only the scheme and authority of the origin are used; no socket is opened.
    let origin = Uri::from_static("http://in-process");
    // The response is already in memory; tonic's default 4 MiB cap on
    // decoding would only turn a large answer into an error.
    let mut grpc = Grpc::with_origin(service, origin).max_decoding_message_size(usize::MAX);
    grpc.ready().await.map_err(|e| Status::unavailable(format!("the gRPC service is not ready: {e}")))?;
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = metadata;
    grpc.unary(request, path, RawCodec).await.map(tonic::Response::into_inner)
}

/// The HTTP headers that become gRPC metadata: `authorization` and `x-*`.
pub(crate) fn forwarded_metadata(headers: &HeaderMap) -> MetadataMap {
    let mut forwarded = HeaderMap::new();
    for (name, value) in headers {
        let name_str = name.as_str();
        if name_str == "authorization" || name_str.starts_with("x-") {
            forwarded.append(name.clone(), value.clone());
        }
    }
    MetadataMap::from_headers(forwarded)
}

/// A codec that passes encoded messages through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
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
