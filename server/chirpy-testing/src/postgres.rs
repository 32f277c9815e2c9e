//! A throwaway PostgreSQL cluster, shared by the tests of one process.
//!
//! If `CHIRPY_TEST_POSTGRES_URL` is set, that server is used instead (it must
//! allow `CREATE DATABASE`). Otherwise the first test to ask runs `initdb`
//! into a temporary directory and starts `postgres` on a free loopback port;
//! as root, both run as the `postgres` user, since PostgreSQL refuses root.

use std::{
    path::PathBuf,
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::process::{free_port, spawn_supervised};

/// The URL of the shared cluster's `postgres` database, starting the cluster
/// on first use.
///
/// # Panics
///
/// When no PostgreSQL server binaries are found or the cluster does not
/// start: a test that needs PostgreSQL must not pass without it.
pub fn admin_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| std::env::var("CHIRPY_TEST_POSTGRES_URL").unwrap_or_else(|_| start_cluster()))
}

/// A new, empty database in the shared cluster; returns its URL.
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let name = format!("chirpy_test_{}_{}", std::process::id(), next_id());
    let mut connection = connect_with_retry(admin).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await
        .expect("CREATE DATABASE");
    let (base, _) = admin.rsplit_once('/').expect("a database URL has a path");
    format!("{base}/{name}")
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

async fn connect_with_retry(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match sqlx::PgConnection::connect(url).await {
            Ok(connection) => return connection,
            Err(err) if Instant::now() > deadline => panic!("PostgreSQL at {url} does not answer: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn start_cluster() -> String {
    let bin = server_bin_dir().expect(
        "PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; \
         install them or set CHIRPY_TEST_POSTGRES_URL",
    );
    let dir = tempfile::Builder::new().prefix("chirpy-pg-").tempdir().expect("temp dir").keep();
    let data = dir.join("data");
    let as_root = is_root();
    if as_root {
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir));
    }
    let initdb = format!(
        "{} -D {} --auth=trust -U postgres --no-sync -E UTF8 >/dev/null",
        bin.join("initdb").display(),
        data.display()
    );
    run(Command::new("sh").arg("-c").arg(as_user(&initdb, as_root)));
    let port = free_port();
    // fsync off: a test cluster is thrown away, and fsync dominates its time.
    let postgres = format!(
        "exec {} -D {} -p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300 >{}/log 2>&1",
        bin.join("postgres").display(),
        data.display(),
        dir.display(),
        dir.display()
    );
    spawn_supervised(&as_user(&postgres, as_root), &format!("rm -rf {}", dir.display())).expect("start postgres");
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// `command` as a shell command line, run as the `postgres` user when we are
/// root. `setpriv` execs in place (unlike `su`), so the supervisor's signal
/// reaches PostgreSQL itself and it shuts down cleanly.
fn as_user(command: &str, as_root: bool) -> String {
    if as_root {
        format!("setpriv --reuid=postgres --regid=postgres --clear-groups sh -c '{command}'")
    } else {
        format!("sh -c '{command}'")
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn server_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists());
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("postgres").exists())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn run(command: &mut Command) {
    let status = command.status().expect("run a PostgreSQL set-up command");
    assert!(status.success(), "{command:?} failed: {status}");
}
