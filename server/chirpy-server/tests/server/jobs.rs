//! JobService over native gRPC: every RPC and its error paths.

use std::time::{Duration, SystemTime};

use chirpy_proto::v1::{self as pb, JobState};
use chirpy_testing::{TestServer, each_storage};
use serde_json::json;
use tonic::Code;

use crate::support::{CHIRPY, get_job, jobs, json_of, list, push, push_job, server, violated_field};

each_storage!(push_returns_the_stored_job_and_get_reads_it_back, |storage| async move {
    let server = server(storage).await;
    let mut client = jobs(&server).await;
    let mut request = push("email", json!({"to": "user@example.com", "subject": "Welcome", "n": 3}));
    request.priority = 7;
    request.max_attempts = 5;
    request.metadata.insert("tenant".into(), "acme".into());
    let before = SystemTime::now();
    let job = push_job(&mut client, request).await;

    assert_eq!(job.id.len(), 26, "a ULID");
    assert_eq!(job.queue, "email");
    assert_eq!(job.state(), JobState::Pending);
    assert_eq!((job.priority, job.max_attempts, job.attempts), (7, 5, 0));
    assert_eq!(job.metadata.get("tenant").map(String::as_str), Some("acme"));
    let created = SystemTime::try_from(job.created_at.unwrap()).unwrap();
    assert!(created + Duration::from_secs(1) >= before, "created_at comes from the ULID");

    let got = get_job(&mut client, "email", &job.id).await;
    assert_eq!(json_of(got.payload.as_ref().unwrap()), json!({"to": "user@example.com", "subject": "Welcome", "n": 3}));
    assert_eq!(got.id, job.id);
    assert_eq!(got.state(), JobState::Pending);
    assert_eq!(got.metadata, job.metadata);
    assert_eq!(got.scheduled_at, job.scheduled_at);
});

each_storage!(a_future_schedule_is_scheduled_and_a_past_one_pending, |storage| async move {
    let server = server(storage).await;
    let mut client = jobs(&server).await;
    let mut later = push("reports", json!({}));
    later.scheduled_at = Some((SystemTime::now() + Duration::from_secs(3600)).into());
    let job = push_job(&mut client, later).await;
    assert_eq!(job.state(), JobState::Scheduled);
    assert_eq!(get_job(&mut client, "reports", &job.id).await.state(), JobState::Scheduled);

    let mut past = push("reports", json!({}));
    past.scheduled_at = Some(prost_types::Timestamp { seconds: 1_000_000, nanos: 0 });
    let job = push_job(&mut client, past).await;
    assert_eq!(job.state(), JobState::Pending);
    assert_eq!(list(&mut client, "reports", JobState::Scheduled).await.len(), 1);
    assert_eq!(list(&mut client, "reports", JobState::Pending).await.len(), 1);
});

each_storage!(an_idempotency_key_returns_the_existing_job, |storage| async move {
    let server = server(storage).await;
    let mut client = jobs(&server).await;
    let mut first = push("email", json!({"n": 1}));
    first.idempotency_key = "welcome-42".into();
    let response = client.push_job(first.clone()).await.unwrap().into_inner();
    assert!(!response.deduplicated);
    let original = response.job.unwrap();

    let mut again = first.clone();
    again.payload = Some(crate::support::value(json!({"n": 2})));
    let response = client.push_job(again).await.unwrap().into_inner();
    assert!(response.deduplicated);
    assert_eq!(response.job.unwrap().id, original.id);
    assert_eq!(list(&mut client, "email", JobState::Unspecified).await.len(), 1, "no second job");

    // Keys are per queue.
    let mut elsewhere = first;
    elsewhere.queue = "sms".into();
    let other = client.push_job(elsewhere).await.unwrap().into_inner();
    assert!(!other.deduplicated);
    assert_ne!(other.job.unwrap().id, original.id);
});

each_storage!(batch_push_stores_all_in_order_or_nothing, |storage| async move {
    let server = server(storage).await;
    let mut client = jobs(&server).await;
    let mut keyed = push("", json!({"k": 1}));
    keyed.idempotency_key = "same".into();
    let jobs_in = vec![push("", json!({"i": 0})), keyed.clone(), push("bulk", json!({"i": 2})), keyed];
    let response = client
        .batch_push_jobs(pb::BatchPushJobsRequest { queue: "bulk".into(), jobs: jobs_in })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.results.len(), 4);
    let ids: Vec<_> = response.results.iter().map(|r| r.job.as_ref().unwrap().id.clone()).collect();
    assert!(!response.results[1].deduplicated);
    assert!(response.results[3].deduplicated, "the second use of a key within a batch is deduplicated");
    assert_eq!(ids[1], ids[3]);
    let listed: Vec<_> = list(&mut client, "bulk", JobState::Unspecified).await.into_iter().map(|j| j.id).collect();
    assert_eq!(listed, vec![ids[0].clone(), ids[1].clone(), ids[2].clone()], "stored in push order");

    // One bad job rejects the batch, naming it, and stores nothing.
    let mut bad = push("", json!({}));
    bad.priority = -1;
    let err = client
        .batch_push_jobs(pb::BatchPushJobsRequest { queue: "atomic".into(), jobs: vec![push("", json!({})), bad] })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&err), "jobs[1].priority");
    let err = client
        .batch_push_jobs(pb::BatchPushJobsRequest { queue: "atomic".into(), jobs: vec![push("other", json!({}))] })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&err), "jobs[0].queue");
    let err =
        client.batch_push_jobs(pb::BatchPushJobsRequest { queue: "atomic".into(), jobs: vec![] }).await.unwrap_err();
    assert_eq!(violated_field(&err), "jobs");
    let too_many = (0..1001).map(|_| push("", json!(null))).collect();
    let err =
        client.batch_push_jobs(pb::BatchPushJobsRequest { queue: "atomic".into(), jobs: too_many }).await.unwrap_err();
    assert_eq!(violated_field(&err), "jobs");
    assert!(list(&mut client, "atomic", JobState::Unspecified).await.is_empty());
});

each_storage!(list_pages_are_stable_and_tokens_are_checked, |storage| async move {
    let server = server(storage).await;
    let mut client = jobs(&server).await;
    let mut pushed = Vec::new();
    for i in 0..5 {
        pushed.push(push_job(&mut client, push("paged", json!({"i": i}))).await.id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_jobs(pb::ListJobsRequest {
                queue: "paged".into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.jobs.len() <= 2);
        seen.extend(page.jobs.into_iter().map(|j| j.id));
        // A job pushed mid-listing lands after the cursor, not in earlier pages.
        if seen.len() == 2 {
            pushed.push(push_job(&mut client, push("paged", json!({"i": 5}))).await.id);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, pushed);

    let first = client
        .list_jobs(pb::ListJobsRequest { queue: "paged".into(), page_size: 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let other_filter = pb::ListJobsRequest {
        queue: "paged".into(),
        state: JobState::Dead.into(),
        page_size: 1,
        page_token: first.next_page_token.clone(),
    };
    assert_eq!(violated_field(&client.list_jobs(other_filter).await.unwrap_err()), "page_token");
    let garbage = pb::ListJobsRequest { queue: "paged".into(), page_token: "nope".into(), ..Default::default() };
    assert_eq!(violated_field(&client.list_jobs(garbage).await.unwrap_err()), "page_token");
    for page_size in [-1, 1001] {
        let request = pb::ListJobsRequest { queue: "paged".into(), page_size, ..Default::default() };
        assert_eq!(violated_field(&client.list_jobs(request).await.unwrap_err()), "page_size");
    }
    let request = pb::ListJobsRequest { queue: "paged".into(), state: 42, ..Default::default() };
    assert_eq!(violated_field(&client.list_jobs(request).await.unwrap_err()), "state");
    let empty = list(&mut client, "never-pushed", JobState::Unspecified).await;
    assert!(empty.is_empty());
});

each_storage!(cancel_stops_unfinished_jobs_only, |storage| async move {
    let server = server(storage).await;
    let mut client = jobs(&server).await;
    let pending = push_job(&mut client, push("c", json!(1))).await;
    let mut later = push("c", json!(2));
    later.scheduled_at = Some((SystemTime::now() + Duration::from_secs(600)).into());
    let scheduled = push_job(&mut client, later).await;

    for job in [&pending, &scheduled] {
        let canceled = client
            .cancel_job(pb::CancelJobRequest { queue: "c".into(), id: job.id.clone() })
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        assert_eq!(canceled.state(), JobState::Canceled);
        assert!(canceled.finished_at.is_some());
        assert_eq!(get_job(&mut client, "c", &job.id).await.state(), JobState::Canceled);
    }
    let again =
        client.cancel_job(pb::CancelJobRequest { queue: "c".into(), id: pending.id.clone() }).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(again.message().contains("canceled"), "{}", again.message());

    let unknown = ulid_like();
    let err = client.cancel_job(pb::CancelJobRequest { queue: "c".into(), id: unknown }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // A job is found only in its own queue.
    let err = client.cancel_job(pb::CancelJobRequest { queue: "d".into(), id: pending.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client.cancel_job(pb::CancelJobRequest { queue: "c".into(), id: "not-an-id".into() }).await.unwrap_err();
    assert_eq!(violated_field(&err), "id");
    assert_eq!(list(&mut client, "c", JobState::Canceled).await.len(), 2);
});

each_storage!(retry_applies_to_dead_jobs_only, |storage| async move {
    let server = server(storage).await;
    let mut client = jobs(&server).await;
    let job = push_job(&mut client, push("r", json!(1))).await;
    let err = client.retry_job(pb::RetryJobRequest { queue: "r".into(), id: job.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("pending"), "{}", err.message());
    let err = client.retry_job(pb::RetryJobRequest { queue: "r".into(), id: ulid_like() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Dead jobs come from failing workers: see the interop tests.
});

each_storage!(queues_list_per_state_counts, |storage| async move {
    let server = server(storage).await;
    let mut client = jobs(&server).await;
    for _ in 0..3 {
        push_job(&mut client, push("alpha", json!({}))).await;
    }
    let mut later = push("alpha", json!({}));
    later.scheduled_at = Some((SystemTime::now() + Duration::from_secs(600)).into());
    push_job(&mut client, later).await;
    let doomed = push_job(&mut client, push("beta", json!({}))).await;
    client.cancel_job(pb::CancelJobRequest { queue: "beta".into(), id: doomed.id }).await.unwrap();

    let queues = client.list_queues(pb::ListQueuesRequest::default()).await.unwrap().into_inner();
    assert_eq!(queues.next_page_token, "");
    let names: Vec<_> = queues.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    let alpha = &queues.queues[0];
    assert_eq!(
        (alpha.pending, alpha.scheduled, alpha.running, alpha.succeeded, alpha.dead, alpha.canceled),
        (3, 1, 0, 0, 0, 0)
    );
    assert_eq!(queues.queues[1].canceled, 1);

    let first = client
        .list_queues(pb::ListQueuesRequest { page_size: 1, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.queues[0].name, "alpha");
    let second = client
        .list_queues(pb::ListQueuesRequest { page_size: 1, page_token: first.next_page_token })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.queues[0].name, "beta");
    assert_eq!(second.next_page_token, "");
});

each_storage!(bad_input_names_the_field_and_stores_nothing, |storage| async move {
    let server = TestServer::builder(storage).binary(CHIRPY).env("CHIRPY_MAX_PAYLOAD_BYTES", "64").start().await;
    let mut client = jobs(&server).await;
    let far_future = prost_types::Timestamp { seconds: 253_402_300_800, nanos: 0 };
    let cases: Vec<(pb::PushJobRequest, &str)> = vec![
        (push("bad queue", json!({})), "queue"),
        (push(&"q".repeat(129), json!({})), "queue"),
        (push("", json!({})), "queue"),
        (pb::PushJobRequest { queue: "v".into(), ..Default::default() }, "payload"),
        (push("v", json!({"big": "x".repeat(100)})), "payload"),
        (pb::PushJobRequest { priority: -5, ..push("v", json!({})) }, "priority"),
        (pb::PushJobRequest { max_attempts: 1001, ..push("v", json!({})) }, "max_attempts"),
        (pb::PushJobRequest { idempotency_key: "k".repeat(257), ..push("v", json!({})) }, "idempotency_key"),
        (pb::PushJobRequest { scheduled_at: Some(far_future), ..push("v", json!({})) }, "scheduled_at"),
        (
            pb::PushJobRequest {
                scheduled_at: Some(prost_types::Timestamp { seconds: 1, nanos: -1 }),
                ..push("v", json!({}))
            },
            "scheduled_at",
        ),
        (
            pb::PushJobRequest {
                metadata: [("chirpy.internal".to_string(), "x".to_string())].into(),
                ..push("v", json!({}))
            },
            "metadata",
        ),
        (
            pb::PushJobRequest {
                retry_policy: Some(pb::RetryPolicy {
                    initial_backoff: Some(prost_types::Duration { seconds: -1, nanos: 0 }),
                    max_backoff: None,
                }),
                ..push("v", json!({}))
            },
            "retry_policy.initial_backoff",
        ),
    ];
    for (request, field) in cases {
        let err = client.push_job(request).await.unwrap_err();
        assert_eq!(violated_field(&err), field, "{}", err.message());
        assert!(err.message().starts_with(&format!("{field}: ")), "{}", err.message());
    }
    let queues = client.list_queues(pb::ListQueuesRequest::default()).await.unwrap().into_inner();
    assert!(queues.queues.is_empty(), "nothing stored: {queues:?}");

    let err = client.get_job(pb::GetJobRequest { queue: "v".into(), id: "x".into() }).await.unwrap_err();
    assert_eq!(violated_field(&err), "id");
    let err = client.get_job(pb::GetJobRequest { queue: "v".into(), id: ulid_like() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().starts_with("job queues/v/jobs/"), "{}", err.message());
});

each_storage!(a_retry_policy_is_kept_with_the_job, |storage| async move {
    let server = server(storage).await;
    let mut client = jobs(&server).await;
    let mut request = push("policy", json!({}));
    request.retry_policy = Some(pb::RetryPolicy {
        initial_backoff: Some(prost_types::Duration { seconds: 2, nanos: 0 }),
        max_backoff: Some(prost_types::Duration { seconds: 60, nanos: 0 }),
    });
    let job = push_job(&mut client, request.clone()).await;
    let got = get_job(&mut client, "policy", &job.id).await;
    assert_eq!(got.retry_policy, request.retry_policy);
    assert!(got.metadata.is_empty(), "reserved keys stay hidden: {:?}", got.metadata);
});

/// A well-formed id no job has.
fn ulid_like() -> String {
    "01ARZ3NDEKTSV4RRFFQ69G5FAV".into()
}
