//! Chirpy's domain model: what a job is, the names and limits that make a push
//! valid, the job state machine as clients see it, and the one error type.
//!
//! # Layout
//!
//! - [`job`]: [`Job`], its [`JobId`] and [`JobState`], and [`NewJob`], a
//!   validated push.
//! - [`queue`]: [`QueueName`] and the per-state counts of a queue.
//! - [`lease`]: fenced leases, and the outcomes workers report.
//! - [`worker`]: worker ids, and what is known of a worker.
//! - [`limits`]: every limit a request is checked against, in one place.
//! - [`page`]: page sizes and opaque page tokens for list calls.
//! - [`error`]: [`Error`], which the server maps to gRPC codes.
//!
//! This crate knows nothing of tonic, HTTP or the storage crates: the server
//! converts protobuf messages into these types, and the storage layer turns
//! them into rows.
#![forbid(unsafe_code)]

pub mod error;
pub mod job;
pub mod lease;
pub mod limits;
pub mod page;
pub mod queue;
pub mod worker;

pub use error::{Error, Result};
pub use job::{Job, JobId, JobState, NewJob, Payload};
pub use limits::Limits;
pub use page::{Page, PageRequest};
pub use queue::{QueueName, QueueStats};
pub use worker::{WorkerId, WorkerInfo};
