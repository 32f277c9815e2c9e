//! The Rust SDK's conformance runner (see `conformance/README.md`), and the
//! one shape every runner reports jobs in, which the driver shares.
#![forbid(unsafe_code)]

pub mod shape;
