//! apalis-board's API at `/api/v1`, as its UI expects it, answered from
//! Chirpy's own store.
//!
//! apalis-board-api's own handlers read through Apalis's storages, which
//! differ by storage (apalis-redis 1.0 cannot list its queues at all). The
//! reads here go through Chirpy's [`JobStore`](chirpy_storage::JobStore),
//! which lists every state on every storage, and answer in apalis-board's
//! own types ([`board`](super::board)), so the UI reads them as it reads Apalis's. Queues
//! are looked up per request, so queues created after start-up show, and
//! read by their stored names, so queues an embedded Apalis producer named
//! (`my_app::Email`) open too; pushes still need a valid Chirpy name.
//!
//! Pushes from the dashboard (`PUT /queues/{queue}/tasks`) go through
//! Chirpy's own push, so they are validated and wake waiting workers like
//! any other push.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use apalis_board_api::{RawTask, framework::axum::sse, sse::TracingBroadcaster};
use apalis_core::backend::{Filter, QueueInfo, RunningWorker, Statistic};
use axum::{
    Extension, Json, Router,
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::get,
};
use chirpy_core::{
    Error, Job, JobId, QueueName, Result, job::JobSpec, limits::MAX_PAGE_SIZE, page::PageRequest, queue::QueueStats,
    worker::WorkerInfo,
};
use serde_json::Value;

use super::board;
use crate::{job_service::Jobs, status::to_status};

/// The deepest a dashboard page may reach into a list, in jobs: pages are
/// numbered, and the store is read from the start of the list up to them.
pub const MAX_PAGE_DEPTH: u32 = 10_000;

/// Workers silent for longer are not shown (as in `ListWorkers`).
const RECENT_WORKERS: Duration = Duration::from_secs(5 * 60);

/// The API's routes.
pub fn router(jobs: Jobs, broadcaster: Arc<Mutex<TracingBroadcaster>>) -> Router {
    Router::new()
        .route("/queues", get(queues))
        .route("/overview", get(overview))
        .route("/tasks", get(all_tasks))
        .route("/workers", get(all_workers))
        .route("/queues/{queue}/tasks", get(queue_tasks).put(push))
        .route("/queues/{queue}/tasks/{task_id}", get(task))
        .route("/queues/{queue}/stats", get(queue_stats))
        .route("/queues/{queue}/workers", get(queue_workers))
        .route("/events", get(sse::new_client))
        .layer(Extension(broadcaster))
        .with_state(jobs)
}

/// A failed read or push, answered with the HTTP status of its kind.
struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // As the HTTP/JSON API answers the same error (storage causes are
        // logged, not shown).
        let status = to_status(self.0);
        (chirpy_transcode::http_status(status.code()), status.message().to_owned()).into_response()
    }
}

type Reply<T> = std::result::Result<Json<T>, ApiError>;

/// `GET /queues`: every queue holding jobs, with its counts and workers.
async fn queues(State(jobs): State<Jobs>) -> Reply<Vec<QueueInfo>> {
    let workers = jobs.store.workers(SystemTime::now() - RECENT_WORKERS).await?;
    let queues = jobs.store.all_queues().await?;
    Ok(Json(queues.iter().map(|stats| board::queue_info(stats, &workers)).collect()))
}

/// `GET /overview`: the counts over every queue.
async fn overview(State(jobs): State<Jobs>) -> Reply<Vec<Statistic>> {
    let queues = jobs.store.all_queues().await?;
    let total = queues.iter().fold(QueueStats { name: String::new(), ..Default::default() }, |mut sum, q| {
        sum.pending += q.pending;
        sum.scheduled += q.scheduled;
        sum.running += q.running;
        sum.succeeded += q.succeeded;
        sum.dead += q.dead;
        sum.canceled += q.canceled;
        sum
    });
    Ok(Json(board::statistics(&total)))
}

/// `GET /queues/{queue}/stats`: one queue's counts (zeros for a queue
/// without jobs).
async fn queue_stats(State(jobs): State<Jobs>, Path(queue): Path<String>) -> Reply<Vec<Statistic>> {
    let queue = QueueName::stored(&queue)?;
    let stats = jobs.store.all_queues().await?.into_iter().find(|q| q.name == queue.as_str());
    Ok(Json(board::statistics(&stats.unwrap_or_default())))
}

/// `GET /workers`: the workers heard from lately.
async fn all_workers(State(jobs): State<Jobs>) -> Reply<Vec<RunningWorker>> {
    let workers = jobs.store.workers(SystemTime::now() - RECENT_WORKERS).await?;
    Ok(Json(workers.iter().map(board::running_worker).collect()))
}

/// `GET /queues/{queue}/workers`: those of them that work `queue`.
async fn queue_workers(State(jobs): State<Jobs>, Path(queue): Path<String>) -> Reply<Vec<RunningWorker>> {
    let queue = QueueName::stored(&queue)?;
    let workers = jobs.store.workers(SystemTime::now() - RECENT_WORKERS).await?;
    let works_queue = |w: &&WorkerInfo| w.queues.iter().any(|q| q == queue.as_str());
    Ok(Json(workers.iter().filter(works_queue).map(board::running_worker).collect()))
}

/// `GET /queues/{queue}/tasks?status=&page=&page_size=`: one page of a
/// queue's jobs, oldest first.
async fn queue_tasks(
    State(jobs): State<Jobs>,
    Path(queue): Path<String>,
    Query(filter): Query<Filter>,
) -> Reply<Vec<RawTask<Value>>> {
    let queue = QueueName::stored(&queue)?;
    let (skip, take) = window(&filter)?;
    let found = first_jobs(&jobs, &queue, &filter, skip + take).await?;
    Ok(Json(found.into_iter().skip(skip).map(|job| RawTask(board::task(job))).collect()))
}

/// `GET /tasks?status=&page=&page_size=`: one page of the jobs of every
/// queue, oldest first.
async fn all_tasks(State(jobs): State<Jobs>, Query(filter): Query<Filter>) -> Reply<Vec<RawTask<Value>>> {
    let (skip, take) = window(&filter)?;
    let mut found = Vec::new();
    for stats in jobs.store.all_queues().await? {
        found.extend(first_jobs(&jobs, &QueueName::stored(&stats.name)?, &filter, skip + take).await?);
    }
    found.sort_by_key(|job| job.id);
    Ok(Json(found.into_iter().skip(skip).take(take).map(|job| RawTask(board::task(job))).collect()))
}

/// `GET /queues/{queue}/tasks/{task_id}`: one job.
async fn task(State(jobs): State<Jobs>, Path((queue, id)): Path<(String, String)>) -> Reply<RawTask<Value>> {
    let job = jobs.store.get(&QueueName::stored(&queue)?, JobId::parse(&id)?).await?;
    Ok(Json(RawTask(board::task(job))))
}

/// The jobs to skip and to show for the page `filter` asks for.
fn window(filter: &Filter) -> Result<(usize, usize)> {
    let size = filter.page_size.unwrap_or(10);
    if size == 0 || size > MAX_PAGE_SIZE {
        return Err(Error::invalid("page_size", format!("must be between 1 and {MAX_PAGE_SIZE}, got {size}")));
    }
    let skip = filter.page.checked_sub(1).and_then(|pages| pages.checked_mul(size));
    match skip {
        Some(skip) if skip.saturating_add(size) <= MAX_PAGE_DEPTH => Ok((skip as usize, size as usize)),
        _ => Err(Error::invalid(
            "page",
            format!("must be at least 1, and reach at most {MAX_PAGE_DEPTH} jobs deep with page_size {size}"),
        )),
    }
}

/// The first `count` jobs of `queue` in the states of `filter`'s status,
/// oldest first.
async fn first_jobs(jobs: &Jobs, queue: &QueueName, filter: &Filter, count: usize) -> Result<Vec<Job>> {
    let mut found = Vec::new();
    for state in board::states(filter.status.as_ref()) {
        let key = format!("dashboard/{queue}/{}", state.map_or("any", |s| s.as_str()));
        let mut token = String::new();
        let before = found.len();
        loop {
            let want = (count - (found.len() - before)).min(MAX_PAGE_SIZE as usize);
            let page = PageRequest::parse(want as i32, &token, key.clone())?;
            let listed = jobs.store.list(queue, state, &page).await?;
            found.extend(listed.items);
            match listed.next_page_token {
                Some(next) if found.len() - before < count => token = next,
                _ => break,
            }
        }
    }
    found.sort_by_key(|job| job.id);
    found.truncate(count);
    Ok(found)
}

/// `PUT /queues/{queue}/tasks`: the JSON body is the payload; apalis-board's
/// `x-task-*` headers carry the schedule, priority, attempts, idempotency
/// key and `x-task-meta-*` metadata.
async fn push(
    State(jobs): State<Jobs>,
    Path(queue): Path<String>,
    headers: HeaderMap,
    Json(payload): Json<Value>,
) -> Reply<()> {
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
    let new = spec.validate(&jobs.limits, jobs.default_retry)?;
    jobs.store.push(vec![new]).await?;
    Ok(Json(()))
}
