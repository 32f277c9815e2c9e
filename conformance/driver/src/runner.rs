//! An SDK's runner process, and the JSON-lines protocol spoken with it.

use std::{collections::BTreeMap, path::Path, process::Stdio, time::Duration};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

/// How to build and start one SDK's runner (`conformance/runners.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub build: Vec<String>,
    pub run: Vec<String>,
}

/// Every runner's configuration, by SDK.
pub fn configs(path: &Path) -> Result<BTreeMap<String, Config>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `sdk`'s build command in `root`; its output is shown only when it fails.
pub async fn build(sdk: &str, config: &Config, root: &Path) -> Result<(), String> {
    let Some((program, args)) = config.build.split_first() else { return Ok(()) };
    let output = Command::new(program)
        .args(args)
        .current_dir(root)
        .output()
        .await
        .map_err(|e| format!("{sdk}: cannot run {program}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{sdk}: `{}` failed ({}):\n{}{}",
        config.build.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// What a runner answered to one step.
#[derive(Debug, Clone)]
pub enum Answer {
    Result(Value),
    Error { code: String, message: String },
    Unsupported(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Response {
    id: u64,
    /// Outer `Option`: whether the key is there (a result may be `null`).
    #[serde(default, deserialize_with = "present")]
    result: Option<Value>,
    error: Option<ErrorBody>,
    unsupported: Option<String>,
}

/// A key that is present, whatever its value, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
}

/// A running runner.
pub struct Runner {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

/// The longest a runner may take over one step.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

impl Runner {
    /// Starts the runner of `config` against the server at `url`; its
    /// stderr goes to `log`.
    pub fn start(config: &Config, root: &Path, url: &str, log: &Path) -> Result<Self, String> {
        let (program, args) = config.run.split_first().ok_or("runners.yaml: `run` is empty")?;
        let log = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        // A path (`.venv/bin/python`) is the repository's, as it stands: not
        // canonicalized, for a virtualenv's interpreter is a symlink that
        // finds its packages by its own path. A bare name is looked up in PATH.
        let program = if program.contains('/') { root.join(program) } else { program.into() };
        let mut child = Command::new(&program)
            .args(args)
            .current_dir(root)
            .env("CHIRPY_URL", url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Ok(Runner { child, stdin, stdout, next_id: 1 })
    }

    /// Sends one step and waits for its answer. An error means the runner
    /// is no longer usable (it died, hung or broke the protocol).
    pub async fn call(&mut self, kind: &str, args: &Value) -> Result<Answer, String> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"id": id, "kind": kind, "args": args});
        self.stdin.write_all(format!("{request}\n").as_bytes()).await.map_err(|e| format!("runner stdin: {e}"))?;
        self.stdin.flush().await.map_err(|e| format!("runner stdin: {e}"))?;
        let line = match tokio::time::timeout(STEP_TIMEOUT, self.stdout.next_line()).await {
            Err(_) => return Err(format!("the runner did not answer within {STEP_TIMEOUT:?}")),
            Ok(Err(e)) => return Err(format!("runner stdout: {e}")),
            Ok(Ok(None)) => return Err("the runner exited".into()),
            Ok(Ok(Some(line))) => line,
        };
        let response: Response =
            serde_json::from_str(&line).map_err(|e| format!("the runner answered {line:?}, not a response: {e}"))?;
        if response.id != id {
            return Err(format!("the runner answered request {} to request {id}", response.id));
        }
        match (response.result, response.error, response.unsupported) {
            (Some(result), None, None) => Ok(Answer::Result(result)),
            (None, Some(error), None) => Ok(Answer::Error { code: error.code, message: error.message }),
            (None, None, Some(why)) => Ok(Answer::Unsupported(why)),
            _ => Err(format!("the runner's answer {line:?} has not exactly one of result, error, unsupported")),
        }
    }

    /// Closes its stdin and waits (10 s at most) for it to exit.
    pub async fn close(mut self) {
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}
