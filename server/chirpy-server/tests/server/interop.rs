//! The product page's migration promise: Chirpy and embedded Apalis share one
//! database. A job pushed through Chirpy is worked by a plain Apalis worker
//! (`SqliteStorage` / `PostgresStorage` / `RedisStorage` on the same queue),
//! and its outcome shows through GetJob; a job pushed by an Apalis producer
//! shows in Chirpy, and a Chirpy worker runs it.

use std::time::Duration;

use apalis::prelude::*;
use chirpy_proto::v1::{self as pb, JobState};
use chirpy_testing::{Storage, each_storage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::support::{get_job, jobs, json_of, list, push, push_job, server};

/// The job's arguments as an Apalis user would type them.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Email {
    to: String,
    #[serde(default)]
    fail: bool,
}

async fn send_email(email: Email) -> Result<Value, BoxDynError> {
    if email.fail {
        return Err("smtp said no".into());
    }
    Ok(json!({"sent_to": email.to}))
}

/// Runs an embedded Apalis worker named `name` on `database_url`'s `email`
/// queue until the returned task is aborted.
async fn embedded_worker(storage: Storage, database_url: &str, name: &str) -> tokio::task::JoinHandle<()> {
    let name = name.to_owned();
    match storage {
        Storage::Sqlite => {
            let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
            let config = apalis_sqlite::Config::default().queue("email").heartbeat_interval(Duration::from_secs(1));
            let backend = apalis_sqlite::SqliteStorage::<Email>::new(&pool).with_config(config);
            tokio::spawn(async move {
                let _ = WorkerBuilder::new(name).backend(backend).build(send_email).run().await;
            })
        }
        Storage::Postgres => {
            let pool = sqlx::PgPool::connect(database_url).await.unwrap();
            let config = apalis_postgres::Config::default().queue("email").heartbeat_interval(Duration::from_secs(1));
            let backend = apalis_postgres::PostgresStorage::<Email>::new(&pool).with_config(config);
            tokio::spawn(async move {
                let _ = WorkerBuilder::new(name).backend(backend).build(send_email).run().await;
            })
        }
        Storage::Redis => {
            let conn = apalis_redis::connect(database_url).await.unwrap();
            let config = apalis_redis::Config::default().queue("email").heartbeat_interval(Duration::from_secs(1));
            let backend = apalis_redis::RedisStorage::<Email>::new(conn).with_config(config);
            tokio::spawn(async move {
                let _ = WorkerBuilder::new(name).backend(backend).build(send_email).run().await;
            })
        }
    }
}

/// Polls GetJob until the job reaches `state`, for at most 30 s.
async fn wait_for(client: &mut crate::support::Client, id: &str, state: JobState) -> pb::Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = get_job(client, "email", id).await;
        if job.state() == state {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "job {id} stuck in {:?}, wanted {state:?}", job.state());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

each_storage!(an_embedded_apalis_worker_works_jobs_pushed_through_chirpy, |storage| async move {
    let server = server(storage).await;
    let mut client = jobs(&server).await;
    let ok = push_job(&mut client, push("email", json!({"to": "user@example.com"}))).await;
    let mut failing = push("email", json!({"to": "nobody@example.com", "fail": true}));
    failing.max_attempts = 2;
    let failing = push_job(&mut client, failing).await;

    let worker = embedded_worker(storage, server.database_url(), "embedded-email-worker").await;
    let done = wait_for(&mut client, &ok.id, JobState::Succeeded).await;
    assert_eq!(json_of(done.result.as_ref().unwrap()), json!({"sent_to": "user@example.com"}));
    assert_eq!(done.attempts, 1);
    assert!(done.finished_at.is_some());

    let dead = wait_for(&mut client, &failing.id, JobState::Dead).await;
    assert_eq!(dead.attempts, 2);
    assert_eq!(dead.last_error, "smtp said no");
    assert_eq!(list(&mut client, "email", JobState::Dead).await.len(), 1);

    let workers = client.list_workers(pb::ListWorkersRequest {}).await.unwrap().into_inner().workers;
    let embedded = workers.iter().find(|w| w.id == "embedded-email-worker").expect("the embedded worker is listed");
    assert_eq!(embedded.queues, ["email"]);
    worker.abort();

    // The failure queue: retry brings the dead job back, attempts reset.
    let retried = client
        .retry_job(pb::RetryJobRequest { queue: "email".into(), id: failing.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(retried.state(), JobState::Pending);
    assert_eq!(retried.attempts, 0);
    assert!(list(&mut client, "email", JobState::Dead).await.is_empty());
    let err = client.retry_job(pb::RetryJobRequest { queue: "email".into(), id: ok.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let err = client.cancel_job(pb::CancelJobRequest { queue: "email".into(), id: ok.id }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "a succeeded job cannot be canceled");

    let queues = client.list_queues(pb::ListQueuesRequest::default()).await.unwrap().into_inner().queues;
    assert_eq!((queues[0].succeeded, queues[0].pending, queues[0].dead), (1, 1, 0));
});

/// Pushes `args` to `queue` with an Apalis producer on the server's storage.
pub async fn push_with_apalis<T>(storage: Storage, server: &chirpy_testing::TestServer, queue: &str, args: T)
where
    T: Serialize + for<'de> Deserialize<'de> + Send + Sync + Unpin + 'static,
{
    match storage {
        Storage::Sqlite => {
            let pool = sqlx::SqlitePool::connect(server.database_url()).await.unwrap();
            let config = apalis_sqlite::Config::default().queue(queue);
            apalis_sqlite::SqliteStorage::<T>::new(&pool).with_config(config).push(args).await.unwrap();
        }
        Storage::Postgres => {
            let pool = sqlx::PgPool::connect(server.database_url()).await.unwrap();
            let config = apalis_postgres::Config::default().queue(queue);
            apalis_postgres::PostgresStorage::<T>::new(&pool).with_config(config).push(args).await.unwrap();
        }
        Storage::Redis => {
            let conn = apalis_redis::connect(server.database_url()).await.unwrap();
            let config = apalis_redis::Config::default().queue(queue);
            apalis_redis::RedisStorage::<T>::new(conn).with_config(config).push(args).await.unwrap();
        }
    }
}

each_storage!(jobs_pushed_by_an_apalis_producer_show_in_chirpy, |storage| async move {
    let server = server(storage).await;
    let mut client = jobs(&server).await;
    let email = Email { to: "from-apalis@example.com".into(), fail: false };
    push_with_apalis(storage, &server, "email", email).await;
    let listed = list(&mut client, "email", JobState::Pending).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(json_of(listed[0].payload.as_ref().unwrap())["to"], json!("from-apalis@example.com"));
    assert_eq!(listed[0].max_attempts, 25, "Apalis's default");

    // A Chirpy worker runs it.
    let mut workers = crate::support::workers(&server).await;
    let lease = pb::LeaseJobsRequest { worker_id: "w".into(), queues: vec!["email".into()], max_jobs: 5, wait: None };
    let leases = workers.lease_jobs(lease).await.unwrap().into_inner().leases;
    assert_eq!(leases.len(), 1);
    let job = leases[0].job.as_ref().unwrap();
    assert_eq!((job.id.as_str(), job.attempts), (listed[0].id.as_str(), 1));
    let complete = pb::CompleteJobRequest {
        queue: "email".into(),
        id: job.id.clone(),
        lease_id: leases[0].lease_id.clone(),
        result: Some(crate::support::value(json!("sent"))),
    };
    let done = workers.complete_job(complete).await.unwrap().into_inner().job.unwrap();
    assert_eq!(done.state(), JobState::Succeeded);
    assert_eq!(list(&mut client, "email", JobState::Succeeded).await.len(), 1);
});

/// Chirpy keeps apalis-redis's `active` list in priority order (it has none of
/// its own), so an embedded Apalis worker on Redis also takes the highest
/// priority first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_apalis_redis_worker_takes_jobs_in_priority_order() {
    static ORDER: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    async fn record(email: Email) -> Result<(), BoxDynError> {
        ORDER.lock().unwrap().push(email.to);
        Ok(())
    }
    let server = server(Storage::Redis).await;
    let mut client = jobs(&server).await;
    let mut ids = Vec::new();
    for (to, priority) in [("low-1", 0), ("high", 9), ("low-2", 0), ("mid", 5)] {
        let mut request = push("email", json!({"to": to}));
        request.priority = priority;
        ids.push(push_job(&mut client, request).await.id);
    }
    let conn = apalis_redis::connect(server.database_url()).await.unwrap();
    let config =
        apalis_redis::Config::default().queue("email").batch_size(1).heartbeat_interval(Duration::from_secs(1));
    let backend = apalis_redis::RedisStorage::<Email>::new(conn).with_config(config);
    let worker = tokio::spawn(async move {
        let _ = WorkerBuilder::new("ordered").backend(backend).concurrency(1).build(record).run().await;
    });
    for id in &ids {
        wait_for(&mut client, id, JobState::Succeeded).await;
    }
    worker.abort();
    assert_eq!(*ORDER.lock().unwrap(), ["high", "mid", "low-1", "low-2"]);
}

/// A job canceled while an apalis-redis worker runs it stays canceled, though
/// that worker then reports it done (apalis-redis itself has no cancel).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_outlasts_an_apalis_redis_workers_result() {
    async fn slow(_: Email) -> Result<(), BoxDynError> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Ok(())
    }
    let server = server(Storage::Redis).await;
    let mut client = jobs(&server).await;
    let job = push_job(&mut client, push("email", json!({"to": "slow@example.com"}))).await;
    let conn = apalis_redis::connect(server.database_url()).await.unwrap();
    let config = apalis_redis::Config::default().queue("email").heartbeat_interval(Duration::from_secs(1));
    let backend = apalis_redis::RedisStorage::<Email>::new(conn).with_config(config);
    let worker = tokio::spawn(async move {
        let _ = WorkerBuilder::new("slow").backend(backend).build(slow).run().await;
    });
    wait_for(&mut client, &job.id, JobState::Running).await;
    let request = pb::CancelJobRequest { queue: "email".into(), id: job.id.clone() };
    assert_eq!(client.cancel_job(request).await.unwrap().into_inner().job.unwrap().state(), JobState::Canceled);
    tokio::time::sleep(Duration::from_secs(3)).await;
    worker.abort();
    assert_eq!(get_job(&mut client, "email", &job.id).await.state(), JobState::Canceled);
    assert_eq!(list(&mut client, "email", JobState::Canceled).await.len(), 1);
    assert!(list(&mut client, "email", JobState::Succeeded).await.is_empty());
    let queues = client.list_queues(pb::ListQueuesRequest::default()).await.unwrap().into_inner().queues;
    assert_eq!((queues[0].canceled, queues[0].succeeded, queues[0].running), (1, 0, 0));
}
