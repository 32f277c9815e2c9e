//! `chirpy-bench`: Chirpy measured against embedded Apalis on the same
//! storage, in the same run, on the same machine.
//!
//! Every scenario runs twice per storage: through Chirpy (a real `chirpy`
//! server process, `chirpy-client` producers and workers over gRPC) and
//! with Apalis embedded in this process (its own storage on a fresh
//! database of the same kind). Figures are reported with their ratio
//! Chirpy / embedded, because a ratio survives a noisy machine better than
//! an absolute number.
//!
//! # Layout
//!
//! - [`scenario`]: the scenarios (push, drain, steady latency, idle cost).
//! - `bed`: a fresh server and database per scenario, and Apalis beside it.
//! - `probe`: what handlers record (count, push-to-start latency).
//! - `process`: CPU time and peak memory of the server process.
//! - [`report`]: the JSON and Markdown results.
#![forbid(unsafe_code)]

mod bed;
mod probe;
mod process;
pub mod report;
pub mod scenario;

use std::time::Duration;

use chirpy_testing::Storage;

pub use report::{Report, Row};
pub use scenario::Group;

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Scale {
    /// Jobs pushed one by one over gRPC (and over HTTP/JSON).
    pub push_unary: usize,
    /// Jobs pushed in batches, for each batch size.
    pub push_batch: usize,
    /// Concurrent producers.
    pub producers: usize,
    /// Jobs pushed before workers start, then drained.
    pub drain: usize,
    /// How long a burn-down may take before its rate is taken on the jobs
    /// run so far (embedded apalis-sqlite drains slowly).
    pub drain_budget: Duration,
    /// Workers, each leasing `lease_batch` jobs and running `concurrency`.
    pub workers: usize,
    /// Handlers running at once per worker.
    pub concurrency: usize,
    /// Jobs per lease call (Chirpy) or fetch (Apalis).
    pub lease_batch: usize,
    /// Pushes per second in the latency scenario.
    pub rate: u32,
    /// Seconds the latency scenario pushes for.
    pub steady_secs: u64,
    /// Workers waiting on an empty queue in the idle scenario.
    pub idle_workers: usize,
    /// Seconds the idle scenario measures for.
    pub idle_secs: u64,
}

impl Scale {
    /// The published run.
    pub fn full() -> Self {
        Scale {
            push_unary: 20_000,
            push_batch: 100_000,
            producers: 16,
            drain: 100_000,
            drain_budget: Duration::from_secs(60),
            workers: 4,
            concurrency: 64,
            lease_batch: 100,
            rate: 1000,
            steady_secs: 10,
            idle_workers: 10,
            idle_secs: 30,
        }
    }

    /// A run with tiny counts, so the harness keeps working: part of the
    /// test suite.
    pub fn smoke() -> Self {
        Scale {
            push_unary: 100,
            push_batch: 1000,
            producers: 4,
            drain: 300,
            drain_budget: Duration::from_secs(60),
            workers: 2,
            concurrency: 8,
            lease_batch: 20,
            rate: 100,
            steady_secs: 1,
            idle_workers: 3,
            idle_secs: 2,
        }
    }
}

/// Runs the scenarios of `groups` on every storage in `storages`.
pub async fn run(storages: &[Storage], groups: &[Group], scale: &Scale) -> Report {
    let mut report = Report::new();
    for &storage in storages {
        for row in scenario::all(storage, scale, groups).await {
            eprintln!("{}", row.line());
            report.rows.push(row);
        }
    }
    report
}
