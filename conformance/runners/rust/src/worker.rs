//! The worker steps: Apalis workers on `ChirpyBackend`, running the one
//! handler whose behaviour each job's payload chooses, and the events it
//! records.

use std::{
    collections::HashMap,
    io,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use apalis::prelude::*;
use chirpy_client::ChirpyBackend;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::Reply;

/// The workers of this runner, by handle, and what their handlers did.
pub struct Workers {
    url: String,
    running: HashMap<String, Running>,
    events: Events,
}

struct Running {
    stop: oneshot::Sender<()>,
    done: JoinHandle<Result<(), WorkerError>>,
}

#[derive(Deserialize)]
struct Start {
    worker: String,
    queue: String,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
}

fn default_concurrency() -> usize {
    4
}

#[derive(Deserialize)]
struct Stop {
    worker: String,
}

impl Workers {
    pub fn new(url: String) -> Self {
        Workers { url, running: HashMap::new(), events: Events::default() }
    }

    /// Runs worker step `kind`.
    pub async fn run(&mut self, kind: &str, args: Value) -> Reply {
        match kind {
            "start_worker" => match serde_json::from_value::<Start>(args) {
                Ok(start) => self.start(start).await,
                Err(err) => Reply::bad_args(err),
            },
            "stop_worker" => match serde_json::from_value::<Stop>(args) {
                Ok(Stop { worker }) => match self.running.remove(&worker) {
                    Some(running) => {
                        running.stop().await;
                        Reply::Result(json!({}))
                    }
                    None => Reply::Unsupported(format!("no running worker {worker:?}")),
                },
                Err(err) => Reply::bad_args(err),
            },
            _ => Reply::Result(json!({"events": self.events.all()})),
        }
    }

    async fn start(&mut self, start: Start) -> Reply {
        if self.running.contains_key(&start.worker) {
            return Reply::Unsupported(format!("worker {:?} is already running", start.worker));
        }
        let backend = match ChirpyBackend::connect(self.url.clone()).queue::<Value>(&start.queue).await {
            Ok(backend) => backend,
            Err(err) => {
                let code = err.code().map_or_else(|| "UNKNOWN".to_owned(), chirpy_conformance_runner::shape::code);
                return Reply::Error(code, err.to_string());
            }
        };
        let (events, handle) = (self.events.clone(), start.worker.clone());
        let handler = move |payload: Value, attempt: Attempt, id: TaskId| {
            let record = Record::started(events.clone(), &handle, &id.to_string(), attempt.current());
            behave(payload, attempt.current(), record)
        };
        let worker =
            WorkerBuilder::new(format!("conformance-{}", start.worker)).backend(backend).concurrency(start.concurrency);
        let worker = worker.build(handler);
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(worker.run_until(async move {
            let _ = stopped.await;
            Ok::<(), io::Error>(())
        }));
        self.running.insert(start.worker, Running { stop, done });
        Reply::Result(json!({}))
    }

    /// Stops every worker still running (stdin closed).
    pub async fn stop_all(&mut self) {
        for (_, running) in self.running.drain() {
            running.stop().await;
        }
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(30), self.done).await;
    }
}

/// Does what the payload's `do` says (see the README's handler table).
async fn behave(payload: Value, attempt: usize, record: Record) -> Result<Value, BoxDynError> {
    let number = |key: &str| payload.get(key).and_then(Value::as_u64);
    let result = payload.get("result").cloned().unwrap_or(Value::Null);
    let error = payload.get("error").and_then(Value::as_str).unwrap_or("failed").to_owned();
    let outcome: Result<Value, BoxDynError> = match payload.get("do").and_then(Value::as_str).unwrap_or("succeed") {
        "succeed" => Ok(result),
        "fail" => Err(error.into()),
        "fail_permanently" => Err(AbortError::new(error).into()),
        "fail_until" if (attempt as u64) < number("attempt").unwrap_or(0) => Err(error.into()),
        "fail_until" => Ok(result),
        "sleep" => {
            tokio::time::sleep(Duration::from_millis(number("ms").unwrap_or(0))).await;
            Ok(result)
        }
        "await_cancel" => {
            // chirpy-client cancels a task by dropping its future, so the
            // wait ends here only when no cancellation came; `Record`'s drop
            // tells the other story.
            let ms = number("ms").unwrap_or(30_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Err(format!("not canceled within {ms} ms").into())
        }
        other => Err(AbortError::new(format!("unknown behaviour {other:?}")).into()),
    };
    record.finished(outcome.is_ok());
    outcome
}

/// Every event of every handler, in the order they happened.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Value>>>);

impl Events {
    fn push(&self, event: Value) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(event);
    }

    fn all(&self) -> Vec<Value> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// One handler run: records `started` now, and `succeeded` or `failed` when
/// it finishes, or `canceled` when its future is dropped unfinished.
struct Record {
    events: Events,
    base: Value,
    finished: bool,
}

impl Record {
    fn started(events: Events, worker: &str, job: &str, attempt: usize) -> Self {
        let base = json!({"worker": worker, "job": job, "attempt": attempt});
        let record = Record { events, base, finished: false };
        record.event("started");
        record
    }

    fn event(&self, event: &str) {
        let mut value = self.base.clone();
        value["event"] = json!(event);
        self.events.push(value);
    }

    fn finished(mut self, ok: bool) {
        self.finished = true;
        self.event(if ok { "succeeded" } else { "failed" });
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.finished {
            self.event("canceled");
        }
    }
}
