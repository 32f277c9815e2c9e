//! Compiles `proto/chirpy/v1` with protox (a pure-Rust protoc) and generates
//! the prost messages and tonic stubs, so that no system `protoc` is needed.
//!
//! Two outputs: the Rust code, and the encoded descriptor set. The descriptor
//! set is encoded by protox itself because it keeps custom options such as
//! `google.api.http`, which prost's own types would drop; reflection and the
//! HTTP/JSON transcoder read them from it.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../..");
    let proto = root.join("proto");
    let googleapis = root.join("third_party/googleapis");
    println!("cargo:rerun-if-changed={}", proto.display());
    println!("cargo:rerun-if-changed={}", googleapis.display());

    let mut compiler = protox::Compiler::new([&proto, &googleapis])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files([
        "chirpy/v1/job_service.proto",
        "chirpy/v1/worker_service.proto",
        // Error details travel in grpc-status-details-bin; the transcoder
        // renders them as JSON, so their types must be in the descriptor set.
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
    ])?;

    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out.join("chirpy_descriptor.binpb"), compiler.encode_file_descriptor_set())?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
