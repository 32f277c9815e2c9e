//! The process as an operator sees it: settings, errors, shutdown.

use std::{process::Command, time::Duration};

use chirpy_testing::{Storage, TestServer};

use crate::support::{CHIRPY, server};

/// Runs chirpy with `env` until it exits (it must, within 30 s); returns the
/// exit code and stderr.
fn run_to_exit(env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(CHIRPY);
    command.env_clear().env("CHIRPY_HOST", "127.0.0.1").env("CHIRPY_CONNECT_TIMEOUT", "1s").current_dir(dir.path());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_bad_setting_exits_non_zero_with_one_line_naming_it() {
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("CHIRPY_PORT", "seventy")], "CHIRPY_PORT (--port)"),
        (&[("CHIRPY_UI", "maybe")], "CHIRPY_UI (--ui)"),
        (&[("CHIRPY_LEASE_TTL", "soon")], "CHIRPY_LEASE_TTL (--lease-ttl)"),
        (&[("DATABASE_URL", "mysql://localhost/x")], "DATABASE_URL"),
        (&[("DATABASE_URL", "postgres://chirpy:secret@127.0.0.1:1/none")], "DATABASE_URL"),
        (&[("DATABASE_URL", "sqlite:///no/such/dir/chirpy.db")], "DATABASE_URL"),
    ];
    for (env, setting) in cases {
        let (code, stderr) = run_to_exit(env);
        assert_ne!(code, 0, "{env:?}");
        let lines: Vec<_> = stderr.lines().filter(|l| l.starts_with("chirpy: ")).collect();
        assert_eq!(lines.len(), 1, "one line for {env:?}: {stderr}");
        assert!(lines[0].starts_with(&format!("chirpy: {setting}")), "{}", lines[0]);
        assert!(!stderr.contains("secret"), "passwords stay out of messages: {stderr}");
    }
}

#[tokio::test]
async fn a_port_in_use_is_named() {
    let running = server(Storage::Sqlite).await;
    let port = running.addr().port().to_string();
    let (code, stderr) = run_to_exit(&[("CHIRPY_PORT", &port), ("DATABASE_URL", "sqlite::memory:")]);
    assert_ne!(code, 0);
    assert!(stderr.contains("CHIRPY_PORT (--port): cannot listen on"), "{stderr}");
}

#[tokio::test]
async fn the_default_storage_is_a_sqlite_file_created_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(CHIRPY)
        .env_clear()
        .env("CHIRPY_HOST", "127.0.0.1")
        .env("CHIRPY_PORT", "0")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let db = dir.path().join("chirpy.db");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !db.exists() {
        assert!(tokio::time::Instant::now() < deadline, "chirpy.db was not created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().await.unwrap();
}

#[tokio::test]
async fn sigterm_while_waiting_for_the_database_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::new(CHIRPY)
        .env_clear()
        .env("CHIRPY_HOST", "127.0.0.1")
        .env("CHIRPY_PORT", "0")
        .env("CHIRPY_CONNECT_TIMEOUT", "60s")
        .env("DATABASE_URL", "postgres://chirpy@127.0.0.1:1/none")
        .current_dir(dir.path())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    chirpy_testing::server::signal(child.id().unwrap(), "TERM");
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output()).await.expect("exits promptly");
    assert_eq!(status.unwrap().status.code(), Some(0));
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let server = TestServer::builder(Storage::Sqlite).binary(CHIRPY).start().await;
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}
