//! Puts jobs whose worker stopped heartbeating back to run.
//!
//! Every instance runs one; they may overlap harmlessly (the storage skips
//! rows another instance is reaping).

use std::{sync::Arc, time::Duration};

use chirpy_storage::JobStore;

use crate::{metrics, shutdown::Shutdown};

/// How often expired leases are looked for: a quarter of the lease TTL,
/// between half a second and ten seconds, so a crashed worker's jobs run
/// again within about 1.25 TTLs.
pub fn interval(lease_ttl: Duration) -> Duration {
    (lease_ttl / 4).clamp(Duration::from_millis(500), Duration::from_secs(10))
}

/// Reaps until shutdown.
pub async fn run(store: Arc<dyn JobStore>, lease_ttl: Duration, mut shutdown: Shutdown) {
    let mut ticks = tokio::time::interval(interval(lease_ttl));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.wait() => return,
        }
        match store.reap_expired_leases().await {
            Ok(queues) if queues.is_empty() => {}
            Ok(queues) => {
                tracing::info!(jobs = queues.len(), "leases expired; jobs back to run");
                metrics::expired(&queues);
            }
            Err(err) => tracing::warn!(cause = %err, "cannot reap expired leases"),
        }
    }
}
