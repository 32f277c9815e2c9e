//! `chirpy`: a standalone job server on Apalis.
//!
//! # Layout
//!
//! - `config`: settings from flags and environment variables.
//! - `app`: the one listener and what it routes where.
//! - `job_service` and `worker_service`: the gRPC services, one module per
//!   RPC; `reaper` puts jobs whose lease expired back to run.
//! - `convert` and `status`: protobuf ↔ domain types, errors → gRPC codes.
//! - `health` and `shutdown`: readiness and graceful shutdown.
//! - `metrics`: Prometheus metrics of jobs, queues and requests.
//! - `dashboard`: apalis-board's UI and API.
//!
//! The job model lives in `chirpy-core`, storage in `chirpy-storage`; this
//! crate is wiring.
#![forbid(unsafe_code)]

mod app;
mod config;
mod convert;
mod dashboard;
mod health;
mod job_service;
mod metrics;
mod reaper;
mod shutdown;
mod status;
mod worker_service;

use std::{
    net::SocketAddr,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

use apalis_board_api::sse::{TracingBroadcaster, TracingSubscriber};

use chirpy_core::job::RetryPolicy;

use chirpy_storage::{OpenError, StoreOptions, redact};
use config::{Config, ConfigError, LogFormat};
use tracing_subscriber::EnvFilter;

/// Exit status for a bad setting (sysexits.h EX_USAGE).
const EX_USAGE: u8 = 64;
/// Exit status when a needed service is unavailable (EX_UNAVAILABLE).
const EX_UNAVAILABLE: u8 = 69;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(ConfigError::Display(help)) => {
            let _ = help.print();
            return ExitCode::SUCCESS;
        }
        Err(ConfigError::Invalid(line)) => return fail(EX_USAGE, &line),
    };
    let broadcaster = match init_logging(&config) {
        Ok(broadcaster) => broadcaster,
        Err(line) => return fail(EX_USAGE, &line),
    };
    match run(config, broadcaster).await {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, line)) => fail(code, &line),
    }
}

/// Prints one line naming what is wrong and returns the exit status.
fn fail(code: u8, line: &str) -> ExitCode {
    eprintln!("chirpy: {line}");
    ExitCode::from(code)
}

/// Logs go to stdout as text or JSON lines, filtered by `CHIRPY_LOG`; with
/// the dashboard on, the same events also feed its log page.
fn init_logging(config: &Config) -> Result<Arc<Mutex<TracingBroadcaster>>, String> {
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
    let filter = EnvFilter::try_new(&config.log).map_err(|e| format!("CHIRPY_LOG (--log): {e}"))?;
    let stdout = match config.log_format {
        LogFormat::Text => {
            tracing_subscriber::fmt::layer().with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())).boxed()
        }
        LogFormat::Json => tracing_subscriber::fmt::layer().json().flatten_event(true).boxed(),
    };
    let broadcaster = TracingBroadcaster::create();
    let dashboard = config.ui.then(|| TracingSubscriber::new(&broadcaster).layer());
    tracing_subscriber::registry().with(filter).with(stdout).with(dashboard).init();
    Ok(broadcaster)
}

async fn run(config: Config, broadcaster: Arc<Mutex<TracingBroadcaster>>) -> Result<(), (u8, String)> {
    if let Err(err) =
        RetryPolicy::parse(Some(config.retry_initial_backoff), Some(config.retry_max_backoff), RetryPolicy::default())
    {
        return Err((EX_USAGE, format!("CHIRPY_RETRY_INITIAL_BACKOFF / CHIRPY_RETRY_MAX_BACKOFF: {err}")));
    }
    if config.lease_ttl < Duration::from_secs(1) {
        return Err((EX_USAGE, "CHIRPY_LEASE_TTL (--lease-ttl): must be at least 1s".into()));
    }
    let options = StoreOptions {
        lease_ttl: config.lease_ttl,
        connect_timeout: config.connect_timeout,
        default_retry: config.default_retry(),
    };
    // SIGTERM is watched from the start: as PID 1 in a container nothing else
    // would stop a server still waiting for its database.
    let signal = shutdown::signal();
    tokio::pin!(signal);
    let opened = tokio::select! {
        opened = chirpy_storage::open(&config.database_url, options) => opened,
        () = &mut signal => {
            tracing::info!("stopped before the storage was ready");
            return Ok(());
        }
    };
    let store = opened.map_err(|err| {
        let code = match err {
            OpenError::BadUrl(_) => EX_USAGE,
            OpenError::Unreachable { .. } | OpenError::Migrate(_) => EX_UNAVAILABLE,
        };
        (code, format!("DATABASE_URL ({}): {err}", redact(&config.database_url)))
    })?;

    let addr = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| (EX_UNAVAILABLE, format!("CHIRPY_PORT (--port): cannot listen on {addr}: {err}")))?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(
        address = %local,
        storage = store.kind(),
        version = env!("CARGO_PKG_VERSION"),
        "chirpy listening on {local} (gRPC, gRPC-web, HTTP/JSON)"
    );

    let (trigger, shutdown) = shutdown::channel();
    let grace = config.shutdown_grace;
    let server = app::serve(&config, store, listener, shutdown, broadcaster);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.map_err(|e| (1, format!("server failed: {e}"))),
        () = &mut signal => {}
    }
    tracing::info!(grace = ?grace, "shutting down: draining in-flight requests");
    trigger.fire();
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result.map_err(|e| (1, format!("server failed: {e}")))?,
        Err(_) => tracing::warn!("grace period over; closing the remaining connections"),
    }
    tracing::info!("stopped");
    Ok(())
}
