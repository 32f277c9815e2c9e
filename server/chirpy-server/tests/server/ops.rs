//! What operators see: `/metrics` (checked by `promtool`), the toggles,
//! logs, `--help` and `--version`.

use std::{process::Command, time::Duration};

use chirpy_proto::v1 as pb;
use chirpy_testing::{Storage, TestServer, each_storage};
use serde_json::json;

use crate::{
    rest::Http,
    support::{CHIRPY, jobs, push, push_job, workers},
};

/// The value of the sample `name{labels}` in a Prometheus text scrape.
fn sample(scrape: &str, name_and_labels: &str) -> Option<f64> {
    scrape.lines().find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
}

async fn scrape(server: &TestServer) -> String {
    let (status, _, body) = Http::http1(server).send("GET", "/metrics", None, bytes::Bytes::new()).await;
    assert_eq!(status, 200);
    body.as_str().expect("the Prometheus text format").to_owned()
}

each_storage!(metrics_count_jobs_and_requests_and_pass_promtool, |storage| async move {
    let server = TestServer::builder(storage).binary(CHIRPY).env("CHIRPY_LEASE_TTL", "2s").start().await;
    let (mut jobs, mut workers) = (jobs(&server).await, workers(&server).await);
    let before = scrape(&server).await;
    assert_eq!(sample(&before, "chirpy_jobs_pushed_total{queue=\"m\"}"), None);

    let mut keyed = push("m", json!(1));
    keyed.idempotency_key = "once".into();
    push_job(&mut jobs, keyed.clone()).await;
    push_job(&mut jobs, keyed).await; // deduplicated: not counted
    let mut fragile = push("m", json!(2));
    fragile.max_attempts = 1;
    push_job(&mut jobs, fragile).await;
    let doomed = push_job(&mut jobs, push("m", json!(3))).await;
    jobs.cancel_job(pb::CancelJobRequest { queue: "m".into(), id: doomed.id }).await.unwrap();
    let lease = pb::LeaseJobsRequest { worker_id: "w".into(), queues: vec!["m".into()], max_jobs: 2, wait: None };
    let leases = workers.lease_jobs(lease).await.unwrap().into_inner().leases;
    assert_eq!(leases.len(), 2);
    for leased in &leases {
        let job = leased.job.as_ref().unwrap();
        if job.max_attempts == 1 {
            let fail = pb::FailJobRequest {
                queue: "m".into(),
                id: job.id.clone(),
                lease_id: leased.lease_id.clone(),
                error: "no".into(),
                ..Default::default()
            };
            workers.fail_job(fail).await.unwrap();
        } else {
            let complete = pb::CompleteJobRequest {
                queue: "m".into(),
                id: job.id.clone(),
                lease_id: leased.lease_id.clone(),
                result: None,
            };
            workers.complete_job(complete).await.unwrap();
        }
    }
    let beat = pb::HeartbeatRequest { worker_id: "w".into(), queues: vec![], running_job_ids: vec![] };
    workers.heartbeat(beat).await.unwrap();
    let _ = jobs.get_job(pb::GetJobRequest { queue: "m".into(), id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into() }).await;
    let http = Http::http1(&server);
    http.get("/queues/m/jobs").await;

    let after = scrape(&server).await;
    let count = |series: &str| sample(&after, series).unwrap_or_else(|| panic!("{series} missing from:\n{after}"));
    assert_eq!(count("chirpy_jobs_pushed_total{queue=\"m\"}"), 3.0);
    assert_eq!(count("chirpy_jobs_leased_total{queue=\"m\"}"), 2.0);
    assert_eq!(count("chirpy_jobs_succeeded_total{queue=\"m\"}"), 1.0);
    assert_eq!(count("chirpy_jobs_failed_total{queue=\"m\"}"), 1.0);
    assert_eq!(count("chirpy_jobs_dead_total{queue=\"m\"}"), 1.0);
    assert_eq!(count("chirpy_jobs_canceled_total{queue=\"m\"}"), 1.0);
    assert_eq!(count("chirpy_heartbeats_total"), 1.0);
    assert_eq!(count("chirpy_queue_jobs{queue=\"m\",state=\"succeeded\"}"), 1.0);
    assert_eq!(count("chirpy_queue_jobs{queue=\"m\",state=\"dead\"}"), 1.0);
    assert_eq!(count("chirpy_queue_jobs{queue=\"m\",state=\"canceled\"}"), 1.0);
    assert_eq!(count("chirpy_job_run_seconds_count{queue=\"m\"}"), 2.0);
    assert_eq!(count("chirpy_job_queue_wait_seconds_count{queue=\"m\"}"), 2.0);
    assert!(count("chirpy_requests_total{protocol=\"grpc\",rpc=\"chirpy.v1.JobService.PushJob\",code=\"OK\"}") >= 3.0);
    assert_eq!(
        count("chirpy_requests_total{protocol=\"grpc\",rpc=\"chirpy.v1.JobService.GetJob\",code=\"NOT_FOUND\"}"),
        1.0
    );
    assert_eq!(
        count("chirpy_requests_total{protocol=\"http\",rpc=\"chirpy.v1.JobService.ListJobs\",code=\"OK\"}"),
        1.0
    );
    let kind = storage.name();
    assert_eq!(
        count(&format!("chirpy_build_info{{version=\"{}\",storage=\"{kind}\"}}", env!("CARGO_PKG_VERSION"))),
        1.0
    );

    // A worker that stops heartbeating: its lease expires, counted.
    push_job(&mut jobs, push("m", json!(4))).await;
    let lease = pb::LeaseJobsRequest { worker_id: "gone".into(), queues: vec!["m".into()], max_jobs: 1, wait: None };
    workers.lease_jobs(lease).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while sample(&scrape(&server).await, "chirpy_leases_expired_total{queue=\"m\"}").is_none() {
        assert!(tokio::time::Instant::now() < deadline, "the expiry was never counted");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    promtool_check(&after);
});

/// Checks a scrape with Prometheus's own linter, `promtool check metrics`.
fn promtool_check(scrape: &str) {
    use std::io::Write;
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(std::env::var_os("CHIRPY_REQUIRE_TOOLS").is_none(), "promtool is missing: run `make setup`");
        eprintln!("skipped promtool: not installed (apt-get install prometheus)");
        return;
    };
    child.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn chirpy_metrics_false_turns_metrics_off() {
    let server = TestServer::builder(Storage::Sqlite).binary(CHIRPY).env("CHIRPY_METRICS", "false").start().await;
    let (status, _, _) = Http::http1(&server).send("GET", "/metrics", None, bytes::Bytes::new()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn json_logs_carry_job_and_worker_ids() {
    let server = TestServer::builder(Storage::Sqlite)
        .binary(CHIRPY)
        .env("CHIRPY_LOG_FORMAT", "json")
        .env("CHIRPY_LOG", "chirpy=debug")
        .start()
        .await;
    let (mut jobs, mut workers) = (jobs(&server).await, workers(&server).await);
    let job = push_job(&mut jobs, push("logs", json!(1))).await;
    let other = push_job(&mut jobs, push("logs", json!(2))).await;
    jobs.cancel_job(pb::CancelJobRequest { queue: "logs".into(), id: other.id.clone() }).await.unwrap();
    let lease =
        pb::LeaseJobsRequest { worker_id: "log-worker".into(), queues: vec!["logs".into()], max_jobs: 1, wait: None };
    workers.lease_jobs(lease).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines: Vec<serde_json::Value> =
        server.logs().lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    // Fields of the event itself, or of the span it happened in.
    let in_event = |key: &str, value: &str| lines.iter().any(|l| l[key] == value);
    let in_span = |key: &str, value: &str| lines.iter().any(|l| l["span"][key] == value);
    assert!(in_event("job", &job.id), "no log line names the pushed job:\n{}", server.logs());
    assert!(in_span("job", &other.id), "no span carries the canceled job's id:\n{}", server.logs());
    assert!(in_span("worker", "log-worker"), "no span carries the worker id:\n{}", server.logs());
}

#[test]
fn help_documents_every_flag_with_its_variable_and_version_prints() {
    let help = Command::new(CHIRPY).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    for variable in [
        "DATABASE_URL",
        "CHIRPY_HOST",
        "CHIRPY_PORT",
        "CHIRPY_LOG",
        "CHIRPY_LOG_FORMAT",
        "CHIRPY_UI",
        "CHIRPY_METRICS",
        "CHIRPY_MAX_PAYLOAD_BYTES",
        "CHIRPY_LEASE_TTL",
        "CHIRPY_RETRY_INITIAL_BACKOFF",
        "CHIRPY_RETRY_MAX_BACKOFF",
        "CHIRPY_CONNECT_TIMEOUT",
        "CHIRPY_SHUTDOWN_GRACE",
    ] {
        assert!(help.contains(&format!("[env: {variable}")), "--help does not mention {variable}:\n{help}");
    }
    let version = Command::new(CHIRPY).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8(version.stdout).unwrap().trim(), format!("chirpy {}", env!("CARGO_PKG_VERSION")));
}
