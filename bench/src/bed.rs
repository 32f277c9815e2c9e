//! Test beds: a fresh `chirpy` server on a fresh database for each Chirpy
//! measurement, and Apalis embedded in this process on a fresh database of
//! the same kind for each baseline.

use std::time::Duration;

use apalis::prelude::*;
use chirpy_client::{ChirpyBackend, Client};
use chirpy_testing::{Storage, TestServer, postgres, redis};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};

use crate::{Scale, probe::Probe};

/// A running `chirpy` server and a client of it.
pub struct Bed {
    pub server: TestServer,
    pub client: Client,
}

impl Bed {
    /// A server on a fresh database of `storage`.
    pub async fn start(storage: Storage) -> Self {
        let server = TestServer::builder(storage).env("CHIRPY_LOG", "warn,chirpy=info").start().await;
        let client = Client::connect(server.url()).await.expect("connect to the bench server");
        Bed { server, client }
    }

    /// Starts `scale.workers` chirpy-client workers on `queue`, recording
    /// into `probe`.
    pub async fn workers(&self, queue: &str, count: usize, scale: &Scale, probe: &Probe) -> Workers {
        let mut workers = Workers::default();
        for i in 0..count {
            let backend = ChirpyBackend::connect(self.server.url())
                .queue::<Value>(queue)
                .batch_size(scale.lease_batch)
                .await
                .expect("connect a worker");
            let worker = WorkerBuilder::new(format!("bench-{i}"))
                .backend(backend)
                .data(probe.clone())
                .concurrency(scale.concurrency)
                .build(record);
            workers.spawn(|signal| tokio::spawn(worker.run_until(signal)));
        }
        workers
    }
}

/// How often embedded workers that poll look for jobs.
const POLL: Duration = Duration::from_millis(50);

/// How embedded apalis-postgres workers learn of new jobs. Each scenario uses
/// the mode it does best in: polling keeps up at a steady 1,000 jobs/s (its
/// LISTEN mode fell behind there, with a push-to-start p50 of 24 s), LISTEN
/// costs least when idle. The other storages have one mode each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Every 50 ms.
    Poll,
    /// On PostgreSQL's notifications (`with_pubsub`).
    Listen,
}

/// Every benchmark job's handler: records that the job started.
async fn record(_: Value, id: TaskId, probe: Data<Probe>) -> Result<(), BoxDynError> {
    probe.started(&id.to_string());
    Ok(())
}

/// Apalis embedded in this process, on a fresh database.
pub enum Embedded {
    /// apalis-sqlite, with its update-hook wake-ups.
    Sqlite {
        pool: sqlx::SqlitePool,
        listener: Option<apalis_sqlite::callback::HookCallbackListener>,
        _dir: tempfile::TempDir,
    },
    /// apalis-postgres, with LISTEN/NOTIFY wake-ups.
    Postgres { pool: sqlx::PgPool, url: String },
    /// apalis-redis, polling every 50 ms.
    Redis { conn: apalis_redis::ConnectionManager },
}

impl Embedded {
    /// A fresh database of `storage` with Apalis's schema.
    pub async fn start(storage: Storage) -> Self {
        match storage {
            Storage::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("apalis.db").display());
                let (pool, listener) = apalis_sqlite::SqliteStorage::connect_with_callback(&url).expect("open sqlite");
                apalis_sqlite::SqliteStorage::setup(&pool).await.expect("migrate sqlite");
                Embedded::Sqlite { pool, listener: Some(listener), _dir: dir }
            }
            Storage::Postgres => {
                let url = postgres::fresh_database().await;
                let pool = sqlx::PgPool::connect(&url).await.expect("connect postgres");
                apalis_postgres::PostgresStorage::setup(&pool).await.expect("migrate postgres");
                Embedded::Postgres { pool, url }
            }
            Storage::Redis => {
                let url = redis::fresh_database().await;
                Embedded::Redis { conn: apalis_redis::connect(url).await.expect("connect redis") }
            }
        }
    }

    /// Pushes `payloads` to `queue`, `batch` at a time (1: one by one).
    pub async fn push(&self, queue: &str, payloads: Vec<Value>, batch: usize) {
        for chunk in payloads.chunks(batch.max(1)) {
            let tasks: Vec<Task<Value>> = chunk
                .iter()
                .map(|p| TaskBuilder::new(p.clone()).task_id(TaskId::Ulid(ulid::Ulid::generate())).build())
                .collect();
            let mut stream = futures_stream(tasks);
            match self {
                Embedded::Sqlite { pool, .. } => {
                    let mut storage = apalis_sqlite::SqliteStorage::<Value>::new(pool)
                        .with_config(apalis_sqlite::Config::default().queue(queue));
                    storage.push_all(&mut stream).await.expect("push to apalis-sqlite");
                }
                Embedded::Postgres { pool, .. } => {
                    let mut storage = apalis_postgres::PostgresStorage::<Value>::new(pool)
                        .with_config(apalis_postgres::Config::default().queue(queue));
                    storage.push_all(&mut stream).await.expect("push to apalis-postgres");
                }
                Embedded::Redis { conn } => {
                    let mut storage = apalis_redis::RedisStorage::<Value>::new(conn.clone())
                        .with_config(apalis_redis::Config::default().queue(queue));
                    storage.push_all(&mut stream).await.expect("push to apalis-redis");
                }
            }
        }
    }

    /// Starts `count` embedded workers on `queue`, recording into `probe`.
    pub fn workers(&mut self, queue: &str, count: usize, scale: &Scale, probe: &Probe, wake: Wake) -> Workers {
        let mut workers = Workers::default();
        for i in 0..count {
            let name = format!("embedded-{i}");
            match self {
                Embedded::Sqlite { pool, listener, .. } => {
                    let config = apalis_sqlite::Config::default().queue(queue).batch_size(scale.lease_batch);
                    let storage = apalis_sqlite::SqliteStorage::<Value>::new(pool).with_config(config);
                    // One update hook feeds one worker; the others poll.
                    match listener.take() {
                        Some(listener) => {
                            let worker = WorkerBuilder::new(name)
                                .backend(storage.with_callback(listener))
                                .data(probe.clone())
                                .concurrency(scale.concurrency)
                                .build(record);
                            workers.spawn(|s| tokio::spawn(worker.run_until(s)));
                        }
                        None => {
                            let worker = WorkerBuilder::new(name)
                                .backend(storage.poll_with_interval(POLL))
                                .data(probe.clone())
                                .concurrency(scale.concurrency)
                                .build(record);
                            workers.spawn(|s| tokio::spawn(worker.run_until(s)));
                        }
                    }
                }
                Embedded::Postgres { pool, .. } => {
                    let config = apalis_postgres::Config::default().queue(queue).batch_size(scale.lease_batch);
                    let storage = apalis_postgres::PostgresStorage::<Value>::new(pool).with_config(config);
                    let builder = WorkerBuilder::new(name);
                    match wake {
                        Wake::Listen => {
                            let worker = builder
                                .backend(storage.with_pubsub())
                                .data(probe.clone())
                                .concurrency(scale.concurrency)
                                .build(record);
                            workers.spawn(|s| tokio::spawn(worker.run_until(s)));
                        }
                        Wake::Poll => {
                            let worker = builder
                                .backend(storage.poll_with_interval(POLL))
                                .data(probe.clone())
                                .concurrency(scale.concurrency)
                                .build(record);
                            workers.spawn(|s| tokio::spawn(worker.run_until(s)));
                        }
                    }
                }
                Embedded::Redis { conn } => {
                    let config = apalis_redis::Config::default().queue(queue).batch_size(scale.lease_batch);
                    // apalis-redis has no wake-up of its own: after an empty
                    // fetch a worker waits for its heartbeat (30 s) unless it
                    // polls, as the SQLite pollers here do.
                    let storage = apalis_redis::RedisStorage::<Value>::new(conn.clone())
                        .with_config(config)
                        .poll_with_interval(POLL);
                    let worker = WorkerBuilder::new(name)
                        .backend(storage)
                        .data(probe.clone())
                        .concurrency(scale.concurrency)
                        .build(record);
                    workers.spawn(|s| tokio::spawn(worker.run_until(s)));
                }
            }
        }
        workers
    }

    /// The database URL, for counting its queries (PostgreSQL only).
    pub fn postgres_url(&self) -> Option<&str> {
        match self {
            Embedded::Postgres { url, .. } => Some(url),
            Embedded::Sqlite { .. } | Embedded::Redis { .. } => None,
        }
    }
}

fn futures_stream(tasks: Vec<Task<Value>>) -> impl futures::Stream<Item = Task<Value>> + Unpin + Send {
    futures::stream::iter(tasks)
}

/// Workers running until stopped.
#[derive(Default)]
pub struct Workers {
    running: Vec<(oneshot::Sender<()>, Running)>,
}

/// A spawned worker's run, ending when it stops.
type Running = JoinHandle<Result<(), WorkerError>>;

impl Workers {
    fn spawn(&mut self, start: impl FnOnce(Stop) -> Running) {
        let (stop, stopped) = oneshot::channel();
        let handle = start(Box::pin(async move {
            let _ = stopped.await;
            Ok::<(), std::io::Error>(())
        }));
        self.running.push((stop, handle));
    }

    /// Stops every worker and waits for them (at most 30 s).
    pub async fn stop(self) {
        for (stop, handle) in self.running {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(30), handle).await;
        }
    }
}

/// The shutdown signal a worker runs until.
type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), std::io::Error>> + Send>>;
