//! [`ChirpyBackend`]: an Apalis backend whose jobs live in a remote Chirpy.
//!
//! It is built on apalis-core's `Persistence`/`Persisted`, like Apalis's own
//! storages: [`remote`] implements `Persistence` over gRPC (register,
//! heartbeat, lease, hand back, push), and `Persisted` drives it. Outcomes
//! do not travel through `Persisted`'s event queue: that queue is drained
//! only between fetches, and a fetch here is a long poll, so an outcome could
//! wait for it. The [`ack`] layer reports each outcome as soon as the
//! handler returns instead, batched on a task of its own.

mod ack;
mod remote;

use std::{
    future::{Future, IntoFuture},
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use apalis_codec::json::JsonCodec;
use apalis_core::{
    backend::{Backend, BackendConfig, WireFormatBackend, finalize::Durable, persistence::Persisted},
    task::Task,
    worker::context::WorkerContext,
};
use chirpy_proto::v1::{job_service_client::JobServiceClient, worker_service_client::WorkerServiceClient};
use futures::Sink;
use ulid::Ulid;

pub use self::ack::AckLayer;
use self::{ack::Acks, remote::Remote};
use crate::error::{Error, channel};

/// A remote Chirpy queue as an Apalis backend.
///
/// Jobs are leased in batches with a long poll (a push wakes it at once),
/// outcomes are reported as soon as each handler returns, heartbeats keep
/// the leases and deliver cancellations (a canceled job's task is canceled
/// and its outcome dropped), and a graceful shutdown hands back the jobs it
/// leased but had not started.
///
/// Worker names become Chirpy worker ids with a random suffix
/// (`email-worker.7f3kq2zc`), so that many processes may share a name.
pub struct ChirpyBackend<Args> {
    persisted: Persisted<Remote>,
    remote: Remote,
    codec: JsonCodec<Vec<u8>>,
    config: Config,
    _args: PhantomData<fn() -> Args>,
}

/// Settings of a [`ChirpyBackend`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The queue to work.
    pub queue: String,
    /// How many jobs to lease at once (the default is 10).
    pub batch_size: usize,
    /// How long one lease call may wait for a job when the worker is idle
    /// (the default is 20 s; at most 30 s).
    pub long_poll: Duration,
    /// How often to heartbeat until the server suggests otherwise (the
    /// default is 10 s).
    pub heartbeat_interval: Duration,
}

/// A backend being set up: [`ChirpyBackend::connect`], then
/// [`queue`](Connect::queue).
#[derive(Debug, Clone)]
pub struct Connect {
    url: String,
}

/// A backend ready to connect to one queue; await it.
#[derive(Debug, Clone)]
pub struct ConnectQueue<Args> {
    url: String,
    config: Config,
    _args: PhantomData<fn() -> Args>,
}

impl ChirpyBackend<()> {
    /// Starts setting up a backend for the Chirpy server at `url`
    /// (`http://host:7000`); name the queue next.
    pub fn connect(url: impl Into<String>) -> Connect {
        Connect { url: url.into() }
    }
}

impl Connect {
    /// The queue whose jobs the worker runs.
    pub fn queue<Args>(self, queue: impl Into<String>) -> ConnectQueue<Args> {
        ConnectQueue {
            url: self.url,
            config: Config {
                queue: queue.into(),
                batch_size: 10,
                long_poll: Duration::from_secs(20),
                heartbeat_interval: Duration::from_secs(10),
            },
            _args: PhantomData,
        }
    }
}

impl<Args> ConnectQueue<Args> {
    /// How many jobs to lease at once (1 to 1000).
    #[must_use]
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.config.batch_size = batch_size.clamp(1, 1000);
        self
    }

    /// How long one lease call may wait for a job (at most 30 s).
    #[must_use]
    pub fn long_poll(mut self, wait: Duration) -> Self {
        self.config.long_poll = wait.min(Duration::from_secs(30));
        self
    }

    /// How often to heartbeat until the server suggests otherwise.
    #[must_use]
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self
    }

    /// Connects.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] or [`Error::Connect`] when the server cannot be
    /// reached now; later outages are waited out.
    pub async fn connect(self) -> Result<ChirpyBackend<Args>, Error> {
        let channel = channel(self.url).await?;
        let acks = Acks::start(WorkerServiceClient::new(channel.clone()));
        let remote = Remote::new(
            WorkerServiceClient::new(channel.clone()),
            JobServiceClient::new(channel),
            Arc::new(self.config.clone()),
            acks,
        );
        Ok(ChirpyBackend {
            persisted: Persisted::new(remote.clone()),
            remote,
            codec: JsonCodec::default(),
            config: self.config,
            _args: PhantomData,
        })
    }
}

impl<Args: 'static> IntoFuture for ConnectQueue<Args> {
    type Output = Result<ChirpyBackend<Args>, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.connect())
    }
}

impl<Args> ChirpyBackend<Args> {
    /// The worker id this backend registered with, once it has.
    pub fn worker_id(&self) -> Option<String> {
        self.remote.worker_id()
    }
}

impl<Args> Backend for ChirpyBackend<Args> {
    type Task = Task<Vec<u8>>;
    type Error = Error;

    fn poll_ready(&mut self, cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        let interval = self.remote.heartbeat_interval();
        self.persisted.poll_ready(cx, worker, interval)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        let next = self.persisted.poll_next(cx, worker);
        if next.is_pending() {
            // An outcome frees a lease slot: fetch again then, not only at
            // the next heartbeat.
            self.remote.acks().park(cx.waker());
        }
        next
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        // First hand back what was leased but not started, then wait for the
        // outcomes still being reported.
        match self.persisted.poll_close(cx, worker) {
            Poll::Ready(Ok(())) => self.remote.acks().poll_flushed(cx).map(Ok),
            other => other,
        }
    }
}

impl<Args> BackendConfig for ChirpyBackend<Args> {
    type Args = Args;
    type Id = Ulid;
    type Kind = Durable;
    type Config = Config;
    type Layer = AckLayer;

    fn config(&self) -> &Self::Config {
        &self.config
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        self.remote.ack_layer()
    }
}

impl<Args> WireFormatBackend for ChirpyBackend<Args> {
    type Codec = JsonCodec<Vec<u8>>;
    type Compact = Vec<u8>;

    fn codec(&self) -> &Self::Codec {
        &self.codec
    }
}

/// Pushing through the backend (`backend.push(args)`, Apalis's `TaskSink`)
/// pushes to its queue on the server.
impl<Args> Sink<Task<Vec<u8>>> for ChirpyBackend<Args> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().persisted).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Task<Vec<u8>>) -> Result<(), Self::Error> {
        Pin::new(&mut self.get_mut().persisted).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().persisted).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().persisted).poll_close(cx)
    }
}

impl<Args> std::fmt::Debug for ChirpyBackend<Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChirpyBackend").field("config", &self.config).finish_non_exhaustive()
    }
}
