//! The client steps: one `chirpy_client::Client` call each.

use std::{collections::BTreeMap, time::Duration};

use chirpy_client::{Client, Error, PushOptions, proto as pb};
use chirpy_conformance_runner::shape;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::Reply;

/// A job to push, as the protocol spells it.
#[derive(Deserialize)]
struct NewJob {
    payload: Value,
    scheduled_at: Option<String>,
    priority: Option<i32>,
    max_attempts: Option<i32>,
    idempotency_key: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    backoff: Option<Backoff>,
}

#[derive(Deserialize)]
struct Backoff {
    initial_ms: u64,
    max_ms: u64,
}

impl NewJob {
    fn options(&self) -> Result<PushOptions, Reply> {
        let mut options = PushOptions::new();
        if let Some(at) = &self.scheduled_at {
            let at: prost_types::Timestamp =
                at.parse().map_err(|e| Reply::Unsupported(format!("scheduled_at {at:?}: {e}")))?;
            let at = at.try_into().map_err(|e| Reply::Unsupported(format!("scheduled_at: {e}")))?;
            options = options.scheduled_at(at);
        }
        if let Some(priority) = self.priority {
            options = options.priority(priority);
        }
        if let Some(max_attempts) = self.max_attempts {
            options = options.max_attempts(max_attempts);
        }
        if let Some(key) = &self.idempotency_key {
            options = options.idempotency_key(key);
        }
        for (key, value) in &self.metadata {
            options = options.metadata(key, value);
        }
        if let Some(backoff) = &self.backoff {
            options =
                options.retry_policy(Duration::from_millis(backoff.initial_ms), Duration::from_millis(backoff.max_ms));
        }
        Ok(options)
    }
}

#[derive(Deserialize)]
struct Push {
    queue: String,
    #[serde(flatten)]
    job: NewJob,
}

#[derive(Deserialize)]
struct BatchPush {
    queue: String,
    jobs: Vec<NewJob>,
}

#[derive(Deserialize)]
struct JobRef {
    queue: String,
    id: String,
}

#[derive(Deserialize)]
struct List {
    queue: String,
    state: Option<String>,
    #[serde(default)]
    page_size: i32,
    page_token: Option<String>,
}

#[derive(Deserialize)]
struct RetryDead {
    queue: String,
    #[serde(default)]
    ids: Vec<String>,
}

/// Runs client step `kind`.
pub async fn run(client: &Client, kind: &str, args: Value) -> Reply {
    match kind {
        "push" => {
            with(args, |a: Push| async move {
                let options = a.job.options()?;
                Ok(sdk(client.push_with(&a.queue, &a.job.payload, options).await.map(|p| shape::job(&p.job))))
            })
            .await
        }
        "batch_push" => {
            with(args, |a: BatchPush| async move {
                let jobs = a.jobs.iter().map(|j| Ok((&j.payload, j.options()?))).collect::<Result<Vec<_>, Reply>>()?;
                let pushed = client.batch_push_with(&a.queue, jobs).await;
                Ok(sdk(pushed.map(|p| json!({"jobs": p.iter().map(|p| shape::job(&p.job)).collect::<Vec<_>>()}))))
            })
            .await
        }
        "get" => {
            with(args, |a: JobRef| async move { Ok(sdk(client.get(&a.queue, &a.id).await.map(|j| shape::job(&j)))) })
                .await
        }
        "cancel" => {
            with(args, |a: JobRef| async move { Ok(sdk(client.cancel(&a.queue, &a.id).await.map(|j| shape::job(&j)))) })
                .await
        }
        "retry" => {
            with(args, |a: JobRef| async move { Ok(sdk(client.retry(&a.queue, &a.id).await.map(|j| shape::job(&j)))) })
                .await
        }
        "list" => {
            with(args, |a: List| async move {
                let state = match a.state.as_deref().map(|s| (s, shape::parse_state(s))) {
                    None => None,
                    Some((_, Some(state))) => Some(state),
                    Some((name, None)) => return Err(Reply::Unsupported(format!("state {name:?}"))),
                };
                let page = client.list(&a.queue, state, a.page_size, a.page_token).await;
                Ok(sdk(page.map(|(jobs, next)| {
                    json!({
                        "jobs": jobs.iter().map(shape::job).collect::<Vec<_>>(),
                        "next_page_token": next.unwrap_or_default(),
                    })
                })))
            })
            .await
        }
        "retry_dead" => {
            with(args, |a: RetryDead| async move {
                if !a.ids.is_empty() {
                    return Err(Reply::Unsupported(
                        "chirpy-client retries every dead job of a queue, not chosen ones".into(),
                    ));
                }
                Ok(sdk(client.retry_dead(&a.queue).await.map(|ids| json!({"ids": ids}))))
            })
            .await
        }
        "queues" => sdk(client.queues().await.map(|queues| {
            let queues: Vec<Value> = queues.iter().map(queue).collect();
            json!({"queues": queues})
        })),
        "workers" => sdk(client.workers().await.map(|workers| {
            let workers: Vec<Value> = workers
                .iter()
                .map(|w| json!({"id": w.id, "queues": w.queues, "running_jobs": w.running_jobs}))
                .collect();
            json!({"workers": workers})
        })),
        other => Reply::Unsupported(format!("unknown kind {other}")),
    }
}

fn queue(queue: &pb::Queue) -> Value {
    json!({
        "name": queue.name,
        "pending": queue.pending,
        "scheduled": queue.scheduled,
        "running": queue.running,
        "succeeded": queue.succeeded,
        "dead": queue.dead,
        "canceled": queue.canceled,
    })
}

/// Parses `args` as `A` and runs `step` with them.
async fn with<A: DeserializeOwned, F: Future<Output = Result<Reply, Reply>>>(
    args: Value,
    step: impl FnOnce(A) -> F,
) -> Reply {
    match serde_json::from_value(args) {
        Ok(args) => step(args).await.unwrap_or_else(|reply| reply),
        Err(err) => Reply::bad_args(err),
    }
}

/// The SDK's answer as a reply: its error with the gRPC code it carries.
fn sdk(result: Result<Value, Error>) -> Reply {
    match result {
        Ok(value) => Reply::Result(value),
        Err(err) => Reply::Error(err.code().map_or_else(|| "UNKNOWN".to_owned(), shape::code), err.to_string()),
    }
}
