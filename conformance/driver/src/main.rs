//! `chirpy-conformance`: runs every case of `conformance/cases` through
//! every SDK's runner, against a real `chirpy` on every storage, and prints
//! the matrix (see `conformance/README.md`).
//!
//! - [`cases`]: the cases as data; [`template`] and [`expect`]: references
//!   in them, and how answers are matched.
//! - [`runner`]: an SDK's runner process and its JSON-lines protocol;
//!   [`foreign`]: the steps the driver plays itself.
//! - [`play`]: one case through one runner; [`matrix`]: every outcome.
#![forbid(unsafe_code)]

mod cases;
mod expect;
mod foreign;
mod matrix;
mod play;
mod runner;
mod template;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use chirpy_testing::{Storage, TestServer};
use clap::Parser;
use futures::future::join_all;

use crate::{
    cases::Case,
    matrix::{Matrix, Outcome},
    play::Failure,
    runner::Runner,
};

/// Runs the conformance cases through every SDK against every storage.
#[derive(Parser)]
struct Args {
    /// SDKs to run, comma-separated (runners.yaml names them).
    #[arg(long, value_delimiter = ',', default_value = "rust,go,python,typescript")]
    sdk: Vec<String>,
    /// Storages to run on, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres,redis")]
    storage: Vec<String>,
    /// Only the cases whose names match these globs (e.g. 'cancel/*').
    #[arg(long)]
    case: Vec<String>,
    /// The directory of case files, relative to the repository.
    #[arg(long, default_value = "conformance/cases")]
    cases: PathBuf,
    /// Where the matrix and the logs go, relative to the repository.
    #[arg(long, default_value = "target/conformance")]
    out: PathBuf,
    /// Use the runners as built, without their build commands.
    #[arg(long)]
    no_build: bool,
}

/// The settings every server runs with, so that lease and retry cases take
/// seconds.
const SERVER_ENV: [(&str, &str); 4] = [
    ("CHIRPY_LEASE_TTL", "2s"),
    ("CHIRPY_RETRY_INITIAL_BACKOFF", "1s"),
    ("CHIRPY_RETRY_MAX_BACKOFF", "1s"),
    ("CHIRPY_LOG", "info"),
];

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("chirpy-conformance: {message}");
            ExitCode::from(2)
        }
    }
}

/// Runs everything; whether the matrix is green.
async fn run(args: Args) -> Result<bool, String> {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))?;
    let patterns = args.case.iter().map(|p| glob::Pattern::new(p).map_err(|e| format!("--case {p:?}: {e}")));
    let patterns = patterns.collect::<Result<Vec<_>, _>>()?;
    let mut cases = cases::load(&root.join(&args.cases))?;
    cases.retain(|case| patterns.is_empty() || patterns.iter().any(|p| p.matches(&case.name)));
    if cases.is_empty() {
        return Err("no case matches --case".into());
    }
    let configs = runner::configs(&root.join("conformance/runners.yaml"))?;
    let sdks = args
        .sdk
        .iter()
        .map(|sdk| Ok((sdk.clone(), configs.get(sdk).ok_or(format!("no runner for SDK {sdk:?} in runners.yaml"))?)))
        .collect::<Result<Vec<_>, String>>()?;
    let storages = args.storage.iter().map(|s| storage(s)).collect::<Result<Vec<_>, _>>()?;
    if !args.no_build {
        for (sdk, config) in &sdks {
            eprintln!("building the {sdk} runner");
            runner::build(sdk, config, &root).await?;
        }
    }
    let out = root.join(&args.out);
    std::fs::create_dir_all(out.join("logs")).map_err(|e| format!("{}: {e}", out.display()))?;

    let runs = storages.iter().map(|&storage| on_storage(storage, &sdks, &cases, &root, &out));
    let mut matrix = Matrix {
        sdks: sdks.iter().map(|(sdk, _)| sdk.clone()).collect(),
        storages: storages.iter().map(|s| s.name().to_owned()).collect(),
        cases: cases.iter().map(|c| c.name.clone()).collect(),
        descriptions: cases.iter().map(|c| (c.name.clone(), c.description.clone())).collect(),
        outcomes: join_all(runs).await.into_iter().flatten().collect(),
        duration: started.elapsed(),
    };
    for (sdk, _) in &sdks {
        matrix.apply_known_failing(sdk, &matrix::known_failing(&root.join("conformance/known-failing"), sdk)?);
    }
    println!("{}", matrix.text());
    matrix.write(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "wrote {} and matrix.md; runner and server logs in {}",
        out.join("matrix.json").display(),
        out.join("logs").display()
    );
    Ok(matrix.is_green())
}

fn storage(name: &str) -> Result<Storage, String> {
    Storage::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or(format!("unknown storage {name:?}: sqlite, postgres or redis"))
}

type Key = (String, String, String);

/// Every case through every SDK against one server on `storage`.
async fn on_storage(
    storage: Storage,
    sdks: &[(String, &runner::Config)],
    cases: &[Case],
    root: &Path,
    out: &Path,
) -> Vec<(Key, Outcome)> {
    let mut server = TestServer::builder(storage);
    for (key, value) in SERVER_ENV {
        server = server.env(key, value);
    }
    let server = server.start().await;
    let channel = server.channel().await;
    let url = server.url();
    let runs = sdks.iter().map(|(sdk, config)| {
        let log = out.join(format!("logs/{sdk}-{}.log", storage.name()));
        on_sdk(sdk, config, storage, cases, root, &url, &channel, log)
    });
    let outcomes = join_all(runs).await.into_iter().flatten().collect();
    let _ = std::fs::write(out.join(format!("logs/server-{}.log", storage.name())), server.logs());
    server.terminate().await;
    outcomes
}

/// Every case through one SDK's runner, restarting it when it breaks.
#[allow(clippy::too_many_arguments)]
async fn on_sdk(
    sdk: &str,
    config: &runner::Config,
    storage: Storage,
    cases: &[Case],
    root: &Path,
    url: &str,
    channel: &tonic::transport::Channel,
    log: PathBuf,
) -> Vec<(Key, Outcome)> {
    let started = Instant::now();
    let mut runner: Option<Runner> = None;
    let mut outcomes = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let key = (case.name.clone(), sdk.to_owned(), storage.name().to_owned());
        if case.storages.as_ref().is_some_and(|s| !s.iter().any(|s| s == storage.name())) {
            outcomes.push((key, Outcome::Skipped(format!("not a case for {}", storage.name()))));
            continue;
        }
        let live = match runner.as_mut() {
            Some(live) => live,
            None => match Runner::start(config, root, url, &log.with_extension(format!("{n}.log"))) {
                Ok(started) => runner.insert(started),
                Err(message) => {
                    outcomes.push((key, Outcome::Failed(message)));
                    continue;
                }
            },
        };
        let queue = format!("{}.{sdk}", case.name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "."));
        let outcome = match play::play(case, live, channel, &queue).await {
            Ok(()) => Outcome::Passed,
            Err(Failure::Case(message)) => Outcome::Failed(message),
            Err(Failure::Runner(message)) => {
                runner = None;
                Outcome::Failed(message)
            }
        };
        outcomes.push((key, outcome));
    }
    if let Some(runner) = runner {
        runner.close().await;
    }
    let passed = outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Passed)).count();
    eprintln!(
        "{sdk} × {}: {passed}/{} passed in {:.1} s",
        storage.name(),
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    outcomes
}
