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

/// Keeps the gRPC health status in step with the storage until shutdown,
/// then reports NOT_SERVING so that load balancers drain this instance.
pub async fn watch(store: Arc<dyn JobStore>, reporter: HealthReporter, mut shutdown: Shutdown) {
    let mut last = None;
    loop {
        let status =
            if storage_answers(store.as_ref()).await { ServingStatus::Serving } else { ServingStatus::NotServing };
        if last != Some(status) {
            if last.is_some() {
                tracing::warn!(storage = store.kind(), ?status, "storage health changed");
            }
            set(&reporter, status).await;
            last = Some(status);
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.wait() => break,
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
