//! The worker protocol over gRPC and HTTP: leases, fencing, backoff, the
//! failure queue, cancellation, expiry, priorities, schedules, long polls.

use std::time::{Duration, Instant, SystemTime};

use chirpy_proto::v1::{self as pb, JobState};
use chirpy_testing::{Storage, TestServer, each_storage};
use serde_json::json;
use tonic::Code;

use crate::support::{CHIRPY, get_job, jobs, json_of, push, push_job, value, violated_field, workers};

/// A server whose leases last two seconds, so expiry shows quickly.
async fn short_leases(storage: Storage) -> TestServer {
    TestServer::builder(storage)
        .binary(CHIRPY)
        .env("CHIRPY_LEASE_TTL", "2s")
        .env("CHIRPY_RETRY_INITIAL_BACKOFF", "1s")
        .env("CHIRPY_RETRY_MAX_BACKOFF", "2s")
        .start()
        .await
}

fn lease(worker: &str, queue: &str, max_jobs: i32, wait: Duration) -> pb::LeaseJobsRequest {
    pb::LeaseJobsRequest {
        worker_id: worker.into(),
        queues: vec![queue.into()],
        max_jobs,
        wait: Some(wait.try_into().unwrap()),
    }
}

fn complete(leased: &pb::LeasedJob, result: serde_json::Value) -> pb::CompleteJobRequest {
    let job = leased.job.as_ref().unwrap();
    pb::CompleteJobRequest {
        queue: job.queue.clone(),
        id: job.id.clone(),
        lease_id: leased.lease_id.clone(),
        result: Some(value(result)),
    }
}

fn fail(leased: &pb::LeasedJob, error: &str) -> pb::FailJobRequest {
    let job = leased.job.as_ref().unwrap();
    pb::FailJobRequest {
        queue: job.queue.clone(),
        id: job.id.clone(),
        lease_id: leased.lease_id.clone(),
        error: error.into(),
        ..Default::default()
    }
}

each_storage!(a_lease_runs_the_job_and_a_completion_records_its_result, |storage| async move {
    let server = TestServer::start(storage).await;
    let (mut jobs, mut workers) = (jobs(&server).await, workers(&server).await);
    let pushed = push_job(&mut jobs, push("email", json!({"to": "a@b.c"}))).await;

    let leases = workers.lease_jobs(lease("w1", "email", 5, Duration::ZERO)).await.unwrap().into_inner().leases;
    assert_eq!(leases.len(), 1);
    let job = leases[0].job.as_ref().unwrap();
    assert_eq!((job.id.as_str(), job.state(), job.attempts), (pushed.id.as_str(), JobState::Running, 1));
    assert_eq!(job.lease.as_ref().unwrap().worker_id, "w1");
    assert!(job.lease.as_ref().unwrap().expires_at.is_some());

    let running = get_job(&mut jobs, "email", &pushed.id).await;
    assert_eq!(running.state(), JobState::Running);
    let listed = jobs.list_workers(pb::ListWorkersRequest {}).await.unwrap().into_inner().workers;
    assert_eq!((listed[0].id.as_str(), listed[0].running_jobs, listed[0].kind.as_str()), ("w1", 1, "chirpy"));

    let done = workers.complete_job(complete(&leases[0], json!({"sent": true}))).await.unwrap().into_inner();
    let done = done.job.unwrap();
    assert_eq!(done.state(), JobState::Succeeded);
    assert_eq!(json_of(done.result.as_ref().unwrap()), json!({"sent": true}));
    // Repeating a completion (a lost response, retried) is harmless.
    let again = workers.complete_job(complete(&leases[0], json!({"sent": true}))).await.unwrap();
    assert_eq!(again.into_inner().job.unwrap().state(), JobState::Succeeded);
    // But failing a job that already succeeded is refused.
    let err = workers.fail_job(fail(&leases[0], "late")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
});

each_storage!(failures_back_off_then_go_dead_and_retry_brings_them_back, |storage| async move {
    let server = short_leases(storage).await;
    let (mut jobs, mut workers) = (jobs(&server).await, workers(&server).await);
    let mut request = push("flaky", json!({}));
    request.max_attempts = 2;
    let pushed = push_job(&mut jobs, request).await;

    let first = workers.lease_jobs(lease("w", "flaky", 1, Duration::ZERO)).await.unwrap().into_inner().leases;
    let failed_at = SystemTime::now();
    let job = workers.fail_job(fail(&first[0], "smtp timeout")).await.unwrap().into_inner().job.unwrap();
    assert_eq!(job.state(), JobState::Scheduled, "a failure with attempts left backs off");
    assert_eq!(job.last_error, "smtp timeout");
    let retry_at = SystemTime::try_from(job.scheduled_at.unwrap()).unwrap();
    assert!(retry_at > failed_at, "backoff pushes the next attempt later");
    assert!(retry_at <= failed_at + Duration::from_secs(3), "within the 1s..2s backoff (rounded up)");
    // Not leased before its time...
    let none = workers.lease_jobs(lease("w", "flaky", 1, Duration::ZERO)).await.unwrap().into_inner().leases;
    assert!(none.is_empty());
    // ...and leased once due, by a long poll that waits for it.
    let second = workers.lease_jobs(lease("w", "flaky", 1, Duration::from_secs(10))).await.unwrap().into_inner().leases;
    assert!(SystemTime::now() >= retry_at);
    assert_eq!(second[0].job.as_ref().unwrap().attempts, 2);
    let dead = workers.fail_job(fail(&second[0], "smtp timeout again")).await.unwrap().into_inner().job.unwrap();
    assert_eq!(dead.state(), JobState::Dead, "out of attempts");
    assert!(dead.finished_at.is_some());

    let retried = jobs.retry_job(pb::RetryJobRequest { queue: "flaky".into(), id: pushed.id.clone() }).await.unwrap();
    let retried = retried.into_inner().job.unwrap();
    assert_eq!(
        (retried.state(), retried.attempts, retried.last_error.as_str()),
        (JobState::Pending, 0, "smtp timeout again")
    );
    let third = workers.lease_jobs(lease("w", "flaky", 1, Duration::ZERO)).await.unwrap().into_inner().leases;
    assert_eq!(third.len(), 1, "a retried job runs again");

    // Non-retryable failures go straight to the failure queue, and bulk
    // retry empties it.
    let other = push_job(&mut jobs, push("flaky", json!({"n": 2}))).await;
    let leases = workers.lease_jobs(lease("w", "flaky", 1, Duration::ZERO)).await.unwrap().into_inner().leases;
    let mut request = fail(&leases[0], "no such user");
    request.non_retryable = true;
    let dead = workers.fail_job(request).await.unwrap().into_inner().job.unwrap();
    assert_eq!((dead.id.as_str(), dead.state()), (other.id.as_str(), JobState::Dead));
    let bulk = jobs
        .batch_retry_jobs(pb::BatchRetryJobsRequest { queue: "flaky".into(), ids: vec![] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bulk.retried_ids, vec![other.id.clone()]);
});

each_storage!(a_worker_learns_of_a_cancel_at_its_next_heartbeat, |storage| async move {
    let server = TestServer::start(storage).await;
    let (mut jobs, mut workers) = (jobs(&server).await, workers(&server).await);
    let a = push_job(&mut jobs, push("c", json!(1))).await;
    let b = push_job(&mut jobs, push("c", json!(2))).await;
    let leases = workers.lease_jobs(lease("w", "c", 2, Duration::ZERO)).await.unwrap().into_inner().leases;
    assert_eq!(leases.len(), 2);

    let canceled = jobs.cancel_job(pb::CancelJobRequest { queue: "c".into(), id: a.id.clone() }).await.unwrap();
    assert_eq!(canceled.into_inner().job.unwrap().state(), JobState::Canceled, "a running job is canceled at once");
    let beat = workers
        .heartbeat(pb::HeartbeatRequest {
            worker_id: "w".into(),
            queues: vec!["c".into()],
            running_job_ids: vec![a.id.clone(), b.id.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(beat.canceled_job_ids, vec![a.id.clone()]);
    assert!(beat.lost_job_ids.is_empty());
    assert_eq!(beat.directive(), pb::WorkerDirective::Run);
    assert!(beat.lease_expires_at.is_some() && beat.heartbeat_interval.is_some());

    let leased_a = leases.iter().find(|l| l.job.as_ref().unwrap().id == a.id).unwrap();
    let err = workers.complete_job(complete(leased_a, json!(null))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "the canceled job's outcome is refused");
    assert!(err.message().contains("canceled"), "{}", err.message());
    assert_eq!(get_job(&mut jobs, "c", &a.id).await.state(), JobState::Canceled);
});

each_storage!(an_expired_lease_runs_the_job_again_and_fences_the_old_worker, |storage| async move {
    let server = short_leases(storage).await;
    let (mut jobs, mut workers) = (jobs(&server).await, workers(&server).await);
    let pushed = push_job(&mut jobs, push("x", json!({}))).await;
    let stale = workers.lease_jobs(lease("slow", "x", 1, Duration::ZERO)).await.unwrap().into_inner().leases;
    assert_eq!(stale.len(), 1);

    // "slow" never heartbeats: after the 2 s lease (and the reaper's tick),
    // another worker gets the job, its attempt counted.
    let started = Instant::now();
    let fresh = workers.lease_jobs(lease("fast", "x", 1, Duration::from_secs(15))).await.unwrap().into_inner().leases;
    assert_eq!(fresh.len(), 1, "the job came back");
    assert!(started.elapsed() >= Duration::from_secs(1), "not before the lease expired");
    let job = fresh[0].job.as_ref().unwrap();
    assert_eq!((job.id.as_str(), job.attempts), (pushed.id.as_str(), 2));
    assert_eq!(job.last_error, "lease expired: the worker stopped heartbeating");

    let err = workers.complete_job(complete(&stale[0], json!("stale"))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "a stale lease cannot complete");
    let err = workers.fail_job(fail(&stale[0], "stale")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = workers
        .extend_lease(pb::ExtendLeaseRequest {
            queue: "x".into(),
            id: pushed.id.clone(),
            lease_id: stale[0].lease_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let done = workers.complete_job(complete(&fresh[0], json!("fresh"))).await.unwrap().into_inner().job.unwrap();
    assert_eq!(json_of(done.result.as_ref().unwrap()), json!("fresh"));
});

each_storage!(heartbeats_and_extensions_keep_a_lease, |storage| async move {
    let server = short_leases(storage).await;
    let (mut jobs, mut workers) = (jobs(&server).await, workers(&server).await);
    let a = push_job(&mut jobs, push("long", json!(1))).await;
    let leases = workers.lease_jobs(lease("w", "long", 1, Duration::ZERO)).await.unwrap().into_inner().leases;
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        if round % 2 == 0 {
            let beat =
                pb::HeartbeatRequest { worker_id: "w".into(), queues: vec![], running_job_ids: vec![a.id.clone()] };
            let beat = workers.heartbeat(beat).await.unwrap().into_inner();
            assert!(beat.lost_job_ids.is_empty(), "round {round}: {beat:?}");
        } else {
            let extend =
                pb::ExtendLeaseRequest { queue: "long".into(), id: a.id.clone(), lease_id: leases[0].lease_id.clone() };
            assert!(workers.extend_lease(extend).await.unwrap().into_inner().expires_at.is_some());
        }
    }
    let done = workers.complete_job(complete(&leases[0], json!(1))).await.unwrap().into_inner().job.unwrap();
    assert_eq!((done.state(), done.attempts), (JobState::Succeeded, 1), "held for 3.2 s on a 2 s lease");
});

each_storage!(released_jobs_are_pending_again_without_an_attempt, |storage| async move {
    let server = TestServer::start(storage).await;
    let (mut jobs, mut workers) = (jobs(&server).await, workers(&server).await);
    push_job(&mut jobs, push("r", json!(1))).await;
    let leases = workers.lease_jobs(lease("w", "r", 1, Duration::ZERO)).await.unwrap().into_inner().leases;
    let job = leases[0].job.as_ref().unwrap();
    let release = pb::ReleaseJobsRequest {
        jobs: vec![pb::JobLease { queue: "r".into(), id: job.id.clone(), lease_id: leases[0].lease_id.clone() }],
    };
    let outcome = workers.release_jobs(release.clone()).await.unwrap().into_inner().results;
    let Some(pb::job_outcome::Outcome::Job(released)) = &outcome[0].outcome else { panic!("{outcome:?}") };
    assert_eq!((released.state(), released.attempts), (JobState::Pending, 0));
    let again = workers.release_jobs(release).await.unwrap().into_inner().results;
    assert!(
        matches!(&again[0].outcome, Some(pb::job_outcome::Outcome::Error(s)) if s.code == Code::FailedPrecondition as i32)
    );
});

each_storage!(priority_then_schedule_order_the_leases, |storage| async move {
    let server = TestServer::start(storage).await;
    let (mut jobs, mut workers) = (jobs(&server).await, workers(&server).await);
    let mut pushed = Vec::new();
    for (name, priority) in [("low-1", 0), ("high", 9), ("low-2", 0), ("mid", 5)] {
        let mut request = push("p", json!(name));
        request.priority = priority;
        pushed.push(push_job(&mut jobs, request).await);
    }
    let mut later = push("p", json!("later-high"));
    later.priority = 99;
    later.scheduled_at = Some((SystemTime::now() + Duration::from_secs(3600)).into());
    push_job(&mut jobs, later).await;
    let leases = workers.lease_jobs(lease("w", "p", 10, Duration::ZERO)).await.unwrap().into_inner().leases;
    let order: Vec<_> = leases.iter().map(|l| json_of(l.job.as_ref().unwrap().payload.as_ref().unwrap())).collect();
    assert_eq!(order, [json!("high"), json!("mid"), json!("low-1"), json!("low-2")], "the scheduled job waits");
});

each_storage!(a_lease_over_several_queues_takes_the_best_jobs_of_all, |storage| async move {
    let server = TestServer::start(storage).await;
    let (mut jobs, mut workers) = (jobs(&server).await, workers(&server).await);
    for (queue, name, priority) in [("a", "a-0", 0), ("a", "a-9", 9), ("b", "b-5", 5), ("b", "b-1", 1)] {
        let mut request = push(queue, json!(name));
        request.priority = priority;
        push_job(&mut jobs, request).await;
    }
    let both = |max_jobs| pb::LeaseJobsRequest {
        queues: vec!["a".into(), "b".into()],
        ..lease("w", "a", max_jobs, Duration::ZERO)
    };
    let mut order = Vec::new();
    for max_jobs in [3, 3] {
        let leases = workers.lease_jobs(both(max_jobs)).await.unwrap().into_inner().leases;
        order.push(
            leases.iter().map(|l| json_of(l.job.as_ref().unwrap().payload.as_ref().unwrap())).collect::<Vec<_>>(),
        );
    }
    assert_eq!(order, [vec![json!("a-9"), json!("b-5"), json!("b-1")], vec![json!("a-0")]]);
});

each_storage!(a_push_wakes_a_waiting_lease_at_once, |storage| async move {
    let server = TestServer::start(storage).await;
    let (mut jobs, workers) = (jobs(&server).await, workers(&server).await);
    let mut waiting = workers.clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        let leases =
            waiting.lease_jobs(lease("w", "wake", 1, Duration::from_secs(25))).await.unwrap().into_inner().leases;
        (leases, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    push_job(&mut jobs, push("wake", json!({}))).await;
    let (leases, elapsed) = poll.await.unwrap();
    assert_eq!(leases.len(), 1);
    // Generous: the point is "not at the end of the 25 s wait"; [BENCH]
    // measures the latency itself.
    assert!(elapsed < Duration::from_secs(4), "woken after {elapsed:?}");
});

each_storage!(an_empty_long_poll_returns_after_its_wait, |storage| async move {
    let server = TestServer::start(storage).await;
    let mut workers = workers(&server).await;
    let started = Instant::now();
    let leases = workers.lease_jobs(lease("w", "empty", 1, Duration::from_millis(1500))).await.unwrap().into_inner();
    assert!(leases.leases.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(1400), "{:?}", started.elapsed());
    // A gRPC deadline shorter than the wait ends it early, with an answer.
    let mut request = tonic::Request::new(lease("w", "empty", 1, Duration::from_secs(20)));
    request.set_timeout(Duration::from_secs(1));
    let started = Instant::now();
    assert!(workers.lease_jobs(request).await.unwrap().into_inner().leases.is_empty());
    assert!(started.elapsed() < Duration::from_secs(3));
});

each_storage!(worker_calls_reject_bad_input_naming_the_field, |storage| async move {
    let server = TestServer::builder(storage).binary(CHIRPY).env("CHIRPY_MAX_PAYLOAD_BYTES", "64").start().await;
    let (mut jobs, mut workers) = (jobs(&server).await, workers(&server).await);
    let cases = [
        (pb::LeaseJobsRequest { worker_id: "bad id".into(), ..lease("", "q", 1, Duration::ZERO) }, "worker_id"),
        (pb::LeaseJobsRequest { queues: vec![], ..lease("w", "q", 1, Duration::ZERO) }, "queues"),
        (
            pb::LeaseJobsRequest { queues: vec!["ok".into(), "no way".into()], ..lease("w", "q", 1, Duration::ZERO) },
            "queues[1]",
        ),
        (lease("w", "q", 1001, Duration::ZERO), "max_jobs"),
        (lease("w", "q", 1, Duration::from_secs(31)), "wait"),
    ];
    for (request, field) in cases {
        assert_eq!(violated_field(&workers.lease_jobs(request).await.unwrap_err()), field);
    }
    push_job(&mut jobs, push("q", json!(1))).await;
    let leases = workers.lease_jobs(lease("w", "q", 1, Duration::ZERO)).await.unwrap().into_inner().leases;
    let mut bad_lease = complete(&leases[0], json!(1));
    bad_lease.lease_id = "forged".into();
    assert_eq!(violated_field(&workers.complete_job(bad_lease).await.unwrap_err()), "lease_id");
    let too_big = complete(&leases[0], json!("x".repeat(100)));
    assert_eq!(violated_field(&workers.complete_job(too_big).await.unwrap_err()), "result");
    let batch = pb::BatchCompleteJobsRequest { jobs: vec![] };
    assert_eq!(violated_field(&workers.batch_complete_jobs(batch).await.unwrap_err()), "jobs");
    let mut bad_id = fail(&leases[0], "x");
    bad_id.id = "nope".into();
    let batch = pb::BatchFailJobsRequest { jobs: vec![fail(&leases[0], "x"), bad_id] };
    assert_eq!(violated_field(&workers.batch_fail_jobs(batch).await.unwrap_err()), "jobs[1].id");
    let beat = pb::HeartbeatRequest { worker_id: "w".into(), queues: vec![], running_job_ids: vec!["zzz".into()] };
    assert_eq!(violated_field(&workers.heartbeat(beat).await.unwrap_err()), "running_job_ids[0]");
    // A very long error is kept, cut to 16 KiB.
    let job = workers.fail_job(fail(&leases[0], &"e".repeat(40_000))).await.unwrap().into_inner().job.unwrap();
    assert!(job.last_error.len() <= 16 * 1024 && job.last_error.ends_with("[truncated]"));
});

each_storage!(a_curl_only_worker_leases_and_completes_over_http, |storage| async move {
    let server = TestServer::start(storage).await;
    let mut jobs = jobs(&server).await;
    let pushed = push_job(&mut jobs, push("shell", json!({"to": "user@example.com"}))).await;
    // A worker as a shell script: curl for the calls, python3 to read JSON.
    let script = r#"
        set -eu
        lease=$(curl -sf -X POST "$URL/workers/sh-worker:lease" -H 'content-type: application/json' \
                     -d '{"queues": ["shell"], "max_jobs": 1, "wait": "5s"}')
        id=$(printf '%s' "$lease" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leases"][0]["job"]["id"])')
        lease_id=$(printf '%s' "$lease" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leases"][0]["leaseId"])')
        curl -sf -X POST "$URL/workers/sh-worker:heartbeat" -H 'content-type: application/json' \
             -d "{\"queues\": [\"shell\"], \"running_job_ids\": [\"$id\"]}" > /dev/null
        curl -sf -X POST "$URL/queues/shell/jobs/$id:complete" -H 'content-type: application/json' \
             -d "{\"lease_id\": \"$lease_id\", \"result\": {\"sent\": true}}"
    "#;
    let output = std::process::Command::new("sh").arg("-c").arg(script).env("URL", server.url()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let done = get_job(&mut jobs, "shell", &pushed.id).await;
    assert_eq!(done.state(), JobState::Succeeded);
    assert_eq!(json_of(done.result.as_ref().unwrap()), json!({"sent": true}));
});

each_storage!(a_killed_worker_process_loses_its_job_to_another, |storage| async move {
    let server = short_leases(storage).await;
    let mut jobs = jobs(&server).await;
    let pushed = push_job(&mut jobs, push("crash", json!({}))).await;
    // A worker process that leases the job, then hangs until killed.
    let script = r#"curl -sf -X POST "$URL/workers/doomed:lease" -H 'content-type: application/json' \
                       -d '{"queues": ["crash"], "max_jobs": 1, "wait": "5s"}' > /dev/null && exec sleep 600"#;
    let mut victim = std::process::Command::new("sh").arg("-c").arg(script).env("URL", server.url()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_job(&mut jobs, "crash", &pushed.id).await.state() != JobState::Running {
        assert!(Instant::now() < deadline, "the doomed worker never leased the job");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    chirpy_testing::server::signal(victim.id(), "KILL");
    victim.wait().unwrap();

    let mut survivor = workers(&server).await;
    let leases =
        survivor.lease_jobs(lease("survivor", "crash", 1, Duration::from_secs(15))).await.unwrap().into_inner();
    let job = leases.leases[0].job.as_ref().unwrap();
    assert_eq!((job.id.as_str(), job.attempts), (pushed.id.as_str(), 2), "delivered again, attempt counted");
});

/// A push through one server instance wakes a lease waiting in another on
/// the same database (PostgreSQL `NOTIFY`, Redis pub/sub; SQLite has one
/// instance).
async fn a_push_wakes_a_lease_waiting_in_another_instance(storage: Storage) {
    let first = TestServer::start(storage).await;
    let second = TestServer::builder(storage).database_url(first.database_url()).start().await;
    let mut waiting = workers(&second).await;
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        let leases =
            waiting.lease_jobs(lease("w", "across", 1, Duration::from_secs(25))).await.unwrap().into_inner().leases;
        (leases, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    push_job(&mut jobs(&first).await, push("across", json!({}))).await;
    let (leases, elapsed) = poll.await.unwrap();
    assert_eq!(leases.len(), 1);
    // Under the 5 s re-check a missed wake-up would fall back to.
    assert!(elapsed < Duration::from_secs(4), "woken after {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_wakes_a_lease_waiting_in_another_instance_on_postgres() {
    a_push_wakes_a_lease_waiting_in_another_instance(Storage::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_wakes_a_lease_waiting_in_another_instance_on_redis() {
    a_push_wakes_a_lease_waiting_in_another_instance(Storage::Redis).await;
}
