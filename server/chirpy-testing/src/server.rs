//! The real `chirpy` binary, started on a loopback port for one test.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};
use tonic::transport::Channel;

use crate::{Storage, postgres, redis};

/// A running `chirpy` server. Dropping it kills the process.
pub struct TestServer {
    child: Child,
    addr: SocketAddr,
    database_url: String,
    logs: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

/// Settings for a [`TestServer`] before it starts.
pub struct Builder {
    storage: Storage,
    binary: Option<PathBuf>,
    database_url: Option<String>,
    env: Vec<(String, String)>,
}

impl TestServer {
    /// A server on a fresh database of `storage`, with default settings.
    pub async fn start(storage: Storage) -> Self {
        Self::builder(storage).start().await
    }

    /// Settings for a server on a fresh database of `storage`.
    pub fn builder(storage: Storage) -> Builder {
        Builder { storage, binary: None, database_url: None, env: Vec::new() }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `DATABASE_URL` it runs on, for opening the same database from
    /// the test (e.g. with an embedded Apalis worker).
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or_default()
    }

    /// Everything it has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// A gRPC channel to it (HTTP/2 over cleartext).
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url()).expect("a valid URL").connect().await.expect("connect to the test server")
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(mut self) -> ExitStatus {
        signal(self.pid(), "TERM");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server exits within 30 s of SIGTERM")
            .expect("wait for the server")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!("--- chirpy server log ---\n{}", self.logs());
        }
    }
}

impl Builder {
    /// Runs this binary instead of the `chirpy` next to the test executable.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Uses this database instead of a fresh one (e.g. to share it between
    /// two servers).
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    /// Sets an environment variable of the server.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Starts the server and waits until it listens.
    ///
    /// # Panics
    ///
    /// When it does not start within 60 s.
    pub async fn start(self) -> TestServer {
        let dir = tempfile::Builder::new().prefix("chirpy-test-").tempdir().expect("temp dir");
        let database_url = match (self.database_url, self.storage) {
            (Some(url), _) => url,
            (None, Storage::Sqlite) => format!("sqlite://{}", dir.path().join("chirpy.db").display()),
            (None, Storage::Postgres) => postgres::fresh_database().await,
            (None, Storage::Redis) => redis::fresh_database().await,
        };
        let binary = self.binary.unwrap_or_else(default_binary);
        let mut child = Command::new(&binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &database_url)
            .env("CHIRPY_HOST", "127.0.0.1")
            .env("CHIRPY_PORT", "0")
            .env("CHIRPY_LOG", "info,chirpy=debug")
            .envs(self.env)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {}: {e} (build it with `cargo build --bin chirpy`)", binary.display())
            });

        let logs = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        collect(child.stdout.take().expect("piped stdout"), logs.clone(), Some(addr_tx));
        collect(child.stderr.take().expect("piped stderr"), logs.clone(), None);
        let addr = match tokio::time::timeout(Duration::from_secs(60), addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let _ = child.start_kill();
                panic!("chirpy did not start:\n{}", logs.lock().map(|l| l.clone()).unwrap_or_default());
            }
        };
        TestServer { child, addr, database_url, logs, _dir: dir }
    }
}

/// Copies a child's output into `logs`, and sends the address of the
/// start-up line ("chirpy listening on ADDR ...") once seen.
fn collect(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    logs: Arc<Mutex<String>>,
    mut addr_tx: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let addr = line
                .split("chirpy listening on ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse::<SocketAddr>().ok());
            if let (Some(addr), Some(tx)) = (addr, addr_tx.take_if(|_| addr.is_some())) {
                let _ = tx.send(addr);
            }
            if let Ok(mut logs) = logs.lock() {
                logs.push_str(&line);
                logs.push('\n');
            }
        }
    });
}

/// The `chirpy` binary of the same build as the running executable: beside
/// it (`target/<profile>/chirpy-bench`), or one level up from a test
/// (`target/<profile>/deps/test-...`), unless `CHIRPY_BIN` names another.
fn default_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHIRPY_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the executable's path");
    let dir = exe.parent().expect("a directory");
    let profile = if dir.ends_with("deps") { dir.parent().expect("a target directory") } else { dir };
    profile.join("chirpy")
}

/// Sends a signal by PID with `kill`, as an operator would.
pub fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
}
