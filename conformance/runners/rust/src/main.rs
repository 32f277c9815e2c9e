//! `chirpy-conformance-runner`: runs conformance steps through chirpy-client.
//!
//! One JSON request per line on stdin, one JSON response per line on
//! stdout, in order (the protocol is in `conformance/README.md`). Each step
//! is one call of the SDK's public API; judging is the driver's business.

mod client;
mod worker;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One step to run.
#[derive(Deserialize)]
struct Request {
    id: u64,
    kind: String,
    #[serde(default)]
    args: Value,
}

/// How a step ended, before it is written out.
pub enum Reply {
    Result(Value),
    /// The SDK reported an error, with this gRPC code name and message.
    Error(String, String),
    /// The step is not one this runner knows, or asks what the SDK cannot say.
    Unsupported(String),
}

impl Reply {
    /// The reply to a step whose arguments do not parse.
    fn bad_args(err: serde_json::Error) -> Self {
        Reply::Unsupported(format!("arguments: {err}"))
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let url = std::env::var("CHIRPY_URL").unwrap_or_else(|_| "http://127.0.0.1:7000".into());
    let client = chirpy_client::Client::connect(url.clone()).await.map_err(std::io::Error::other)?;
    let mut workers = worker::Workers::new(url);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let request: Request = match serde_json::from_str(&line) {
            Ok(request) => request,
            Err(err) => {
                eprintln!("runner: not a request: {err}: {line}");
                continue;
            }
        };
        let reply = match request.kind.as_str() {
            "start_worker" | "stop_worker" | "events" => workers.run(&request.kind, request.args).await,
            kind => client::run(&client, kind, request.args).await,
        };
        let response = match reply {
            Reply::Result(result) => json!({"id": request.id, "result": result}),
            Reply::Error(code, message) => json!({"id": request.id, "error": {"code": code, "message": message}}),
            Reply::Unsupported(why) => json!({"id": request.id, "unsupported": why}),
        };
        stdout.write_all(format!("{response}\n").as_bytes()).await?;
        stdout.flush().await?;
    }
    workers.stop_all().await;
    Ok(())
}
