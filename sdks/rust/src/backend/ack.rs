//! Reporting outcomes: [`AckLayer`] sees each task finish and queues its
//! outcome; a task of its own sends the queue to the server in batches
//! (`BatchCompleteJobs`, `BatchFailJobs`), fenced by each job's lease.
//!
//! [`Acks`] also keeps the leases this backend holds: the heartbeat renews
//! them, and a job the server says was canceled (or lost) is stopped here:
//! its task is dropped at once, or never started, and its outcome is not
//! reported. Apalis's own task cancellation only takes effect when the task
//! is next polled, which for a task sleeping on I/O may be much later.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use apalis_core::{
    error::{AbortError, BoxDynError, RetryAfterError},
    layers::{Layer, Service},
    task::Task,
};
use chirpy_proto::{
    json,
    v1::{self as pb, worker_service_client::WorkerServiceClient},
};
use futures::{future::BoxFuture, task::AtomicWaker};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tonic::transport::Channel;

/// Most outcomes in one batch call.
const MAX_BATCH: usize = 1000;

/// The leases a backend holds and the queue of outcomes to report.
#[derive(Clone)]
pub(crate) struct Acks {
    sender: mpsc::UnboundedSender<Ack>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Leased jobs whose outcome is not reported yet: id → (queue, lease id).
    leases: Mutex<HashMap<String, (String, String)>>,
    /// Jobs to stop: a started one's signal, or `None` for one not started.
    stops: Mutex<HashMap<String, Option<Arc<Notify>>>>,
    /// Outcomes queued or being sent.
    pending: AtomicUsize,
    /// The worker, parked after an empty fetch.
    worker: AtomicWaker,
    /// A shutdown waiting for the outcomes to be sent.
    flush: AtomicWaker,
}

/// One outcome to report.
struct Ack {
    queue: String,
    id: String,
    lease_id: String,
    outcome: Outcome,
}

/// What became of an attempt.
enum Outcome {
    Succeeded(serde_json::Value),
    Failed { error: String, non_retryable: bool, retry_after: Option<Duration> },
}

impl Acks {
    /// Starts the reporting task on the current Tokio runtime.
    pub(crate) fn start(client: WorkerServiceClient<Channel>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        tokio::spawn(report(client, receiver, shared.clone()));
        Acks { sender, shared }
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, String)>> {
        self.shared.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a lease just taken.
    pub(crate) fn hold(&self, id: &str, queue: &str, lease_id: String) {
        self.leases().insert(id.to_owned(), (queue.to_owned(), lease_id));
    }

    /// Removes and returns the lease of job `id`.
    pub(crate) fn take(&self, id: &str) -> Option<(String, String)> {
        self.leases().remove(id)
    }

    /// Stops job `id`: drops its lease, so no outcome is reported, and its
    /// task, running or not yet started.
    pub(crate) fn stop(&self, id: &str) {
        self.take(id);
        let mut stops = self.shared.stops.lock().unwrap_or_else(PoisonError::into_inner);
        match stops.get(id) {
            Some(Some(running)) => running.notify_one(),
            Some(None) => {}
            None => {
                stops.insert(id.to_owned(), None);
            }
        }
    }

    /// The stop signal of a task about to start; `None` when it was stopped
    /// before it started.
    fn watch(&self, id: &str) -> Option<Arc<Notify>> {
        let mut stops = self.shared.stops.lock().unwrap_or_else(PoisonError::into_inner);
        match stops.remove(id) {
            Some(None) => None,
            _ => {
                let signal = Arc::new(Notify::new());
                stops.insert(id.to_owned(), Some(signal.clone()));
                Some(signal)
            }
        }
    }

    /// Forgets the stop signal of a finished task.
    fn unwatch(&self, id: &str) {
        self.shared.stops.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }

    /// How many leased jobs have no outcome yet.
    pub(crate) fn leased(&self) -> usize {
        self.leases().len()
    }

    /// The ids of the leased jobs, for heartbeats.
    pub(crate) fn leased_ids(&self) -> Vec<String> {
        self.leases().keys().cloned().collect()
    }

    /// Wakes `waker` at the next outcome: a parked worker may lease again.
    pub(crate) fn park(&self, waker: &Waker) {
        self.shared.worker.register(waker);
    }

    /// Ready once every queued outcome has been sent.
    pub(crate) fn poll_flushed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.flush.register(cx.waker());
        if self.shared.pending.load(Ordering::Acquire) == 0 { Poll::Ready(()) } else { Poll::Pending }
    }

    /// Queues the outcome of job `id`, unless its lease was forgotten.
    fn report(&self, id: &str, outcome: Outcome) {
        if let Some((queue, lease_id)) = self.take(id) {
            self.shared.pending.fetch_add(1, Ordering::AcqRel);
            let ack = Ack { queue, id: id.to_owned(), lease_id, outcome };
            if self.sender.send(ack).is_err() {
                self.shared.pending.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.shared.worker.wake();
    }
}

/// Sends queued outcomes until the backend is dropped: everything queued is
/// sent at once, in at most two calls (successes, failures).
async fn report(
    mut client: WorkerServiceClient<Channel>,
    mut receiver: mpsc::UnboundedReceiver<Ack>,
    shared: Arc<Shared>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(ack) => batch.push(ack),
                Err(_) => break,
            }
        }
        let count = batch.len();
        send(&mut client, batch).await;
        shared.pending.fetch_sub(count, Ordering::AcqRel);
        shared.flush.wake();
    }
}

async fn send(client: &mut WorkerServiceClient<Channel>, batch: Vec<Ack>) {
    let mut completions = Vec::new();
    let mut failures = Vec::new();
    for ack in batch {
        match ack.outcome {
            Outcome::Succeeded(result) => completions.push(pb::CompleteJobRequest {
                queue: ack.queue,
                id: ack.id,
                lease_id: ack.lease_id,
                result: Some(json::from_json(result)),
            }),
            Outcome::Failed { error, non_retryable, retry_after } => failures.push(pb::FailJobRequest {
                queue: ack.queue,
                id: ack.id,
                lease_id: ack.lease_id,
                error,
                non_retryable,
                retry_after: retry_after.and_then(|d| prost_types::Duration::try_from(d).ok()),
            }),
        }
    }
    if !completions.is_empty() {
        let request = pb::BatchCompleteJobsRequest { jobs: completions };
        let results = retrying(|| {
            let mut client = client.clone();
            let request = request.clone();
            async move { client.batch_complete_jobs(request).await.map(|r| r.into_inner().results) }
        })
        .await;
        log_refusals("completion", results);
    }
    if !failures.is_empty() {
        let request = pb::BatchFailJobsRequest { jobs: failures };
        let results = retrying(|| {
            let mut client = client.clone();
            let request = request.clone();
            async move { client.batch_fail_jobs(request).await.map(|r| r.into_inner().results) }
        })
        .await;
        log_refusals("failure", results);
    }
}

/// Calls until the server answers (an answer may still refuse items), for
/// about ten seconds; after that the leases will expire and the jobs run
/// again, which is what at-least-once delivery promises.
async fn retrying<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(status) if pause > Duration::from_secs(5) => return Err(status),
            Err(status)
                if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal) =>
            {
                tracing::warn!(cause = %status, retry_in = ?pause, "cannot report outcomes");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(status) => return Err(status),
        }
    }
}

fn log_refusals(kind: &str, results: Result<Vec<pb::JobOutcome>, tonic::Status>) {
    match results {
        Ok(results) => {
            for outcome in results {
                if let Some(pb::job_outcome::Outcome::Error(status)) = outcome.outcome {
                    // Typically the lease was lost (the job expired and ran
                    // elsewhere) or the job was canceled meanwhile.
                    tracing::info!(message = %status.message, "{kind} not recorded");
                }
            }
        }
        Err(status) => {
            tracing::error!(cause = %status, "{kind}s lost; the jobs will run again when their leases expire")
        }
    }
}

/// The Apalis middleware that reports each task's outcome to Chirpy.
#[derive(Clone)]
pub struct AckLayer {
    acks: Acks,
}

impl AckLayer {
    pub(crate) fn new(acks: Acks) -> Self {
        AckLayer { acks }
    }
}

impl std::fmt::Debug for AckLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AckService { inner, acks: self.acks.clone() }
    }
}

/// The service of [`AckLayer`].
#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    acks: Acks,
}

impl<S, Args> Service<Task<Args>> for AckService<S>
where
    S: Service<Task<Args>>,
    S::Future: Send + 'static,
    S::Response: Serialize + Send + 'static,
    S::Error: Into<BoxDynError> + 'static,
    Args: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let acks = self.acks.clone();
        let Some(id) = task.task_id().map(ToString::to_string) else {
            let future = self.inner.call(task);
            return Box::pin(async move { future.await.map_err(Into::into) });
        };
        let Some(stop) = acks.watch(&id) else {
            // Canceled while it waited in the buffer: do not start it.
            return Box::pin(async { Err(stopped()) });
        };
        let future = self.inner.call(task);
        Box::pin(async move {
            let result = tokio::select! {
                result = future => result.map_err(Into::into),
                // Dropping the future drops the task: Apalis's lifecycle
                // bookkeeping runs on drop.
                () = stop.notified() => Err(stopped()),
            };
            acks.unwatch(&id);
            acks.report(&id, outcome(&result));
            result
        })
    }
}

/// The error of a task stopped because the server canceled it or gave its
/// lease to another worker. An `AbortError`, so no retry layer retries it.
fn stopped() -> BoxDynError {
    AbortError::new("stopped: the job was canceled or its lease was lost").into()
}

/// Reads Apalis's error conventions: `AbortError` means do not retry,
/// `RetryAfterError` carries the wait before the next attempt.
fn outcome<R: Serialize>(result: &Result<R, BoxDynError>) -> Outcome {
    match result {
        Ok(response) => match serde_json::to_value(response) {
            Ok(value) => Outcome::Succeeded(value),
            Err(err) => Outcome::Failed {
                error: format!("the result is not JSON: {err}"),
                non_retryable: false,
                retry_after: None,
            },
        },
        Err(err) => Outcome::Failed {
            error: message(err.as_ref()),
            non_retryable: err.downcast_ref::<AbortError>().is_some(),
            retry_after: err.downcast_ref::<RetryAfterError>().map(RetryAfterError::get_duration),
        },
    }
}

/// The handler's own message: Apalis's `AbortError` and `RetryAfterError`
/// say what they are in their `Display`, which is news to no one reading
/// the job's `last_error`.
fn message(err: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    let wrapped = err.is::<AbortError>() || err.is::<RetryAfterError>();
    match err.source() {
        Some(source) if wrapped => source.to_string(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apalis_errors_map_to_retry_decisions() {
        let abort: Result<(), BoxDynError> = Err(AbortError::new("no such user").into());
        assert!(matches!(
            outcome(&abort),
            Outcome::Failed { non_retryable: true, retry_after: None, error } if error == "no such user"
        ));
        let later: Result<(), BoxDynError> = Err(RetryAfterError::new("busy", Duration::from_secs(7)).into());
        assert!(matches!(
            outcome(&later),
            Outcome::Failed { non_retryable: false, retry_after: Some(d), error } if d == Duration::from_secs(7) && error == "busy"
        ));
        let plain: Result<(), BoxDynError> = Err("boom".into());
        assert!(matches!(
            outcome(&plain),
            Outcome::Failed { non_retryable: false, retry_after: None, error } if error == "boom"
        ));
        assert!(matches!(outcome(&Ok::<_, BoxDynError>(3)), Outcome::Succeeded(v) if v == 3));
    }
}
