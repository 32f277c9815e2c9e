//! The dashboard: apalis-board's UI driven in headless Chromium, and its
//! API on every storage.

use std::{path::PathBuf, process::Command};

use chirpy_proto::v1 as pb;
use chirpy_testing::{Storage, TestServer, each_storage};
use serde_json::{Value, json};

use crate::{
    rest::Http,
    support::{CHIRPY, server, workers},
};

/// Where screenshots are kept after the run: `target/test-artifacts`.
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The browser driver's directory, if its dependencies are installed.
fn browser_driver() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let ready = dir.join("node_modules/playwright-core").exists() && PathBuf::from("/usr/bin/chromium").exists();
    if !ready {
        assert!(
            std::env::var_os("CHIRPY_REQUIRE_TOOLS").is_none(),
            "Chromium or playwright-core is missing: run `make setup`"
        );
        eprintln!("skipped: Chromium or playwright-core missing (make setup)");
    }
    ready.then_some(dir)
}

each_storage!(the_dashboard_shows_a_queue_pushed_over_http_and_opens_its_job, |storage| async move {
    let Some(driver) = browser_driver() else { return };
    let server = server(storage).await;
    let http = Http::http1(&server);
    let mut id = String::new();
    for to in ["a@example.com", "b@example.com"] {
        let (status, pushed) = http.json("POST", "/queues/newsletter/jobs", json!({"payload": {"to": to}})).await;
        assert_eq!(status, 200);
        id = pushed["job"]["id"].as_str().unwrap().to_owned();
    }
    let name = format!("dashboard-{}", storage.name());
    let prefix = artifacts().join(&name);
    let output = Command::new("node")
        .arg(driver.join("dashboard.mjs"))
        .args([server.url(), "newsletter".into(), id, prefix.display().to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the browser run failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for shot in ["queue", "job"] {
        let png = std::fs::read(format!("{}-{shot}.png", prefix.display())).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{shot} screenshot looks empty");
    }
});

each_storage!(the_dashboard_api_sees_new_queues_remote_workers_and_jobs, |storage| async move {
    let server = server(storage).await;
    let http = Http::http1(&server);
    // A queue created after start-up, and a remote Chirpy worker.
    http.json("POST", "/queues/late/jobs", json!({"payload": 1})).await;
    let beat =
        pb::HeartbeatRequest { worker_id: "remote-1".into(), queues: vec!["late".into()], running_job_ids: vec![] };
    workers(&server).await.heartbeat(beat).await.unwrap();

    let (status, queues) = http.get("/api/v1/queues").await;
    assert_eq!(status, 200);
    assert!(queues.as_array().unwrap().iter().any(|q| q["name"] == "late"), "{queues}");
    let (_, tasks) = http.get("/api/v1/queues/late/tasks?status=Pending").await;
    assert_eq!(tasks[0]["args"], json!(1), "{tasks}");
    let (_, workers) = http.get("/api/v1/workers").await;
    assert!(workers.as_array().unwrap().iter().any(|w| w["id"] == "remote-1"), "{workers}");

    let (_, stats) = http.get("/api/v1/queues/late/stats").await;
    assert_eq!(stat(&stats, "PENDING_JOBS"), "1", "{stats}");
    let (_, late) = http.get("/api/v1/queues/late/workers").await;
    assert_eq!(late[0]["id"], "remote-1", "{late}");
    let (_, other) = http.get("/api/v1/queues/other/workers").await;
    assert_eq!(other, json!([]));

    // A push from the dashboard goes through Chirpy's own push (validated).
    let (status, _, _) = http.send("PUT", "/api/v1/queues/late/tasks", Some("application/json"), "{\"n\": 2}").await;
    assert_eq!(status, 200);
    let (status, _, _) = http.send("PUT", "/api/v1/queues/bad%20name/tasks", Some("application/json"), "{}").await;
    assert_eq!(status, 400);
    let (_, listed) = http.get("/queues/late/jobs").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 2);

    // Browsers opening a page address get the page; API clients get JSON.
    let html = Http::http1(&server);
    let (status, headers, page) = html.send_with("GET", "/queues/late", &[("accept", "text/html,*/*")]).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.as_str().unwrap().contains("<!DOCTYPE html>"));
    let (_, json) = http.get("/queues").await;
    assert!(json["queues"].is_array());
});

#[tokio::test]
async fn chirpy_ui_false_turns_the_dashboard_off() {
    let server = TestServer::builder(Storage::Sqlite).binary(CHIRPY).env("CHIRPY_UI", "false").start().await;
    let http = Http::http1(&server);
    for path in ["/dashboard", "/api/v1/queues"] {
        let (status, _) = http.get(path).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _, body) = http.send_with("GET", "/queues", &[("accept", "text/html")]).await;
    assert_eq!(status, 200);
    assert!(matches!(body, Value::Object(_)), "JSON, not the page: {body}");
}

/// The value of the statistic titled `title` in an apalis-board list.
fn stat(stats: &Value, title: &str) -> String {
    let found = stats.as_array().unwrap().iter().find(|s| s["title"] == title);
    found.map(|s| s["value"].as_str().unwrap().to_owned()).unwrap_or_default()
}

each_storage!(the_dashboard_api_shows_jobs_in_every_state_and_pages_them, |storage| async move {
    let server = server(storage).await;
    let http = Http::http1(&server);
    let mut ids = Vec::new();
    for n in 0..4 {
        let (_, pushed) = http.json("POST", "/queues/states/jobs", json!({"payload": n})).await;
        ids.push(pushed["job"]["id"].as_str().unwrap().to_owned());
    }
    let later = "2999-01-01T00:00:00Z";
    http.json("POST", "/queues/states/jobs", json!({"payload": "later", "scheduledAt": later})).await;
    // One succeeds through a worker, one is canceled.
    let (_, leased) = http.json("POST", "/workers/w1:lease", json!({"queues": ["states"], "wait": "0s"})).await;
    let lease = &leased["leases"][0];
    let done = lease["job"]["id"].as_str().unwrap();
    let body = json!({"leaseId": lease["leaseId"], "result": {"ok": true}});
    let (status, _) = http.json("POST", &format!("/queues/states/jobs/{done}:complete"), body).await;
    assert_eq!(status, 200);
    let (status, _, _) = http.send("DELETE", &format!("/queues/states/jobs/{}", ids[1]), None, "").await;
    assert_eq!(status, 200);

    let (_, stats) = http.get("/api/v1/queues/states/stats").await;
    let counts: Vec<String> =
        ["PENDING_JOBS", "SCHEDULED_JOBS", "DONE_JOBS", "KILLED_JOBS", "TOTAL_JOBS"].map(|t| stat(&stats, t)).into();
    assert_eq!(counts, ["3", "1", "1", "1", "5"], "{stats}");
    let (_, overview) = http.get("/api/v1/overview").await;
    assert_eq!(stat(&overview, "TOTAL_JOBS"), "5", "{overview}");

    let listed = |query: &str| {
        let http = Http::http1(&server);
        let path = format!("/api/v1/queues/states/tasks?{query}");
        async move { http.get(&path).await }
    };
    let (_, succeeded) = listed("status=Done").await;
    assert_eq!(succeeded[0]["ctx"]["task_id"], json!(done), "{succeeded}");
    assert_eq!(succeeded[0]["ctx"]["status"], "Done");
    let (_, killed) = listed("status=Killed").await;
    assert_eq!(killed[0]["args"], json!(1), "{killed}");
    let (_, pending) = listed("status=Pending").await;
    assert_eq!(pending.as_array().unwrap().len(), 3, "pending and scheduled: {pending}");
    // Pages of two, oldest first, in every state.
    let (_, first) = listed("page=1&page_size=2").await;
    let (_, third) = listed("page=3&page_size=2").await;
    assert_eq!((first[0]["args"].clone(), first[1]["args"].clone()), (json!(0), json!(1)), "{first}");
    assert_eq!(third.as_array().unwrap().len(), 1, "{third}");
    let (_, everywhere) = http.get("/api/v1/tasks?page_size=100").await;
    assert_eq!(everywhere.as_array().unwrap().len(), 5, "{everywhere}");

    let (status, task) = http.get(&format!("/api/v1/queues/states/tasks/{done}")).await;
    assert_eq!((status, task["ctx"]["status"].clone()), (200, json!("Done")), "{task}");
    let (status, _) = http.get("/api/v1/queues/states/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV").await;
    assert_eq!(status, 404);
    for bad in ["page_size=1001", "page_size=0", "page=0", "page=10001&page_size=1", "status=Nope"] {
        let (status, body) = listed(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = http.get("/api/v1/queues/states/tasks/not-an-id").await;
    assert_eq!(status, 400);
});

/// SQL storages only: on Redis, Chirpy adopts only apalis-redis queues named
/// in its own alphabet (other names could collide with Chirpy's own keys).
mod the_dashboard_opens_a_queue_an_apalis_producer_named {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        opens_a_queue_an_apalis_producer_named(Storage::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        opens_a_queue_an_apalis_producer_named(Storage::Postgres).await;
    }
}

async fn opens_a_queue_an_apalis_producer_named(storage: Storage) {
    let server = server(storage).await;
    let http = Http::http1(&server);
    // Apalis's default queue name is the argument type's path.
    crate::interop::push_with_apalis(storage, &server, "my_app::Email", json!({"to": "a@example.com"})).await;

    let (_, queues) = http.get("/api/v1/queues").await;
    assert!(queues.as_array().unwrap().iter().any(|q| q["name"] == "my_app::Email"), "{queues}");
    let (status, tasks) = http.get("/api/v1/queues/my_app::Email/tasks?status=Pending").await;
    assert_eq!((status, tasks[0]["args"]["to"].clone()), (200, json!("a@example.com")), "{tasks}");
    let id = tasks[0]["ctx"]["task_id"].as_str().unwrap();
    let (status, task) = http.get(&format!("/api/v1/queues/my_app::Email/tasks/{id}")).await;
    assert_eq!(status, 200, "{task}");
    let (_, everywhere) = http.get("/api/v1/tasks").await;
    assert_eq!(everywhere.as_array().unwrap().len(), 1, "{everywhere}");
    // Reading takes the stored name; pushing still needs a valid one.
    let (status, _, _) = http.send("PUT", "/api/v1/queues/my_app::Email/tasks", Some("application/json"), "{}").await;
    assert_eq!(status, 400);
    let (status, _) = http.get(&format!("/api/v1/queues/{}/stats", "q".repeat(1025))).await;
    assert_eq!(status, 400);
}
