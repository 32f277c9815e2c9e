//! apalis-board's API at `/api/v1`, as its UI expects it.
//!
//! The reads are apalis-board-api's own handlers on Apalis's own storages
//! (`SqliteStorage`, `PostgresStorage`) for the same database, so the
//! dashboard shows exactly what Apalis records, remote workers included.
//! apalis-board-api registers its per-queue routes once, at start-up; here
//! the storage of a queue is built per request instead (it is a handle on
//! the shared pool, no I/O), so queues created later show too.
//!
//! Pushes from the dashboard (`PUT /queues/{queue}/tasks`) go through
//! Chirpy's own push instead, so they are validated and wake waiting
//! workers like any other push.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use apalis_board_api::{framework::axum as board, sse::TracingBroadcaster};
use apalis_core::backend::{
    Backend, BackendConfig, FetchById, Filter, ListAllTasks, ListQueues, ListTasks, ListWorkers, Metrics,
    WireFormatBackend, codec::Codec,
};
use apalis_core::task::Task;
use axum::{
    Extension, Json, Router,
    extract::{Path, Query},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use chirpy_core::job::JobSpec;
use chirpy_storage::ApalisPool;
use serde_json::Value;
use tokio::sync::RwLock;

use crate::job_service::Jobs;

/// The API on the Apalis storage of `pool`.
pub fn router(pool: ApalisPool, jobs: Jobs, broadcaster: Arc<Mutex<TracingBroadcaster>>) -> Router {
    let routes = match pool {
        ApalisPool::Sqlite(pool) => reads(move |queue| {
            apalis_sqlite::SqliteStorage::<Value>::new(&pool).with_config(apalis_sqlite::Config::default().queue(queue))
        }),
        ApalisPool::Postgres(pool) => reads(move |queue| {
            apalis_postgres::PostgresStorage::<Value>::new(&pool)
                .with_config(apalis_postgres::Config::default().queue(queue))
        }),
        ApalisPool::Redis(conn) => reads(move |queue| {
            apalis_redis::RedisStorage::<Value>::new(conn.clone())
                .with_config(apalis_redis::Config::default().queue(queue))
        }),
        _ => Router::new(),
    };
    routes
        .route(
            "/queues/{queue}/tasks",
            axum::routing::put(move |path, headers, body| push(jobs.clone(), path, headers, body)),
        )
        .route("/events", get(board::sse::new_client))
        .layer(Extension(broadcaster))
}

/// The read routes, on storages made by `storage(queue)`.
fn reads<B, F>(storage: F) -> Router
where
    F: Fn(&str) -> B + Clone + Send + Sync + 'static,
    B: Metrics
        + ListWorkers
        + ListAllTasks
        + ListQueues
        + ListTasks
        + FetchById
        + BackendConfig
        + WireFormatBackend<Compact = Vec<u8>>
        + Backend<Task = Task<Vec<u8>>>
        + Send
        + Sync
        + 'static,
    <B as Backend>::Error: std::error::Error + 'static,
    B::Codec: Codec<Value, Compact = Vec<u8>>,
    <B::Codec as Codec<Value>>::Error: std::error::Error + 'static,
{
    // apalis-board-api's handlers take the storage as an extension.
    let state = move |queue: &str| Extension(Arc::new(RwLock::new(storage(queue))));
    let (s1, s2, s3, s4, s5, s6, s7, s8) = (
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state,
    );
    Router::new()
        .route("/queues", get(move || board::fetch_queues::<B>(s1("default"))))
        .route("/tasks", get(move |filter: Query<Filter>| board::get_all_tasks::<B>(filter, s2("default"))))
        .route("/workers", get(move || board::get_all_workers::<B>(s3("default"))))
        .route("/overview", get(move || board::overview::<B>(s4("default"))))
        .route(
            "/queues/{queue}/tasks",
            get(move |Path(queue): Path<String>, filter: Query<Filter>| {
                board::get_tasks::<B, Value>(filter, s5(&queue))
            }),
        )
        .route(
            "/queues/{queue}/tasks/{task_id}",
            get(move |Path((queue, task_id)): Path<(String, String)>| {
                board::get_task_by_id::<B, Value>(Path(task_id), s6(&queue))
            }),
        )
        .route("/queues/{queue}/stats", get(move |Path(queue): Path<String>| board::stats_by_queue::<B>(s7(&queue))))
        .route("/queues/{queue}/workers", get(move |Path(queue): Path<String>| board::get_workers::<B>(s8(&queue))))
}

/// `PUT /queues/{queue}/tasks`: the JSON body is the payload; apalis-board's
/// `x-task-*` headers carry the schedule, priority, attempts, idempotency
/// key and `x-task-meta-*` metadata.
async fn push(jobs: Jobs, Path(queue): Path<String>, headers: HeaderMap, Json(payload): Json<Value>) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let number = |name: &str| header(name).and_then(|v| v.parse::<i64>().ok());
    let metadata: HashMap<String, String> = headers
        .iter()
        .filter_map(|(name, value)| {
            let key = name.as_str().strip_prefix(apalis_board_api::META_PREFIX)?;
            Some((key.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let spec = JobSpec {
        queue,
        payload: Some(payload),
        scheduled_at: number("x-task-run-at")
            .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)),
        priority: number("x-task-priority").unwrap_or(0).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        max_attempts: number("x-task-max-attempts").unwrap_or(0).clamp(0, i64::from(i32::MAX)) as i32,
        idempotency_key: header("x-task-idempotency-key").unwrap_or_default().to_owned(),
        metadata,
        retry_policy: None,
    };
    let pushed = match spec.validate(&jobs.limits, jobs.default_retry) {
        Ok(new) => jobs.store.push(vec![new]).await,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    match pushed {
        Ok(_) => Json(()).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}
