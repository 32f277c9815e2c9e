//! The scenarios. Each returns rows: a figure for Chirpy, the same figure
//! for embedded Apalis on the same storage, and their ratio.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use chirpy_testing::Storage;
use http_body_util::Full;
use hyper_util::{client::legacy::Client as HttpClient, rt::TokioExecutor};
use serde_json::{Value, json};

use crate::{
    Scale,
    bed::{Bed, Embedded, Wake},
    probe::Probe,
    process,
    report::Row,
};

/// The groups of scenarios, as `--only` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Group {
    /// Push throughput: gRPC unary, batches of 100 and 1,000, HTTP/JSON.
    Push,
    /// End-to-end burn-down of pre-pushed jobs.
    Drain,
    /// Push-to-start latency at a steady rate.
    Steady,
    /// Idle cost and memory.
    Idle,
}

/// The scenarios of `groups` on `storage`.
pub async fn all(storage: Storage, scale: &Scale, groups: &[Group]) -> Vec<Row> {
    let mut rows = Vec::new();
    if groups.contains(&Group::Push) {
        rows.push(push_unary(storage, scale).await);
        for batch in [100, 1000] {
            rows.push(push_batch(storage, scale, batch).await);
        }
        rows.push(push_http(storage, scale).await);
    }
    if groups.contains(&Group::Drain) {
        rows.push(drain(storage, scale).await);
    }
    if groups.contains(&Group::Steady) {
        rows.extend(steady_latency(storage, scale).await);
    }
    if groups.contains(&Group::Idle) {
        rows.extend(idle(storage, scale).await);
    }
    rows
}

fn payloads(count: usize) -> Vec<Value> {
    (0..count).map(|i| json!({"n": i, "to": "user@example.com"})).collect()
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Pushes one job per call over gRPC, from `producers` concurrent tasks.
async fn push_unary(storage: Storage, scale: &Scale) -> Row {
    let bed = Bed::start(storage).await;
    let cpu = process::cpu_seconds(bed.server.pid());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chunk in payloads(scale.push_unary).chunks(scale.push_unary.div_ceil(scale.producers)) {
        let (client, chunk) = (bed.client.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for payload in chunk {
                client.push("bench", &payload).await.expect("push");
            }
        }));
    }
    for task in tasks {
        task.await.expect("producer");
    }
    let chirpy = per_second(scale.push_unary, started.elapsed());
    let server = (process::cpu_seconds(bed.server.pid()) - cpu, process::peak_rss_mib(bed.server.pid()));

    let apalis = embedded_one_by_one(storage, scale).await;
    Row::new("push, gRPC unary", storage, "jobs/s", chirpy, Some(apalis)).server(server)
}

/// Embedded Apalis pushing `scale.push_unary` jobs one by one from
/// `scale.producers` tasks: jobs per second.
async fn embedded_one_by_one(storage: Storage, scale: &Scale) -> f64 {
    let embedded = Arc::new(Embedded::start(storage).await);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chunk in payloads(scale.push_unary).chunks(scale.push_unary.div_ceil(scale.producers)) {
        let (embedded, chunk) = (embedded.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move { embedded.push("bench", chunk, 1).await }));
    }
    for task in tasks {
        task.await.expect("producer");
    }
    per_second(scale.push_unary, started.elapsed())
}

/// Pushes `batch` jobs per call over gRPC (embedded: `push_all` of `batch`).
async fn push_batch(storage: Storage, scale: &Scale, batch: usize) -> Row {
    let bed = Bed::start(storage).await;
    let cpu = process::cpu_seconds(bed.server.pid());
    let started = Instant::now();
    for chunk in payloads(scale.push_batch).chunks(batch) {
        bed.client.batch_push("bench", chunk.to_vec()).await.expect("batch push");
    }
    let chirpy = per_second(scale.push_batch, started.elapsed());
    let server = (process::cpu_seconds(bed.server.pid()) - cpu, process::peak_rss_mib(bed.server.pid()));

    let embedded = Embedded::start(storage).await;
    let started = Instant::now();
    embedded.push("bench", payloads(scale.push_batch), batch).await;
    let apalis = per_second(scale.push_batch, started.elapsed());
    Row::new(&format!("push, gRPC batch of {batch}"), storage, "jobs/s", chirpy, Some(apalis)).server(server)
}

/// Pushes one job per request over HTTP/JSON; the baseline is embedded
/// Apalis's one-by-one push.
async fn push_http(storage: Storage, scale: &Scale) -> Row {
    let bed = Bed::start(storage).await;
    let http: HttpClient<_, Full<Bytes>> = HttpClient::builder(TokioExecutor::new()).build_http();
    let url = format!("{}/queues/bench/jobs", bed.server.url());
    let cpu = process::cpu_seconds(bed.server.pid());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chunk in payloads(scale.push_unary).chunks(scale.push_unary.div_ceil(scale.producers)) {
        let (http, url, chunk) = (http.clone(), url.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for payload in chunk {
                let body = Bytes::from(json!({"payload": payload}).to_string());
                let request = http::Request::post(&url)
                    .header("content-type", "application/json")
                    .body(Full::new(body))
                    .expect("a request");
                let response = http.request(request).await.expect("POST");
                assert!(response.status().is_success(), "{}", response.status());
            }
        }));
    }
    for task in tasks {
        task.await.expect("producer");
    }
    let chirpy = per_second(scale.push_unary, started.elapsed());
    let server = (process::cpu_seconds(bed.server.pid()) - cpu, process::peak_rss_mib(bed.server.pid()));

    let apalis = embedded_one_by_one(storage, scale).await;
    Row::new("push, HTTP/JSON", storage, "jobs/s", chirpy, Some(apalis)).server(server)
}

/// Burn-down: `drain` no-op jobs pushed first, then worked off by remote
/// workers (embedded: by embedded workers). A side that has not finished
/// within `scale.drain_budget` is measured on the jobs it ran by then (noted).
async fn drain(storage: Storage, scale: &Scale) -> Row {
    let bed = Bed::start(storage).await;
    for chunk in payloads(scale.drain).chunks(1000) {
        bed.client.batch_push("bench", chunk.to_vec()).await.expect("batch push");
    }
    let probe = Probe::new(scale.drain);
    let cpu = process::cpu_seconds(bed.server.pid());
    let started = Instant::now();
    let workers = bed.workers("bench", scale.workers, scale, &probe).await;
    let chirpy_cut = within_budget(&probe, scale).await;
    let chirpy = per_second(probe.ran(), started.elapsed());
    let server = (process::cpu_seconds(bed.server.pid()) - cpu, process::peak_rss_mib(bed.server.pid()));
    workers.stop().await;

    let name = format!("end to end, burn-down of {}", scale.drain);
    let cut = |side: &str, cut: Option<usize>| {
        cut.map(|ran| format!("{side} stopped after {} s at {ran} jobs", scale.drain_budget.as_secs()))
    };
    if storage == Storage::Redis && scale.drain > APALIS_REDIS_MAX_DUE {
        let note = [cut("Chirpy", chirpy_cut), Some(APALIS_REDIS_NOTE.to_owned())];
        return Row::new(&name, storage, "jobs/s", chirpy, None).server(server).note(&joined(&note));
    }

    let mut embedded = Embedded::start(storage).await;
    embedded.push("bench", payloads(scale.drain), 1000).await;
    let probe = Probe::new(scale.drain);
    let started = Instant::now();
    let workers = embedded.workers("bench", scale.workers, scale, &probe, Wake::Poll);
    let embedded_cut = within_budget(&probe, scale).await;
    let apalis = per_second(probe.ran(), started.elapsed());
    workers.stop().await;
    let note = [cut("Chirpy", chirpy_cut), cut("embedded", embedded_cut)];
    Row::new(&name, storage, "jobs/s", chirpy, Some(apalis)).server(server).note(&joined(&note))
}

/// About how many due jobs an apalis-redis 1.0 fetch can move at once: its
/// script passes them all to one `unpack`, which Redis's Lua refuses beyond
/// its stack (`too many results to unpack`), and every worker stops.
const APALIS_REDIS_MAX_DUE: usize = 8_000;

const APALIS_REDIS_NOTE: &str = "no embedded baseline: apalis-redis 1.0 workers stop on a backlog of more than \
    about 8,000 due jobs (`too many results to unpack` in its fetch script)";

fn joined(notes: &[Option<String>]) -> String {
    notes.iter().flatten().cloned().collect::<Vec<_>>().join("; ")
}

/// Waits for `probe`'s target within `scale.drain_budget`; `Some(jobs run)`
/// when the budget ran out first.
async fn within_budget(probe: &Probe, scale: &Scale) -> Option<usize> {
    let finished = tokio::time::timeout(scale.drain_budget, probe.done()).await.is_ok();
    (!finished).then(|| probe.ran())
}

/// Steady pushes at `rate` per second with workers waiting: push-to-start
/// latency percentiles.
async fn steady_latency(storage: Storage, scale: &Scale) -> Vec<Row> {
    let total = scale.rate as usize * scale.steady_secs as usize;
    let tick = Duration::from_secs(1) / scale.rate;

    let bed = Bed::start(storage).await;
    let probe = Probe::new(total);
    let workers = bed.workers("steady", scale.workers, scale, &probe).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = process::cpu_seconds(bed.server.pid());
    let mut pacer = tokio::time::interval(tick);
    pacer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..total {
        pacer.tick().await;
        let client = bed.client.clone();
        tokio::spawn(async move { client.push("steady", &json!({"n": i})).await.expect("push") });
    }
    let finished = tokio::time::timeout(Duration::from_secs(60), probe.done()).await.is_ok();
    let server = (process::cpu_seconds(bed.server.pid()) - cpu, process::peak_rss_mib(bed.server.pid()));
    let chirpy = [probe.latency_ms(0.5), probe.latency_ms(0.95), probe.latency_ms(0.99)];
    workers.stop().await;

    let mut embedded = Embedded::start(storage).await;
    let probe = Probe::new(total);
    let workers = embedded.workers("steady", scale.workers, scale, &probe, Wake::Poll);
    let embedded = Arc::new(embedded);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut pacer = tokio::time::interval(tick);
    pacer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..total {
        pacer.tick().await;
        let embedded = embedded.clone();
        tokio::spawn(async move { embedded.push("steady", vec![json!({"n": i})], 1).await });
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), probe.done()).await;
    let apalis = [probe.latency_ms(0.5), probe.latency_ms(0.95), probe.latency_ms(0.99)];
    workers.stop().await;

    let name = format!("push to start at {}/s", scale.rate);
    let note = if finished { String::new() } else { "not every job started within 60 s".into() };
    ["p50", "p95", "p99"]
        .iter()
        .zip(chirpy.iter().zip(apalis))
        .map(|(p, (c, a))| Row::new(&name, storage, &format!("{p} ms"), *c, Some(a)).server(server).note(&note))
        .collect()
}

/// Workers waiting on an empty queue: storage operations per second per
/// waiting worker (counted by the storage itself), and the server's memory.
async fn idle(storage: Storage, scale: &Scale) -> Vec<Row> {
    let bed = Bed::start(storage).await;
    let idle_rss = process::rss_mib(bed.server.pid());
    let probe = Probe::new(usize::MAX);
    let workers = bed.workers("idle", scale.idle_workers, scale, &probe).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let chirpy = operations_per_second(storage, Some(bed.server.database_url()), scale).await;
    let peak = process::peak_rss_mib(bed.server.pid());
    workers.stop().await;
    drop(bed);

    let mut embedded = Embedded::start(storage).await;
    let workers = embedded.workers("idle", scale.idle_workers, scale, &probe, Wake::Listen);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let apalis = operations_per_second(storage, embedded.postgres_url(), scale).await;
    workers.stop().await;

    let per_worker = |ops: Option<f64>| ops.map(|ops| ops / scale.idle_workers as f64);
    let mut rows = vec![Row::new("server memory at start", storage, "RSS MiB", idle_rss, None)];
    rows.push(Row::new(&format!("{} workers idle", scale.idle_workers), storage, "peak RSS MiB", peak, None));
    if let Some(chirpy) = per_worker(chirpy) {
        let unit = "storage ops/s per worker";
        rows.push(Row::new(&format!("{} workers idle", scale.idle_workers), storage, unit, chirpy, per_worker(apalis)));
    }
    rows
}

/// Operations per second the storage does while idle, as it counts them:
/// PostgreSQL's committed transactions on the database of `url` (every
/// autocommit statement is one), Redis's processed commands (the server is
/// this run's own). SQLite counts nothing.
async fn operations_per_second(storage: Storage, url: Option<&str>, scale: &Scale) -> Option<f64> {
    let count = || async {
        match (storage, url) {
            (Storage::Postgres, Some(url)) => Some(postgres_transactions(url).await),
            (Storage::Redis, _) => Some(redis_commands().await),
            _ => None,
        }
    };
    let before = count().await?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(scale.idle_secs)).await;
    let after = count().await?;
    Some((after - before) as f64 / started.elapsed().as_secs_f64())
}

/// Transactions committed or rolled back so far on the database of `url`,
/// from `pg_stat_database`.
async fn postgres_transactions(url: &str) -> i64 {
    let (base, name) = url.rsplit_once('/').expect("a database URL");
    let pool = sqlx::PgPool::connect(&format!("{base}/postgres")).await.expect("connect postgres");
    // The statistics collector flushes every second or so.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _: Option<()> =
        sqlx::query_scalar("SELECT pg_stat_clear_snapshot()").fetch_optional(&pool).await.ok().flatten();
    let count: i64 = sqlx::query_scalar("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&pool)
        .await
        .expect("pg_stat_database");
    pool.close().await;
    count
}

/// Commands the Redis server has processed so far (`INFO stats`).
async fn redis_commands() -> i64 {
    let mut conn = apalis_redis::connect(chirpy_testing::redis::server_url()).await.expect("connect redis");
    let info: String = redis::cmd("INFO").arg("stats").query_async(&mut conn).await.expect("INFO stats");
    info.lines()
        .find_map(|line| line.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_commands_processed in INFO stats")
}
