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

/// apalis-board-api's reads on apalis-redis 1.0 fail in apalis-redis itself
/// (its `list_queues` passes queue names where its script expects one
/// queue's keys; its per-queue stats script lacks its time argument), so the
/// dashboard's overview cannot load on Redis. The README says so; this checks
/// it still is so, and the rest of the test is skipped.
async fn dashboard_reads_fail_upstream_on_redis(storage: Storage) {
    let server = server(storage).await;
    Http::http1(&server).json("POST", "/queues/late/jobs", json!({"payload": 1})).await;
    let (status, body) = Http::http1(&server).get("/api/v1/queues").await;
    assert_eq!(status, 500, "apalis-redis's list_queues works now: enable the dashboard tests on Redis: {body}");
}

each_storage!(the_dashboard_shows_a_queue_pushed_over_http_and_opens_its_job, |storage| async move {
    let Some(driver) = browser_driver() else { return };
    if storage == Storage::Redis {
        dashboard_reads_fail_upstream_on_redis(storage).await;
        return;
    }
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
    if storage == Storage::Redis {
        dashboard_reads_fail_upstream_on_redis(storage).await;
        return;
    }
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
