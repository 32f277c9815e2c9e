//! The product page's migration promise: Chirpy and embedded Apalis share one
//! database. A job pushed through Chirpy is worked by a plain Apalis worker
//! (`SqliteStorage` / `PostgresStorage` on the same queue), and its outcome
//! shows through GetJob; a job pushed by an Apalis producer shows in Chirpy.

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

each_storage!(jobs_pushed_by_an_apalis_producer_show_in_chirpy, |storage| async move {
    let server = server(storage).await;
    let mut client = jobs(&server).await;
    let email = Email { to: "from-apalis@example.com".into(), fail: false };
    match storage {
        Storage::Sqlite => {
            let pool = sqlx::SqlitePool::connect(server.database_url()).await.unwrap();
            let config = apalis_sqlite::Config::default().queue("email");
            let mut producer = apalis_sqlite::SqliteStorage::<Email>::new(&pool).with_config(config);
            producer.push(email).await.unwrap();
        }
        Storage::Postgres => {
            let pool = sqlx::PgPool::connect(server.database_url()).await.unwrap();
            let config = apalis_postgres::Config::default().queue("email");
            let mut producer = apalis_postgres::PostgresStorage::<Email>::new(&pool).with_config(config);
            producer.push(email).await.unwrap();
        }
    }
    let listed = list(&mut client, "email", JobState::Pending).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(json_of(listed[0].payload.as_ref().unwrap())["to"], json!("from-apalis@example.com"));
    assert_eq!(listed[0].max_attempts, 25, "Apalis's default");
});
