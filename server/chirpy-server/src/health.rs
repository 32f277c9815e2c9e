//! Readiness: `grpc.health.v1.Health` and `GET /healthz` both say SERVING only
//! while the storage answers.

use std::{sync::Arc, time::Duration};

use axum::{extract::State, http::StatusCode};
use chirpy_storage::JobStore;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::shutdown::Shutdown;

/// How often the gRPC health status is refreshed from the storage.
const INTERVAL: Duration = Duration::from_secs(5);
/// How long a storage ping may take before it counts as a failure.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The services whose gRPC health follows the storage: the server as a
/// whole (`""`) and each API service.
const SERVICES: [&str; 3] = ["", "chirpy.v1.JobService", "chirpy.v1.WorkerService"];

/// Whether the storage answers within [`PING_TIMEOUT`].
pub async fn storage_answers(store: &dyn JobStore) -> bool {
    matches!(tokio::time::timeout(PING_TIMEOUT, store.ping()).await, Ok(Ok(())))
}

/// Sets the gRPC health status from the storage now, before the server
/// accepts its first call, then keeps it in step in the background.
pub async fn start(store: Arc<dyn JobStore>, reporter: HealthReporter, shutdown: Shutdown) {
    let status = status_of(store.as_ref()).await;
    set(&reporter, status).await;
    tokio::spawn(watch(store, reporter, shutdown, status));
}

async fn status_of(store: &dyn JobStore) -> ServingStatus {
    if storage_answers(store).await { ServingStatus::Serving } else { ServingStatus::NotServing }
}

/// Keeps the gRPC health status in step with the storage until shutdown,
/// then reports NOT_SERVING so that load balancers drain this instance.
async fn watch(store: Arc<dyn JobStore>, reporter: HealthReporter, mut shutdown: Shutdown, first: ServingStatus) {
    let mut last = first;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.wait() => break,
        }
        let status = status_of(store.as_ref()).await;
        if last != status {
            tracing::warn!(storage = store.kind(), ?status, "storage health changed");
            set(&reporter, status).await;
            last = status;
        }
    }
    set(&reporter, ServingStatus::NotServing).await;
}

async fn set(reporter: &HealthReporter, status: ServingStatus) {
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// `GET /healthz`: 200 when the storage answers now, 503 otherwise.
pub async fn healthz(State(store): State<Arc<dyn JobStore>>) -> (StatusCode, &'static str) {
    if storage_answers(store.as_ref()).await {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n")
    }
}
