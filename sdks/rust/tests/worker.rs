//! `ChirpyBackend` and `Client` against a real `chirpy` server, on SQLite,
//! PostgreSQL and Redis: plain Apalis workers, with Apalis middleware, run
//! the jobs of a remote queue.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use apalis::prelude::*;
use chirpy_client::{ChirpyBackend, Client, PushOptions, proto::JobState};
use chirpy_testing::{Storage, TestServer, each_storage};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A server whose leases last three seconds: workers heartbeat every
/// second, and an expired lease shows quickly.
async fn server(storage: Storage) -> TestServer {
    TestServer::builder(storage)
        .env("CHIRPY_LEASE_TTL", "3s")
        .env("CHIRPY_RETRY_INITIAL_BACKOFF", "1s")
        .env("CHIRPY_RETRY_MAX_BACKOFF", "1s")
        .start()
        .await
}

/// A running worker; dropping the handle's `stop` ends it gracefully.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), WorkerError>>,
}

impl Running {
    /// Signals shutdown and waits for the worker to finish.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.done)
            .await
            .expect("the worker stops within 30 s")
            .expect("the worker task")
            .expect("the worker ends cleanly");
    }
}

/// Runs `worker` until stopped.
fn run<F>(worker: F) -> Running
where
    F: FnOnce(oneshot::Receiver<()>) -> tokio::task::JoinHandle<Result<(), WorkerError>>,
{
    let (stop, stopped) = oneshot::channel();
    Running { stop: Some(stop), done: worker(stopped) }
}

/// Resolves when `stopped` fires, in the form `run_until` wants.
async fn signal(stopped: oneshot::Receiver<()>) -> Result<(), std::io::Error> {
    let _ = stopped.await;
    Ok(())
}

/// Polls until `queue`'s job `id` is in `state` (30 s at most).
async fn wait_for(client: &Client, queue: &str, id: &str, state: JobState) -> chirpy_client::proto::Job {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = client.get(queue, id).await.unwrap();
        if job.state() == state {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} is {:?}, waited for {state:?}", job.state());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn echo(job: Value) -> Result<Value, BoxDynError> {
    if job["fail"] == json!(true) {
        return Err("asked to fail".into());
    }
    Ok(json!({"echo": job}))
}

each_storage!(a_worker_records_results_and_failures_reach_the_failure_queue, |storage| async move {
    let server = server(storage).await;
    let client = Client::connect(server.url()).await.unwrap();
    let ok = client.push("echo", &json!({"n": 1})).await.unwrap();
    let options = PushOptions::new().max_attempts(2).retry_policy(Duration::from_secs(1), Duration::from_secs(1));
    let failing = client.push_with("echo", &json!({"fail": true}), options).await.unwrap().job;

    let backend = ChirpyBackend::connect(server.url()).queue::<Value>("echo").await.unwrap();
    let worker = run(|stopped| {
        tokio::spawn(WorkerBuilder::new("echo-worker").backend(backend).build(echo).run_until(signal(stopped)))
    });
    let done = wait_for(&client, "echo", &ok.id, JobState::Succeeded).await;
    let result = chirpy_proto::json::to_json(done.result.unwrap()).unwrap();
    assert_eq!(result, json!({"echo": {"n": 1}}));
    assert_eq!(done.attempts, 1);

    let dead = wait_for(&client, "echo", &failing.id, JobState::Dead).await;
    assert_eq!((dead.attempts, dead.last_error.as_str()), (2, "asked to fail"));
    let workers = client.workers().await.unwrap();
    let listed = workers.iter().find(|w| w.id.starts_with("echo-worker.")).expect("the worker is listed");
    assert_eq!(listed.queues, ["echo"]);

    // Retried from the failure queue, it runs (and fails) again.
    client.retry("echo", &failing.id).await.unwrap();
    let dead = wait_for(&client, "echo", &failing.id, JobState::Dead).await;
    assert_eq!(dead.attempts, 2);
    worker.stop().await;
});

each_storage!(a_job_canceled_while_running_is_stopped_in_the_worker, |storage| async move {
    let server = server(storage).await;
    let client = Client::connect(server.url()).await.unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));

    /// Counts when the handler's future is dropped before it finished.
    struct OnDrop(Arc<AtomicUsize>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    let backend = ChirpyBackend::connect(server.url()).queue::<Value>("slow").await.unwrap();
    let (d, f) = (dropped.clone(), finished.clone());
    let worker = run(move |stopped| {
        let handler = move |job: Value| {
            let (d, f) = (d.clone(), f.clone());
            async move {
                if job == json!("slow") {
                    let guard = OnDrop(d);
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    std::mem::forget(guard);
                }
                f.fetch_add(1, Ordering::SeqCst);
                Ok::<_, BoxDynError>(())
            }
        };
        tokio::spawn(WorkerBuilder::new("slow-worker").backend(backend).build(handler).run_until(signal(stopped)))
    });
    let slow = client.push("slow", &json!("slow")).await.unwrap();
    wait_for(&client, "slow", &slow.id, JobState::Running).await;
    let canceled = client.cancel("slow", &slow.id).await.unwrap();
    assert_eq!(canceled.state(), JobState::Canceled);

    // The next heartbeat (every second here) delivers the cancel.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dropped.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the running task was never canceled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    assert_eq!(client.get("slow", &slow.id).await.unwrap().state(), JobState::Canceled);

    // The worker carries on with other jobs.
    let next = client.push("slow", &json!("quick")).await.unwrap();
    wait_for(&client, "slow", &next.id, JobState::Succeeded).await;
    worker.stop().await;
});

each_storage!(a_graceful_shutdown_hands_back_unstarted_jobs, |storage| async move {
    let server = server(storage).await;
    let client = Client::connect(server.url()).await.unwrap();
    let ids: Vec<String> =
        client.batch_push("drain", (0..4).map(|i| json!(i))).await.unwrap().into_iter().map(|j| j.id).collect();
    let started = Arc::new(AtomicUsize::new(0));
    let backend = ChirpyBackend::connect(server.url()).queue::<Value>("drain").batch_size(10).await.unwrap();
    let counter = started.clone();
    let worker = run(move |stopped| {
        let handler = move |_: Value| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Ok::<_, BoxDynError>(())
            }
        };
        let worker = WorkerBuilder::new("drainer").backend(backend).concurrency(1).build(handler);
        tokio::spawn(worker.run_until(signal(stopped)))
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while started.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no job started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;

    let mut states = HashMap::new();
    for id in &ids {
        let job = client.get("drain", id).await.unwrap();
        *states.entry((job.state(), job.attempts)).or_insert(0) += 1;
    }
    let ran = started.load(Ordering::SeqCst);
    assert_eq!(states.get(&(JobState::Succeeded, 1)), Some(&ran), "the running job finished: {states:?}");
    assert_eq!(states.get(&(JobState::Pending, 0)), Some(&(4 - ran)), "the rest were handed back: {states:?}");
});

each_storage!(apalis_middleware_works_unchanged, |storage| async move {
    let server = server(storage).await;
    let client = Client::connect(server.url()).await.unwrap();

    // Retry: the handler fails twice, then succeeds, within one lease.
    let calls = Arc::new(AtomicUsize::new(0));
    let backend = ChirpyBackend::connect(server.url()).queue::<Value>("mw-retry").await.unwrap();
    let counter = calls.clone();
    let retrying = run(move |stopped| {
        let handler = move |_: Value| {
            let counter = counter.clone();
            async move {
                match counter.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err::<Value, BoxDynError>("not yet".into()),
                    _ => Ok(json!("third time")),
                }
            }
        };
        let worker = WorkerBuilder::new("retrying").backend(backend).retry(RetryPolicy::retries(2)).build(handler);
        tokio::spawn(worker.run_until(signal(stopped)))
    });
    let job = client.push("mw-retry", &json!(null)).await.unwrap();
    let done = wait_for(&client, "mw-retry", &job.id, JobState::Succeeded).await;
    assert_eq!((calls.load(Ordering::SeqCst), done.attempts), (3, 1));
    retrying.stop().await;

    // Timeout: a handler over its time fails the attempt.
    let backend = ChirpyBackend::connect(server.url()).queue::<Value>("mw-timeout").await.unwrap();
    let timing_out = run(move |stopped| {
        let handler = |_: Value| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, BoxDynError>(())
        };
        let worker =
            WorkerBuilder::new("timing-out").backend(backend).timeout(Duration::from_millis(200)).build(handler);
        tokio::spawn(worker.run_until(signal(stopped)))
    });
    let options = PushOptions::new().max_attempts(1);
    let job = client.push_with("mw-timeout", &json!(null), options).await.unwrap().job;
    let dead = wait_for(&client, "mw-timeout", &job.id, JobState::Dead).await;
    assert!(!dead.last_error.is_empty());
    timing_out.stop().await;

    // Concurrency: never more than two at once.
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let backend = ChirpyBackend::connect(server.url()).queue::<Value>("mw-concurrency").await.unwrap();
    let (c, p) = (current.clone(), peak.clone());
    let limited = run(move |stopped| {
        let handler = move |_: Value| {
            let (c, p) = (c.clone(), p.clone());
            async move {
                let now = c.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                c.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, BoxDynError>(())
            }
        };
        let worker = WorkerBuilder::new("limited").backend(backend).concurrency(2).build(handler);
        tokio::spawn(worker.run_until(signal(stopped)))
    });
    let jobs = client.batch_push("mw-concurrency", (0..6).map(|i| json!(i))).await.unwrap();
    for job in &jobs {
        wait_for(&client, "mw-concurrency", &job.id, JobState::Succeeded).await;
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    limited.stop().await;
});

each_storage!(the_client_pushes_lists_and_manages_jobs, |storage| async move {
    let server = server(storage).await;
    let client = Client::connect(server.url()).await.unwrap();
    let first =
        client.push_with("c", &json!({"a": 1}), PushOptions::new().idempotency_key("k").priority(3)).await.unwrap();
    let again = client.push_with("c", &json!({"a": 2}), PushOptions::new().idempotency_key("k")).await.unwrap();
    assert!(!first.deduplicated && again.deduplicated);
    assert_eq!(first.job.id, again.job.id);
    assert_eq!(Client::payload::<Value>(&again.job).unwrap(), json!({"a": 1}));
    client.batch_push("c", [json!(1), json!(2)]).await.unwrap();

    let (page, next) = client.list("c", None, 2, None).await.unwrap();
    assert_eq!(page.len(), 2);
    let (rest, last) = client.list("c", None, 2, next).await.unwrap();
    assert_eq!((rest.len(), last), (1, None));
    let canceled = client.cancel("c", &first.job.id).await.unwrap();
    assert_eq!(canceled.state(), JobState::Canceled);
    let err = client.retry("c", &first.job.id).await.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::FailedPrecondition));
    let queues = client.queues().await.unwrap();
    assert_eq!((queues[0].name.as_str(), queues[0].pending, queues[0].canceled), ("c", 2, 1));

    // Pushing through the backend (Apalis's TaskSink) pushes to its queue.
    let mut backend = ChirpyBackend::connect(server.url()).queue::<Value>("sink").await.unwrap();
    backend.push(json!({"via": "sink"})).await.unwrap();
    let (listed, _) = client.list("sink", Some(JobState::Pending), 10, None).await.unwrap();
    assert_eq!(Client::payload::<Value>(&listed[0]).unwrap(), json!({"via": "sink"}));
});

/// Two server instances on one PostgreSQL, two workers on each: every job
/// runs exactly once, and no lease is ever taken twice (every job finishes
/// at its first attempt).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_four_workers_each_job_exactly_once_on_postgres() {
    two_instances_four_workers_each_job_exactly_once(Storage::Postgres).await;
}

/// The same on one Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_four_workers_each_job_exactly_once_on_redis() {
    two_instances_four_workers_each_job_exactly_once(Storage::Redis).await;
}

/// Several instances share one database on PostgreSQL and Redis (not on
/// SQLite: one process owns the file).
async fn two_instances_four_workers_each_job_exactly_once(storage: Storage) {
    const JOBS: usize = 1000;
    let first = server(storage).await;
    let second =
        TestServer::builder(storage).database_url(first.database_url()).env("CHIRPY_LEASE_TTL", "3s").start().await;
    let client = Client::connect(first.url()).await.unwrap();
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();

    let mut workers = Vec::new();
    for (i, url) in [first.url(), first.url(), second.url(), second.url()].into_iter().enumerate() {
        let backend = ChirpyBackend::connect(url).queue::<Value>("bulk").batch_size(50).await.unwrap();
        let runs = runs.clone();
        workers.push(run(move |stopped| {
            let handler = move |_: Value, id: TaskId| {
                let runs = runs.clone();
                async move {
                    *runs.lock().unwrap().entry(id.to_string()).or_insert(0) += 1;
                    Ok::<_, BoxDynError>(())
                }
            };
            let worker = WorkerBuilder::new(format!("bulk-{i}")).backend(backend).concurrency(20).build(handler);
            tokio::spawn(worker.run_until(signal(stopped)))
        }));
    }
    let mut ids = Vec::new();
    for chunk in 0..JOBS / 250 {
        let pushed = client.batch_push("bulk", (0..250).map(|i| json!(chunk * 250 + i))).await.unwrap();
        ids.extend(pushed.into_iter().map(|j| j.id));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let queues = client.queues().await.unwrap();
        if queues[0].succeeded as usize == JOBS {
            break;
        }
        assert!(Instant::now() < deadline, "not done: {:?}", queues[0]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for worker in workers {
        worker.stop().await;
    }
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), JOBS);
    assert!(runs.values().all(|&n| n == 1), "a job ran twice");
    let (page, _) = client.list("bulk", Some(JobState::Succeeded), 1000, None).await.unwrap();
    assert!(page.iter().all(|job| job.attempts == 1), "a job was leased twice");
}
