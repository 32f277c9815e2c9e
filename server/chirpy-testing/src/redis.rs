//! A throwaway Redis server, shared by the tests of one process, with a
//! fresh logical database per test.
//!
//! If `CHIRPY_TEST_REDIS_URL` is set (`redis://HOST:PORT`), that server is
//! used instead; it needs enough `databases`, and each database handed out
//! is flushed first. Otherwise the first test to ask starts `redis-server`
//! (installing the Debian package `redis-server` when it is missing) on a
//! free loopback port, in a temporary directory, with no persistence at all
//! (`save ""`, `appendonly no`: a test server is thrown away) and 1024
//! databases, so that each test gets a keyspace of its own. apalis-redis's
//! keys have no prefix option, so a database per test is what keeps tests
//! apart; it is also what keeps them fast (no server per test).

use std::{
    path::PathBuf,
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::process::{free_port, spawn_supervised};

/// How many databases the test server has: more than one process's tests.
const DATABASES: u32 = 1024;

/// The URL of the shared server (no database), starting it on first use.
///
/// # Panics
///
/// When `redis-server` is missing and cannot be installed, or does not
/// start: a test that needs Redis must not pass without it.
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        std::env::var("CHIRPY_TEST_REDIS_URL").map(|u| u.trim_end_matches('/').to_owned()).unwrap_or_else(|_| start())
    })
}

/// A new, empty database on the shared server; returns its URL.
pub async fn fresh_database() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let db = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(db < DATABASES, "more than {DATABASES} Redis tests in one process");
    let url = format!("{}/{db}", server_url());
    let output = Command::new(cli()).args(["-u", &url, "FLUSHDB"]).output().expect("run redis-cli");
    assert!(output.status.success(), "FLUSHDB on {url}: {}", String::from_utf8_lossy(&output.stderr));
    url
}

fn start() -> String {
    let server = binary("redis-server").unwrap_or_else(install);
    let dir = tempfile::Builder::new().prefix("chirpy-redis-").tempdir().expect("temp dir").keep();
    let port = free_port();
    let command = format!(
        "exec {} --bind 127.0.0.1 --port {port} --dir {dir} --save '' --appendonly no --databases {DATABASES} \
         --protected-mode no --daemonize no --logfile {dir}/log",
        server.display(),
        dir = dir.display(),
    );
    spawn_supervised(&command, &format!("rm -rf {}", dir.display())).expect("start redis-server");
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ping = Command::new(cli()).args(["-u", &url, "PING"]).output();
        if ping.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "PONG") {
            return url;
        }
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "redis-server did not start on port {port}:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Installs Redis with apt, as `scripts/setup` does, for a test run without it.
fn install() -> PathBuf {
    eprintln!("chirpy-testing: redis-server is missing; installing the Debian package redis-server");
    let status = Command::new("sh")
        .arg("-c")
        .arg("command -v apt-get >/dev/null && (apt-get install -y -qq redis-server >/dev/null 2>&1 || (apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null))")
        .status();
    assert!(status.is_ok_and(|s| s.success()), "cannot install redis-server; install it or set CHIRPY_TEST_REDIS_URL");
    binary("redis-server").expect("redis-server installed")
}

fn cli() -> PathBuf {
    binary("redis-cli").unwrap_or_else(|| PathBuf::from("redis-cli"))
}

fn binary(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|path| path.exists())
}
