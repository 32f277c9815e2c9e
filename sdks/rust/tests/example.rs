//! The product page's Rust example (`examples/email_worker.rs`), run as a
//! process, works a job pushed over plain HTTP with the page's own body.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use chirpy_client::{Client, proto::JobState};
use chirpy_testing::{TestServer, each_storage};

/// The example binary cargo built beside this test.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(|deps| deps.parent()).unwrap().join("examples/email_worker")
}

each_storage!(the_page_example_works_a_job_pushed_over_http, |storage| async move {
    let server = TestServer::start(storage).await;
    let mut worker = Command::new(example())
        .env("CHIRPY_URL", server.url())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the example is built by `cargo test`");

    let body = r#"{"payload": { "to": "user@example.com", "subject": "Welcome" }, "queue": "email"}"#;
    let output = Command::new("curl")
        .args(["-sf", "-X", "POST", &format!("{}/queues/email/jobs", server.url())])
        .args(["-H", "content-type: application/json", "-d", body])
        .output()
        .unwrap();
    assert!(output.status.success(), "push over HTTP failed");
    let pushed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let id = pushed["job"]["id"].as_str().unwrap().to_owned();

    let client = Client::connect(server.url()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = client.get("email", &id).await.unwrap();
        if job.state() == JobState::Succeeded {
            assert_eq!(job.attempts, 1);
            break;
        }
        assert!(Instant::now() < deadline, "the example never finished the job: {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let workers = client.workers().await.unwrap();
    assert!(workers.iter().any(|w| w.id.starts_with("email-worker.")), "{workers:?}");
    worker.kill().unwrap();
    let output = worker.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("sending \"Welcome\" to user@example.com"));
});
