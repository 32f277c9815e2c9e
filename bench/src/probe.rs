//! What the benchmark's handlers record: how many jobs ran, and how long
//! after its push each one started (the push time is in its ULID).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::SystemTime,
};

use hdrhistogram::Histogram;
use tokio::sync::Notify;
use ulid::Ulid;

/// Shared by the handlers of one measurement.
#[derive(Clone)]
pub struct Probe {
    inner: Arc<Inner>,
}

struct Inner {
    ran: AtomicUsize,
    target: usize,
    done: Notify,
    latency_us: Mutex<Histogram<u64>>,
}

impl Probe {
    /// A probe that signals once `target` jobs ran.
    pub fn new(target: usize) -> Self {
        // Up to an hour, three significant digits.
        let histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        Probe {
            inner: Arc::new(Inner {
                ran: AtomicUsize::new(0),
                target,
                done: Notify::new(),
                latency_us: Mutex::new(histogram),
            }),
        }
    }

    /// Records the start of job `id` (a ULID string).
    pub fn started(&self, id: &str) {
        if let Ok(ulid) = Ulid::from_string(id) {
            let waited = SystemTime::now().duration_since(ulid.datetime()).unwrap_or_default();
            if let Ok(mut histogram) = self.inner.latency_us.lock() {
                let _ = histogram.record(waited.as_micros().clamp(1, 3_600_000_000) as u64);
            }
        }
        if self.inner.ran.fetch_add(1, Ordering::AcqRel) + 1 >= self.inner.target {
            self.inner.done.notify_waiters();
            self.inner.done.notify_one();
        }
    }

    /// How many jobs ran.
    pub fn ran(&self) -> usize {
        self.inner.ran.load(Ordering::Acquire)
    }

    /// Resolves once the target is reached.
    pub async fn done(&self) {
        while self.ran() < self.inner.target {
            let notified = self.inner.done.notified();
            if self.ran() >= self.inner.target {
                return;
            }
            notified.await;
        }
    }

    /// The push-to-start latency at `quantile`, in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.inner.latency_us.lock().map(|h| h.value_at_quantile(quantile) as f64 / 1000.0).unwrap_or(f64::NAN)
    }
}
