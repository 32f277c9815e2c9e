//! Generated code for Chirpy's `chirpy.v1` API, and its descriptor set.
//!
//! Everything here comes from `proto/` at build time (see `build.rs`); nothing
//! is written by hand except this file and [`json`], the payload conversion
//! every user of the messages needs. The server, the transcoder and
//! `chirpy-client` all depend on it, so the proto stays the single source of
//! truth.
#![forbid(unsafe_code)]

pub mod json;

/// The `chirpy` packages. Modules mirror protobuf packages because the
/// generated code refers across them by relative paths.
pub mod chirpy {
    /// The `chirpy.v1` package: messages, the `JobService` and
    /// `WorkerService` clients and servers.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("chirpy.v1");
    }
}

/// The `google` packages the API imports.
pub mod google {
    /// The `google.rpc` error model (`Status` and the standard error details).
    pub mod rpc {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("google.rpc");
    }

    /// The `google.api` annotations (`HttpRule` and friends) as prost types.
    pub mod api {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("google.api");
    }
}

pub use chirpy::v1;
pub use google::{api, rpc};

/// The encoded `FileDescriptorSet` of the API with its imports and every
/// custom option kept. Register it with reflection, and build the HTTP/JSON
/// routes from it.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/chirpy_descriptor.binpb"));
