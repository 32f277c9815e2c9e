//! The Rust client of [Chirpy](https://github.com/apalis-dev/chirpy), a
//! standalone job server on Apalis.
//!
//! - [`Client`] pushes and manages jobs: push, batch push, get, list, cancel,
//!   retry, queues, workers.
//! - [`ChirpyBackend`] is an Apalis [`Backend`](apalis_core::backend::Backend)
//!   for a remote Chirpy: hand it to `WorkerBuilder` and a normal Apalis
//!   worker, with its middleware (retry, timeout, concurrency, tracing), runs
//!   the jobs of a Chirpy queue.
//!
//! ```no_run
//! use apalis::prelude::*;
//! use chirpy_client::ChirpyBackend;
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Email { to: String }
//!
//! async fn send_email(email: Email) -> Result<(), BoxDynError> {
//!     // handler logic
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), BoxDynError> {
//!     let backend = ChirpyBackend::connect("http://chirpy.internal:7000")
//!         .queue("email")
//!         .await?;
//!
//!     WorkerBuilder::new("email-worker")
//!         .backend(backend)
//!         .enable_tracing()
//!         .build(send_email)
//!         .run()
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! Everything goes over gRPC (`chirpy.v1.JobService` and
//! `chirpy.v1.WorkerService`); [`proto`] re-exports the generated messages.
#![forbid(unsafe_code)]

mod backend;
mod client;
mod error;

pub use backend::{ChirpyBackend, Config, Connect, ConnectQueue};
pub use client::{Client, PushOptions, Pushed};
pub use error::Error;

/// The generated `chirpy.v1` messages and gRPC clients.
pub mod proto {
    pub use chirpy_proto::v1::*;
}
